"""Every entry is read once more, by this release's parsers; and ``directory.names`` where it is missing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

Parsing improved since 0006 (a version's ``createdAt`` dates it, an A1111 ``sd version`` naming
a base model counts, the civitai ``nsfw`` flag and a version's description are kept, a
``NAME.civitai.json`` beside ``NAME.civitai.safetensors`` is that model's A1111 file again...),
but an import reads only entries whose files changed: without this, an upgraded catalog would
keep what the old parsers made of every unchanged file, and differ from a fresh import for good.
So every folder loses its fingerprint and files record and every entry its signature: the next
import looks at everything and reads every entry once (about as long as a first import), and
user state is kept as on any re-read.

A catalog stamped 0006 by that migration's first cut lacks ``directory.names`` (the column was
added to 0006 after it shipped, under the same revision): it gets it here, and imports again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if "names" not in {c["name"] for c in sa.inspect(conn).get_columns("directory")}:
        op.add_column("directory", sa.Column("names", sa.LargeBinary(), nullable=True))
    directory = sa.table("directory", sa.column("fingerprint"), sa.column("files"), sa.column("names"))
    conn.execute(directory.update().values(fingerprint="", files=None, names=None))
    conn.execute(sa.table("entry", sa.column("signature")).update().values(signature=""))


def downgrade() -> None:
    """Nothing to undo: everything is read once more."""

"""Every entry is read once more, by this release's parsers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27

Parsing changed what it records for files that did not change: a model response's version is
chosen by a version id another sidecar names (civitai-browser-plus's ``modelVersionId``,
Lora-Manager's ``civitai.id``...) before falling back to the first; Lora-Manager's record no
longer takes the hashes of a Civitai file entry whose SHA256 is not its own; the older
``nsfw: true`` flag gives an ``nsfw_level``; a user's words that lose to another tool's
are kept in ``extra``; and an A1111 ``NAME.json`` whose few foreign keys sit beside
civitai-browser-plus's ids (and one card-editor key) is read, not taken for noise; a record
keeps at most 1,000 tags. As in
0008 and 0009, every folder loses its fingerprint and files record and every entry its
signature: the next import reads every entry once (about as long as a first import), keeping
user state as on any re-read.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    directory = sa.table("directory", sa.column("fingerprint"), sa.column("files"), sa.column("names"))
    conn.execute(directory.update().values(fingerprint="", files=None, names=None))
    conn.execute(sa.table("entry", sa.column("signature")).update().values(signature=""))


def downgrade() -> None:
    """Nothing to undo: everything is read once more."""

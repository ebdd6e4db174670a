"""Every entry is read once more, by this release's parsers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27

Parsing changed what it records for files that did not change: base models are stored by
Civitai's names whatever wrote them (Lora-Manager's ``"sd_v1"`` or ``"SDXL"`` is ``"SD 1.5"``
or ``"SDXL 1.0"``, SD3/SD3.5/Flux headers are named, Civitai's ``"Other"`` no longer hides the
header's), AutoV2 always follows the recorded SHA256, A1111's keys in a Civitai model-version
``NAME.json`` are read, triggers are split on ``||`` and listed once, and a sidecar that is not
UTF-8 is read as Windows-1252. An import reads only entries whose files changed, so, as in
0008, every folder loses its fingerprint and files record and every entry its signature: the
next import reads every entry once (about as long as a first import), keeping user state as
on any re-read.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    directory = sa.table("directory", sa.column("fingerprint"), sa.column("files"), sa.column("names"))
    conn.execute(directory.update().values(fingerprint="", files=None, names=None))
    conn.execute(sa.table("entry", sa.column("signature")).update().values(signature=""))


def downgrade() -> None:
    """Nothing to undo: everything is read once more."""

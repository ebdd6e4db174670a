"""Folders holding ``NAME.api_info.json`` or ``NAME.civitai.json`` are looked at in full once more.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Those two names became sidecars of ``NAME`` (civitai-browser-plus and SignalFlagZ's civitai
browser write them); before, each was an entry of its own, ``NAME.api_info`` or
``NAME.civitai``, whose model file was missing. A folder whose files did not change is not
grouped again, so the folders of such entries lose their fingerprint and files record: the
next import groups them by the new names, reads the entries whose files changed grouping,
and lets the old ones go. No other folder is touched.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STEMS = sa.text("lower(key) LIKE '%.api_info' OR lower(key) LIKE '%.civitai'")


def upgrade() -> None:
    conn = op.get_bind()
    entry = sa.table("entry", sa.column("key", sa.Text()))
    keys = list(conn.execute(sa.select(entry.c.key).where(_OLD_STEMS)).scalars())
    # Entry keys are absolute paths; on Windows their separator is "\\".
    folders = sorted({(posixpath.dirname(k) if "/" in k else k.rsplit("\\", 1)[0]) for k in keys})
    directory = sa.table("directory", sa.column("path"), sa.column("fingerprint"), sa.column("files"))
    for start in range(0, len(folders), 500):
        part = folders[start : start + 500]
        conn.execute(directory.update().where(directory.c.path.in_(part)).values(fingerprint="", files=None))


def downgrade() -> None:
    """Nothing to undo: the folders are looked at in full once more, by the old names."""

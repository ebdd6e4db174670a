"""Entries that failed or are duplicates are read once more, by this release's identity rules.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27

Earlier releases could leave two such states that a fresh import does not make, and that an
import did not revisit while the entry's files stayed as they were: a broken sidecar whose
model file was deleted in the same run kept its record live (now it is marked missing), and
a failed entry holding its last good record that an entry earlier in path order took the
identity from was recorded as a duplicate (now it stays failed, and its problems stay in
``lora errors`` and its model-less sidecar in ``lora orphans``). Those entries lose their
signature, and their folders their fingerprint and files record (not their names), so the
next import reads them, and only them, again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    entry = sa.table("entry", sa.column("key"), sa.column("status"), sa.column("signature"))
    directory = sa.table("directory", sa.column("path"), sa.column("fingerprint"), sa.column("files"))
    revisit = entry.c.status.in_(["failed", "duplicate"])
    keys = [key for (key,) in conn.execute(sa.select(entry.c.key).where(revisit))]
    conn.execute(entry.update().where(revisit).values(signature=""))
    folders = sorted({os.path.dirname(key) for key in keys})  # a key is its folder, a separator and a stem
    for start in range(0, len(folders), 500):
        part = folders[start : start + 500]
        conn.execute(directory.update().where(directory.c.path.in_(part)).values(fingerprint="", files=None))


def downgrade() -> None:
    """Nothing to undo: those entries are read once more."""

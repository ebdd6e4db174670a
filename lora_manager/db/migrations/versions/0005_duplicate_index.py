"""A partial index on the duplicate entries' identities.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

An import that re-reads or loses entries asks which duplicates were waiting for their
identities; without this index that question scanned the whole ``entry`` table (47 ms at
100,000 models, on every re-import that changed anything). Only duplicates are indexed, so
it costs the other entries nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHERE = sa.text("status = 'duplicate'")


def upgrade() -> None:
    # A catalog made by create_all in a development build already has it.
    op.create_index(
        "ix_entry_duplicate_identity",
        "entry",
        ["name", "version_key"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_entry_duplicate_identity", table_name="entry")

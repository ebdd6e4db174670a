"""The directory table remembers each directory's files (names, sizes, mtimes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

When a directory's fingerprint no longer matches, the listing says which files changed, and
only the entries those files belong to are looked at: a re-import after touching 1% of the
sidecars of a large library no longer regroups every file of every directory.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Text compares bytewise (collation "C") on PostgreSQL, as on SQLite.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    # JSON text, not a JSON column: an import holds every changed directory's listing until it
    # ends, and one compact string per directory is a fraction of the memory of decoded lists.
    with op.batch_alter_table("directory") as batch:
        batch.add_column(sa.Column("listing", TEXT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("directory") as batch:
        batch.drop_column("listing")

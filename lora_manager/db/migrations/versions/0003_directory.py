"""The directory table: a fingerprint of each walked directory of the library.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

While a directory's fingerprint (its files' names, sizes and mtimes) matches, an import
does not look at its entries at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Text compares bytewise (collation "C") on PostgreSQL, as on SQLite: path ranges depend on it.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("directory"):
        return  # made by create_all in a development build before this revision existed
    op.create_table(
        "directory",
        sa.Column("path", TEXT, nullable=False),
        sa.Column("fingerprint", TEXT, nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_directory")),
    )


def downgrade() -> None:
    op.drop_table("directory")

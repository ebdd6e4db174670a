"""Directories remember their files as a compact record and their names, instead of JSON text.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

The record (see ``lora_manager.listings``) is the digest of the files' names and 24 bytes a
file of the numbers the fingerprint already hashes: making and comparing it costs a fraction
of the JSON listing it replaces, and it is a third of its size. The names are kept apart,
compressed, and read only when they changed (files added, removed or renamed). A directory that changed
before its record is first written is looked at in full once, as a directory without a
listing always was.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    # Added first, outside the batch, so that it ends up last as in schema.py (a batch would move it).
    op.add_column("directory", sa.Column("files", sa.LargeBinary(), nullable=True))
    op.add_column("directory", sa.Column("names", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("directory") as batch:
        batch.drop_column("listing")


def downgrade() -> None:
    with op.batch_alter_table("directory") as batch:
        batch.add_column(sa.Column("listing", TEXT, nullable=True))
        batch.drop_column("files")
        batch.drop_column("names")

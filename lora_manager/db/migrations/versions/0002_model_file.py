"""The model_file table: every model file seen, with the hashes computed for it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

A catalog created before migrations existed (adopted at 0001) may already hold a
``model_file`` table of an older shape: it keeps its rows and gains the columns it lacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Text compares bytewise (collation "C") on PostgreSQL, as on SQLite: path ranges depend on it.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)
INDEXED = ("sha256", "autov3", "tensor_sha256")


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("path", TEXT, nullable=False),
        sa.Column("size", INT, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", TEXT, nullable=True),
        sa.Column("autov3", TEXT, nullable=True),
        sa.Column("autov3_source", TEXT, nullable=True),
        # The SHA256 of the tensor data (after the header); autov3 is then its first 12 hex.
        sa.Column("tensor_sha256", TEXT, nullable=True),
        sa.Column("hashed_size", INT, nullable=True),
        sa.Column("hashed_mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("hashed_at", WHEN, nullable=True),
        sa.Column("missing_since", WHEN, nullable=True),
    ]


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("model_file"):
        op.create_table("model_file", *_columns(), sa.PrimaryKeyConstraint("path", name=op.f("pk_model_file")))
        for name in INDEXED:
            op.create_index(op.f(f"ix_model_file_{name}"), "model_file", [name])
        return
    have = {c["name"] for c in inspector.get_columns("model_file")}
    indexes = {i["name"] for i in inspector.get_indexes("model_file")}
    with op.batch_alter_table("model_file") as batch:
        for column in _columns():
            if column.name not in have:
                batch.add_column(column)  # only nullable columns were ever added
    for name in INDEXED:
        if f"ix_model_file_{name}" not in indexes:
            op.create_index(op.f(f"ix_model_file_{name}"), "model_file", [name])


def downgrade() -> None:
    op.drop_table("model_file")

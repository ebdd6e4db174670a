"""The core tables: adapter, adapter_tag, entry, import_run, import_failure.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Names follow ``schema.NAMING`` (pk_/fk_/ix_); JSON columns are JSONB on PostgreSQL; integer
keys are BIGINT on PostgreSQL and INTEGER on SQLite (so that they are rowid aliases there).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the schema's types: a migration must not change when schema.py does.
# Text compares bytewise (collation "C") on PostgreSQL, as on SQLite: path ranges depend on it.
TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "adapter",
        sa.Column("id", INT, nullable=False),
        sa.Column("name", TEXT, nullable=False),
        sa.Column("version", TEXT, nullable=True),
        sa.Column("version_key", TEXT, nullable=False),
        sa.Column("canonical_version_name", TEXT, nullable=True),
        sa.Column("description", TEXT, nullable=True),
        sa.Column("author_username", TEXT, nullable=True),
        sa.Column("visibility", TEXT, nullable=False),
        sa.Column("published_at", WHEN, nullable=True),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("trained_words", JSON, nullable=False),
        sa.Column("triggers", JSON, nullable=False),
        sa.Column("file_path", TEXT, nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("weight_source", TEXT, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("ordinal", INT, nullable=True),
        sa.Column("archetype", TEXT, nullable=True),
        sa.Column("archetype_confidence", sa.Float(), nullable=True),
        sa.Column("primary_file_name", TEXT, nullable=True),
        sa.Column("primary_file_size_kb", sa.Float(), nullable=True),
        sa.Column("primary_file_sha256", TEXT, nullable=True),
        sa.Column("primary_file_autov2", TEXT, nullable=True),
        sa.Column("primary_file_autov3", TEXT, nullable=True),
        sa.Column("primary_file_download_url", TEXT, nullable=True),
        sa.Column("primary_file_local_path", TEXT, nullable=True),
        sa.Column("hash_sources", JSON, nullable=False),
        sa.Column("supports_generation", sa.Boolean(), nullable=False),
        sa.Column("sd_version", TEXT, nullable=True),
        sa.Column("base_model", TEXT, nullable=True),
        sa.Column("nsfw_level", INT, nullable=False),
        sa.Column("activation_text", TEXT, nullable=True),
        sa.Column("notes", TEXT, nullable=True),
        sa.Column("negative_text", TEXT, nullable=True),
        sa.Column("civitai_model_id", INT, nullable=True),
        sa.Column("civitai_version_id", INT, nullable=True),
        sa.Column("preview_path", TEXT, nullable=True),
        sa.Column("stats", JSON, nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("header_metadata", JSON, nullable=True),
        sa.Column("sidecars", JSON, nullable=False),
        sa.Column("search_text", TEXT, nullable=False),
        sa.Column("json_file_path", TEXT, nullable=True),
        sa.Column("json_file_mtime", WHEN, nullable=True),
        sa.Column("json_file_size", INT, nullable=True),
        sa.Column("entry_key", TEXT, nullable=True),
        sa.Column("missing_since", WHEN, nullable=True),
        sa.Column("last_ingested_at", WHEN, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adapter")),
    )
    op.create_index(op.f("ix_adapter_author_username"), "adapter", ["author_username"])
    op.create_index(op.f("ix_adapter_base_model"), "adapter", ["base_model"])
    op.create_index(op.f("ix_adapter_entry_key"), "adapter", ["entry_key"])
    op.create_index(op.f("ix_adapter_primary_file_sha256"), "adapter", ["primary_file_sha256"])
    # The upsert's ON CONFLICT target: one row per (name, version or '').
    op.create_index("uq_adapter_name_version_key", "adapter", ["name", "version_key"], unique=True)

    op.create_table(
        "adapter_tag",
        sa.Column("adapter_id", INT, nullable=False),
        sa.Column("tag", TEXT, nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapter.id"], name=op.f("fk_adapter_tag_adapter_id_adapter"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("adapter_id", "tag", name=op.f("pk_adapter_tag")),
    )
    op.create_index(op.f("ix_adapter_tag_tag"), "adapter_tag", ["tag"])

    op.create_table(
        "entry",
        sa.Column("key", TEXT, nullable=False),
        sa.Column("signature", TEXT, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("name", TEXT, nullable=True),
        sa.Column("version_key", TEXT, nullable=True),
        sa.Column("adapter_id", INT, nullable=True),
        sa.Column("model_path", TEXT, nullable=True),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("seen_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["adapter_id"], ["adapter.id"], name=op.f("fk_entry_adapter_id_adapter"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_entry")),
    )
    op.create_index(op.f("ix_entry_adapter_id"), "entry", ["adapter_id"])

    op.create_table(
        "import_run",
        sa.Column("id", INT, nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.Column("roots", JSON, nullable=False),
        sa.Column("status", TEXT, nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_run")),
    )

    op.create_table(
        "import_failure",
        sa.Column("id", INT, nullable=False),
        sa.Column("run_id", INT, nullable=False),
        sa.Column("path", TEXT, nullable=False),
        sa.Column("category", TEXT, nullable=False),
        sa.Column("message", TEXT, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["import_run.id"], name=op.f("fk_import_failure_run_id_import_run"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_failure")),
    )
    op.create_index(op.f("ix_import_failure_run_id"), "import_failure", ["run_id"])


def downgrade() -> None:
    for table in ("import_failure", "import_run", "entry", "adapter_tag", "adapter"):
        op.drop_table(table)  # children first; their indexes go with them

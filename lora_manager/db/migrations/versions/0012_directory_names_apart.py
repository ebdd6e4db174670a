"""A directory's names move to a table of their own, ``directory_names``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27

A re-import rewrites the ``directory`` row of every folder where a file changed (its
fingerprint and files record), and SQLite rewrites a row whole: with the compressed names in
it, a folder of a few hundred files took a second page of the catalog, and a thousand
scattered edits in a 100,000-model library wrote ~200 pages more than they needed (764 folder
pages against 567 with the names apart, both with 8-byte records). The
names change only when files are added, removed or renamed, and are read only then.

The files record's format changes in the same release (8 bytes a file instead of 24: see
``lora_manager.listings``). Nothing is migrated for it: a stored record of the old size never
matches a new one, so a folder that changed is looked at in full once, and its record is
stored anew.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    # As 0003 and 0008 do, the catalog is taken as it is found: one made by this release and
    # stamped back to replay older revisions has the table already (and 0008 gave it the column).
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("directory_names"):
        op.create_table(
            "directory_names",
            sa.Column("path", TEXT, nullable=False),
            sa.Column("names", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("path", name=op.f("pk_directory_names")),
        )
    if any(column["name"] == "names" for column in inspector.get_columns("directory")):
        op.execute(
            "INSERT INTO directory_names (path, names) SELECT path, names FROM directory"
            " WHERE names IS NOT NULL AND path NOT IN (SELECT path FROM directory_names)"
        )
        with op.batch_alter_table("directory") as batch:
            batch.drop_column("names")


def downgrade() -> None:
    op.add_column("directory", sa.Column("names", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE directory SET names = (SELECT names FROM directory_names WHERE directory_names.path = directory.path)"
    )
    op.drop_table("directory_names")

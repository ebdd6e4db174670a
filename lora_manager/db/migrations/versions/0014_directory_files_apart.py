"""A directory's full files record moves out of ``directory_names`` into a table of its own.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27

Beside the compressed names (0013), the full record (8 bytes a file) made each row two or
three pages long, and storing the record again when its patch grows too long (about one
directory in sixteen on each re-import after scattered edits) rewrote the unchanged names
with it. In ``directory_files`` it is stored alone, in about one page. Each stored record
moves as it is: nothing is looked at again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    # As 0012 and 0013 do, the catalog is taken as it is found (a catalog of this release
    # stamped back to replay older revisions has the table already).
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("directory_files"):
        op.create_table(
            "directory_files",
            sa.Column("path", TEXT, nullable=False),
            sa.Column("files", sa.LargeBinary(), nullable=False),
            sa.PrimaryKeyConstraint("path", name=op.f("pk_directory_files")),
        )
    if any(column["name"] == "files" for column in inspector.get_columns("directory_names")):
        op.execute(
            "INSERT INTO directory_files (path, files) SELECT path, files FROM directory_names"
            " WHERE files IS NOT NULL AND path NOT IN (SELECT path FROM directory_files)"
        )
        with op.batch_alter_table("directory_names") as batch:
            batch.drop_column("files")


def downgrade() -> None:
    op.add_column("directory_names", sa.Column("files", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE directory_names SET files ="
        " (SELECT files FROM directory_files WHERE directory_files.path = directory_names.path)"
    )
    op.drop_table("directory_files")

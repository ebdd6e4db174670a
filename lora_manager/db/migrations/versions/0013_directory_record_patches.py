"""A directory's full files record moves beside its names; its row keeps a patch of it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27

A re-import rewrites the ``directory`` row of every folder where a file changed. With the
full files record in it (8 bytes a file), a thousand scattered edits in a 100,000-model
library rewrote 566 pages of folder rows, the whole table nearly, to change one file's value
in each. The full record now lives in ``directory_names`` (written when the names change, or
when more than 16 files differ from it), and the row holds ``patch``: the files that differ
from it (see ``lora_manager.listings.patch_for``).

Each stored record becomes a base with an empty patch, so nothing is looked at again. A
record without a names row to go with (there should be none) is dropped: its folder is
looked at in full once, when it next changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # As 0012 does, the catalog is taken as it is found (a catalog of this release stamped back
    # to replay older revisions has the new columns already, and no ``directory.files``).
    inspector = sa.inspect(op.get_bind())
    listed = {column["name"] for column in inspector.get_columns("directory_names")}
    if "files" not in listed:
        op.add_column("directory_names", sa.Column("files", sa.LargeBinary(), nullable=True))
    columns = {column["name"] for column in inspector.get_columns("directory")}
    if "patch" not in columns:
        op.add_column("directory", sa.Column("patch", sa.LargeBinary(), nullable=True))
    if "files" in columns:
        op.execute(
            "UPDATE directory_names SET files ="
            " (SELECT files FROM directory WHERE directory.path = directory_names.path)"
        )
        op.execute("UPDATE directory SET patch = NULL")
        op.get_bind().execute(
            sa.text(
                "UPDATE directory SET patch = :empty WHERE files IS NOT NULL"
                " AND path IN (SELECT path FROM directory_names)"
            ),
            {"empty": b""},
        )
        with op.batch_alter_table("directory") as batch:
            batch.drop_column("files")


def downgrade() -> None:
    # A record with an empty patch is its base; one with changes is dropped (a full look, once).
    op.add_column("directory", sa.Column("files", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE directory SET files = (SELECT files FROM directory_names WHERE directory_names.path = directory.path)"
        " WHERE length(patch) = 0"
    )
    with op.batch_alter_table("directory") as batch:
        batch.drop_column("patch")
    with op.batch_alter_table("directory_names") as batch:
        batch.drop_column("files")

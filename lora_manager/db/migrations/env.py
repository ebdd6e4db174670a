"""Alembic's environment for the catalog: runs on the connection ``lora_manager.db.migrate`` hands over.

At run time there is no ``alembic.ini``: :func:`lora_manager.db.migrate.alembic_config` builds the
``Config`` and passes an open connection (inside the transaction that holds the migration lock)
as ``config.attributes["connection"]``. Alembic then joins that transaction instead of
committing on its own, so a failed or killed migration leaves the previous schema intact.

A developer writing revision 000N autogenerates it against a scratch catalog at head::

    python -c "from alembic import command; from lora_manager.db.migrate import alembic_config; \
command.revision(alembic_config(url='sqlite:///scratch.db'), 'what changed', autogenerate=True, rev_id='000N')"

and then reads every generated op (names, types, indexes) before committing it.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from lora_manager.db.migrate import compare_type
from lora_manager.db.schema import JsonType, TextType, UtcDateTime, metadata


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Autogenerate writes plain SQLAlchemy types, never our decorators: a revision must not import schema.py."""
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, TextType):
        return "TEXT"  # the module-level Text/TEXT COLLATE "C" variant every revision defines
    if kind == "type" and isinstance(obj, JsonType):
        return "JSON"  # likewise: JSON, JSONB on PostgreSQL
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_item=_render_item,
        # SQLite alters most things by copying the table: batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=compare_type,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given: use lora_manager.db.migrate.alembic_config(connection=...)")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run them against the database")
run_migrations_online()

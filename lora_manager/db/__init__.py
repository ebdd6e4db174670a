"""The catalog database: schema, engine, upserts, repository, migrations."""

from __future__ import annotations

from sqlalchemy import Engine


def open_catalog(db: str | None) -> Engine:
    """The engine for ``--db`` (or ``LORA_DB``, or the default), its schema ready."""
    from lora_manager.db.engine import create_catalog_engine, database_url
    from lora_manager.db.migrate import ensure_schema

    engine = create_catalog_engine(database_url(db))
    ensure_schema(engine)
    return engine

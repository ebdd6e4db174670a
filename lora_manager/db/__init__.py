"""The catalog database: schema, engine, upserts, repository, migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine


def open_catalog(db: str | None, create: bool = True, source: str = "--db") -> Engine:
    """The engine for ``--db`` (or ``LORA_DB``, or the default), its schema ready.

    ``create`` False: a SQLite file that does not exist is not made (an empty catalog in
    memory stands for it; see ``engine.create_catalog_engine``). ``source``: where ``db`` came
    from, as messages name it (see ``engine.database_url``).
    """
    from lora_manager.db.engine import create_catalog_engine, database_url
    from lora_manager.db.migrate import ensure_schema

    engine = create_catalog_engine(database_url(db, source), create=create)
    ensure_schema(engine)
    return engine

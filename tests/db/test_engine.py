"""How a SQLite catalog's connections are set up: the durability and concurrency the README promises."""

from __future__ import annotations

from pathlib import Path

from lora_manager.db import open_catalog
from lora_manager.db.engine import BUSY_TIMEOUT_MS, WAL_CHECKPOINT_PAGES


def test_sqlite_catalog_runs_in_wal_mode_with_its_checkpoint_and_busy_timeout(tmp_path: Path) -> None:
    """WAL (readers beside an import), NORMAL sync, a 10,000-page checkpoint, waits instead of failing when busy."""
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "wal_autocheckpoint", "busy_timeout", "foreign_keys")
            }
    finally:
        engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "wal_autocheckpoint": WAL_CHECKPOINT_PAGES,
        "busy_timeout": BUSY_TIMEOUT_MS,
        "foreign_keys": 1,
    }
    assert WAL_CHECKPOINT_PAGES == 10_000

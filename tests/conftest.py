"""Fixtures shared by every test: isolation, a CLI runner, real catalogs on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from tests.pgserver import REQUIRE_ENV, PgServer, PostgresUnavailable, postgres_required


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own catalog, data directory and a wide, colourless terminal."""
    data = tmp_path / "userdata"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("LORA_DB", str(tmp_path / "catalog.db"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("LORA_DEBUG", raising=False)
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite catalog file that LORA_DB points at."""
    return tmp_path / "catalog.db"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL cluster for the whole run (Unix socket only)."""
    server = PgServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        if postgres_required():
            pytest.fail(f"{REQUIRE_ENV} is set but {exc}", pytrace=False)
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


_pg_db_numbers = itertools.count()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """SQLAlchemy URL of a brand-new, empty PostgreSQL database for this test only."""
    name = f"lora_test_{next(_pg_db_numbers)}"
    url = pg_server.create_database(name)
    yield url
    gc.collect()
    gc.collect()  # finalize connections a test leaked while pytest can still blame it
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request: pytest.FixtureRequest, db_path: Path) -> str:
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return str(db_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    """An open catalog (SQLite, then PostgreSQL), disposed of after the test."""
    from lora_manager.db import open_catalog

    engine = open_catalog(catalog_url)
    yield engine
    engine.dispose()

"""How a catalog's connections are set up: the durability, concurrency and bounded waits the README promises."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db import engine as engine_module
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


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A TCP port that takes connections and never says a word (a stuck host, a port that is no
    PostgreSQL). The system completes each connection for the listening socket: nothing need accept it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener


def connections_made(listener: socket.socket) -> int:
    """How many connections came to ``listener`` (each waits in its queue, answered or not)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            listener.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


@pytest.mark.parametrize(
    ("query", "env"), [("", ""), ("?connect_timeout=2", ""), ("", "2")], ids=["default", "url", "PGCONNECT_TIMEOUT"]
)
def test_a_postgresql_server_that_never_answers_fails_once_the_connect_timeout_is_over(
    silent_server: socket.socket, monkeypatch: pytest.MonkeyPatch, query: str, env: str
) -> None:
    """No hang on a server that accepts and stays silent: one attempt, then one line and exit 2."""
    pytest.importorskip("psycopg")
    port = silent_server.getsockname()[1]
    monkeypatch.setattr(engine_module, "CONNECT_TIMEOUT_S", 2)  # psycopg's least; the default is 10
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    if env:
        monkeypatch.setenv("PGCONNECT_TIMEOUT", env)
    url = f"postgresql+psycopg://lora:secret@127.0.0.1:{port}/lora{query}"
    result = CliRunner().invoke(app, ["--db", url, "status"])
    assert result.exit_code == 2, result.output
    limit = "the URL's connect_timeout (2 s)" if query else "PGCONNECT_TIMEOUT (2 s)" if env else "2 s"
    assert result.stderr == (
        f"lora: error: cannot open the catalog at postgresql+psycopg://lora:***@127.0.0.1:{port}/lora{query}: "
        f"connection timeout expired: no answer from the server within {limit}; check the host and port, "
        "or give a slow server longer with ?connect_timeout=SECONDS in the URL\n"
    )
    assert connections_made(silent_server) == 1  # not a second wait as long as the first


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["", "keepalives_idle=5"], ids=["default", "url"])
def test_a_postgresql_catalog_probes_a_silent_server_within_minutes_unless_the_url_says_how(
    pg_url: str, query: str
) -> None:
    """libpq's own keepalives start after the system's two idle hours: a dead server's host held a command that long.

    Ours ask after 60 s, every 10 s, six times; a URL that names any ``keepalives`` setting keeps libpq's
    defaults for the rest. (Whether a dead peer is then noticed is the operating system's part: a test
    cannot make a live server's system stop answering.)
    """
    url = pg_url + ("&" if "?" in pg_url else "?") + query if query else pg_url
    engine = open_catalog(url)
    try:
        with engine.connect() as conn:
            # libpq's settings for this connection, less those left unset.
            given = conn.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    chosen = {name: value for name, value in given.items() if name.startswith("keepalives")}
    if query:
        assert chosen == {"keepalives_idle": "5"}
    else:
        ours = {"keepalives": "1", "keepalives_idle": "60", "keepalives_interval": "10", "keepalives_count": "6"}
        assert chosen == ours

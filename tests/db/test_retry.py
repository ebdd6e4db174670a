"""Transient database failures, provoked for real: a locked SQLite file, a PostgreSQL backend killed mid-batch."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, create_engine, func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from lora_manager.db.engine import create_catalog_engine
from lora_manager.db.migrate import ensure_schema
from lora_manager.db.retry import in_transaction
from lora_manager.db.schema import adapter, import_run
from lora_manager.errors import LoraError
from tests.builders import civitai_model, write_model
from tests.pgserver import PgServer

PROJECT = Path(__file__).resolve().parents[2]
PgConnection = psycopg.Connection[tuple[Any, ...]]
items = Table("items", MetaData(), Column("id", Integer, primary_key=True))


class Tally:
    """Stands for the importer's in-memory state: what a failed attempt recorded must be undone."""

    def __init__(self) -> None:
        self.seen: list[int] = []


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite engine that gives up on a lock after 10 ms instead of 30 s."""
    engine = create_engine(f"sqlite:///{tmp_path / 'locked.db'}", connect_args={"timeout": 0.01})
    items.create(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's exclusive lock."""
    conn = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    yield conn
    conn.close()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(items)).scalar_one())


def test_locked_sqlite_transaction_is_retried_once_the_lock_is_gone(
    impatient: Engine, holder: sqlite3.Connection
) -> None:
    """ "database is locked" is transient: the transaction runs again, and its tally counts once."""
    tally = Tally()
    failures: list[str] = []

    def work(conn: Connection) -> None:
        tally.seen.append(1)
        conn.execute(insert(items).values(id=1))

    def release(attempt: int, exc: BaseException) -> None:
        failures.append(str(getattr(exc, "orig", exc)))
        holder.execute("ROLLBACK")

    in_transaction(impatient, work, "saving a batch", keep=[tally], on_retry=release)

    assert failures == ["database is locked"]
    assert tally.seen == [1]
    assert _count(impatient) == 1


def test_lock_that_outlasts_every_attempt_becomes_one_clear_error(
    impatient: Engine, holder: sqlite3.Connection
) -> None:
    """After the bounded attempts, a LoraError (exit 2) says what failed and that saved work is kept."""
    calls: list[int] = []

    with pytest.raises(LoraError) as raised:
        in_transaction(impatient, lambda conn: conn.execute(insert(items).values(id=1)), "saving a batch",
                       attempts=3, on_retry=lambda attempt, exc: calls.append(attempt))  # fmt: skip

    assert calls == [1, 2]
    assert raised.value.exit_code == 2
    assert raised.value.message.startswith("saving a batch: the database failed 3 times in a row (database is locked)")
    assert "run the command again" in raised.value.message


def test_a_constraint_violation_is_not_retried(impatient: Engine) -> None:
    """Only transient failures are retried: a real error in our data surfaces at once."""
    with impatient.begin() as conn:
        conn.execute(insert(items).values(id=1))
    calls: list[int] = []
    with pytest.raises(IntegrityError):
        in_transaction(impatient, lambda conn: conn.execute(insert(items).values(id=1)), "saving a batch",
                       on_retry=lambda attempt, exc: calls.append(attempt))  # fmt: skip
    assert calls == []


# --- PostgreSQL: the importer's batches survive a terminated backend ---------------------------------


def _library(root: Path, n: int) -> None:
    for i in range(n):
        write_model(root, f"lora{i:03d}", civitai_model(f"LoRA {i:03d}", file_name=f"lora{i:03d}.safetensors",
                                                        tags=["style", f"t{i % 3}"]))  # fmt: skip


def _start_import(url: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lora_manager", "--db", url, "import", str(root), "--json"],
        cwd=PROJECT, env={**os.environ, "LORA_DB": url}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
def blocked_tags(pg_url: str, pg_server: PgServer) -> Iterator[tuple[PgConnection, Callable[[], int]]]:
    """A migrated catalog whose adapter_tag table is locked (so the first batch waits on it), and a
    function that terminates the backends waiting for a lock there (returning how many)."""
    engine = create_catalog_engine(pg_url)
    ensure_schema(engine)
    engine.dispose()
    dbname = make_url(pg_url).database
    assert dbname
    # Two connections: the locker's open transaction would see pg_stat_activity frozen at its start.
    with (
        psycopg.connect(**pg_server.conninfo(dbname)) as locker,
        psycopg.connect(**pg_server.conninfo(dbname), autocommit=True) as monitor,
    ):
        locker.execute("LOCK TABLE adapter_tag IN ACCESS EXCLUSIVE MODE")

        def kill_lock_waiters() -> int:
            return len(
                monitor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND wait_event_type = 'Lock' AND pid <> %s",
                    (dbname, locker.info.backend_pid),
                ).fetchall()
            )

        yield locker, kill_lock_waiters


@pytest.mark.postgres
def test_import_batch_survives_its_backend_being_terminated(
    pg_url: str, tmp_path: Path, blocked_tags: tuple[PgConnection, Callable[[], int]]
) -> None:
    """pg_terminate_backend in the middle of a batch: the batch is retried and nothing is lost or doubled."""
    locker, kill_lock_waiters = blocked_tags
    _library(tmp_path / "lib", 30)
    proc = _start_import(pg_url, tmp_path / "lib")
    deadline = time.monotonic() + 60
    while not kill_lock_waiters():
        assert proc.poll() is None and time.monotonic() < deadline, "the import never reached its first batch"
        time.sleep(0.01)
    locker.rollback()  # let the retried batch through

    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert json.loads(out)["new"] == 30
    engine = create_catalog_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(adapter)).scalar_one() == 30
            assert conn.execute(select(import_run.c.status)).scalars().all() == ["completed"]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_import_whose_batches_keep_failing_exits_2_with_one_line(
    pg_url: str, tmp_path: Path, blocked_tags: tuple[PgConnection, Callable[[], int]]
) -> None:
    """Every attempt's backend is terminated: the import gives up after the bounded retries, no traceback."""
    locker, kill_lock_waiters = blocked_tags
    _library(tmp_path / "lib", 5)
    proc = _start_import(pg_url, tmp_path / "lib")
    deadline = time.monotonic() + 60
    killed = 0
    while proc.poll() is None:
        killed += kill_lock_waiters()
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail("the import never gave up")
        time.sleep(0.01)
    locker.rollback()

    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 2, (out, err)
    assert killed == 5
    assert "Traceback" not in err
    assert err.startswith("lora: error: saving a batch: the database failed 5 times in a row (")
    # The driver's own reason, which depends on the statement the kill interrupts.
    assert "terminating connection due to administrator command" in err or "closed the connection" in err


@pytest.mark.postgres
def test_a_postgresql_import_lock_lost_with_its_connection_is_noticed_and_not_an_error_to_release(
    pg_url: str,
) -> None:
    """The advisory lock lives on one idle connection: dropped (a restart, pg_terminate_backend), the
    import went on without it, a second import could take it, and releasing it raised instead."""
    from lora_manager.db.lock import ADVISORY_KEY, import_lock, import_running

    engine = create_catalog_engine(pg_url)
    ensure_schema(engine)
    other = psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        with import_lock(engine) as held:
            held.check()  # held: nothing raised
            assert import_running(engine)
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (ADVISORY_KEY & 0xFFFFFFFF,),
            )
            other.commit()
            time.sleep(0.1)
            held._checked = -1e9  # the next look is due now, not in a second
            with pytest.raises(LoraError, match="lost the catalog's import lock"):
                held.check()
        assert not import_running(engine)
    finally:
        other.close()
        engine.dispose()


def test_a_connection_the_server_refuses_is_worth_another_try() -> None:
    """psycopg gives no SQLSTATE when it cannot connect at all: a server restarting looked permanent."""
    from sqlalchemy.exc import OperationalError

    from lora_manager.db.retry import is_transient

    engine = create_engine("postgresql+psycopg://nobody@/nowhere?host=/nonexistent-socket-dir")
    try:
        with pytest.raises(OperationalError) as caught:
            engine.connect()
        assert is_transient(caught.value)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_the_server_refuses_for_good_is_not_retried(pg_url: str) -> None:
    """No such role (or database, or a wrong password): the server answered; trying again changes nothing."""
    from sqlalchemy.exc import OperationalError

    from lora_manager.db.retry import is_transient

    engine = create_engine(make_url(pg_url).set(username="nobody_here"))
    try:
        with pytest.raises(OperationalError) as caught:
            engine.connect()
        assert not is_transient(caught.value)
    finally:
        engine.dispose()

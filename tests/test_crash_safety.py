"""Imports that are killed, interrupted or overlap, run as real processes on a real SQLite catalog.

No sleeps stand in for synchronisation: the tests poll the catalog (or the lock file, or the
process's stderr) until what they wait for is there, with a deadline. To hold an import at a
known point, a test keeps SQLite's write lock itself; the import then waits in its busy timeout.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db.lock import import_running
from lora_manager.services.importer import ImportOptions
from tests.builders import civitai_model, write_model

PROJECT = Path(__file__).resolve().parents[1]
VOLATILE = frozenset({"id", "created_at", "updated_at", "last_ingested_at"})
DEADLINE = 60.0


def _library(root: Path, n: int) -> Path:
    """``n`` good entries in 25 folders, each with two tags."""
    for i in range(n):
        write_model(root / f"d{i % 25:02d}", f"m{i:05d}", civitai_model(f"Model {i:05d}",
                    file_name=f"m{i:05d}.safetensors", tags=["style", f"g{i % 7}"]))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def big_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few thousand entries: several batches, read by worker processes."""
    return _library(tmp_path_factory.mktemp("big") / "lib", 5000)


def _start(db: Path, *args: str) -> subprocess.Popen[str]:
    """``lora`` in its own process group (a terminal's Ctrl-C reaches the whole group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "lora_manager", *args],
        cwd=PROJECT, env={**os.environ, "LORA_DB": str(db)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def _until(condition: Callable[[], bool], proc: subprocess.Popen[str] | None = None, what: str = "") -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the import ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


def _count(db: Path, table: str = "entry") -> int:
    try:
        with closing(sqlite3.connect(db)) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def _lock_held(db: Path) -> bool:
    """Whether some process holds the import lock (the flock on ``<db>.lock``), as ``lora status`` asks."""
    return import_running(create_engine(f"sqlite:///{db}"))


@contextmanager
def _write_lock(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock: an import reaching its next write waits (busy timeout) until we let go."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=DEADLINE)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    """Block until ``proc`` writes a stderr line containing ``text`` (read by a thread, so a deadline holds)."""
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stderr:
            lines.put(line)
            if text in line:
                return
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=DEADLINE)
        assert line, f"the process ended without writing {text!r}"
        if text in line:
            return


def _listing(db: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(app, ["--db", str(db), "list", "--json"])
    assert result.exit_code == 0, result.output
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in json.loads(result.stdout)]


def _runs(db: Path) -> list[tuple[str, dict[str, int]]]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT status, counts FROM import_run ORDER BY id").fetchall()
    return [(status, json.loads(counts)) for status, counts in rows]


def _ready(db: Path) -> None:
    """Create the catalog (schema at head, WAL mode) before a test holds its write lock."""
    assert CliRunner().invoke(app, ["--db", str(db), "db", "upgrade"]).exit_code == 0


def test_import_killed_mid_run_leaves_a_consistent_catalog_that_the_next_import_completes(
    big_library: Path, tmp_path: Path
) -> None:
    """SIGKILL once batches are committed; the catalog is sound, and a re-run ends where a clean run ends."""
    db = tmp_path / "killed.db"
    proc = _start(db, "import", str(big_library), "--quiet")
    _until(lambda: _count(db) > 0, proc, "the first batch was committed")
    os.kill(proc.pid, signal.SIGKILL)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its reader processes too, which hold its pipes open
    proc.communicate(timeout=DEADLINE)  # reaps it and closes the pipes

    committed = _count(db)
    assert 0 < committed < 5000
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # Every committed entry owns exactly its adapter row, tags included: no half batch.
        assert conn.execute(
            "SELECT count(*) FROM entry e JOIN adapter a ON a.id = e.adapter_id AND a.entry_key = e.key"
        ).fetchone() == (committed,)
        assert conn.execute("SELECT count(*) FROM adapter").fetchone() == (committed,)
        assert conn.execute("SELECT count(*) FROM adapter_tag").fetchone() == (2 * committed,)

    resumed = _start(db, "import", str(big_library), "--json")
    out, err = resumed.communicate(timeout=DEADLINE)
    assert resumed.returncode == 0, err
    assert json.loads(out)["new"] == 5000 - committed

    clean = tmp_path / "clean.db"
    assert CliRunner().invoke(app, ["--db", str(clean), "import", str(big_library), "--quiet"]).exit_code == 0
    assert _listing(db) == _listing(clean)
    assert [status for status, _ in _runs(db)] == ["interrupted", "completed"]


def test_second_import_waits_for_the_first_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    """Two imports of one library into one file: the second waits (--wait is the default), then finds it done."""
    lib = _library(tmp_path / "lib", 60)
    db = tmp_path / "catalog.db"
    _ready(db)
    with _write_lock(db):  # the first import takes the import lock, then waits for ours
        first = _start(db, "import", str(lib), "--json")
        _until(lambda: _lock_held(db), first, "the first import held the import lock")
        second = _start(db, "import", str(lib), "--json")
        _wait_for_line(second, "waiting for another import to finish")
    results = [p.communicate(timeout=DEADLINE) for p in (first, second)]

    assert [p.returncode for p in (first, second)] == [0, 0], results
    reports = [json.loads(out) for out, _ in results]
    assert [(r["new"], r["unchanged"]) for r in reports] == [(60, 0), (0, 60)]
    assert _count(db, "adapter") == 60
    assert _count(db, "adapter_tag") == 120
    assert [status for status, _ in _runs(db)] == ["completed", "completed"]


def test_second_import_with_no_wait_exits_2_saying_another_import_runs(tmp_path: Path) -> None:
    """--no-wait fails at once with the reason and what to do; the running import is not disturbed."""
    lib = _library(tmp_path / "lib", 20)
    db = tmp_path / "catalog.db"
    _ready(db)
    with _write_lock(db):
        first = _start(db, "import", str(lib), "--json")
        _until(lambda: _lock_held(db), first, "the first import held the import lock")
        second = _start(db, "import", str(lib), "--no-wait")
        out, err = second.communicate(timeout=DEADLINE)
    first_out, first_err = first.communicate(timeout=DEADLINE)

    assert second.returncode == 2
    assert (out, err) == (
        "",
        f"lora: error: another import is running on the catalog {db}; retry later, or leave out --no-wait to wait "
        "for it\n",
    )
    assert first.returncode == 0, first_err
    assert json.loads(first_out)["new"] == 20
    assert [status for status, _ in _runs(db)] == ["completed"]


def test_ctrl_c_stops_after_the_current_batch_reports_it_and_exits_130(tmp_path: Path) -> None:
    """SIGINT to the import's process group: the batch in hand is committed, the rest is left for the next run."""
    from lora_manager.services.importer import EDIT_BATCH

    batch = min(ImportOptions(roots=[]).batch_size, EDIT_BATCH)  # fewer than 5,000 entries: edit-sized batches
    lib = _library(tmp_path / "lib", batch + 40)
    db = tmp_path / "catalog.db"
    _ready(db)
    with _write_lock(db):  # the import cannot get past its first write until Ctrl-C has been pressed
        proc = _start(db, "import", str(lib))
        _until(lambda: _lock_held(db), proc, "the import held the import lock (its Ctrl-C handler is set)")
        os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=DEADLINE)

    assert proc.returncode == 130, (out, err)
    assert out.startswith(f"imported: {batch} new, 0 updated, 0 unchanged, 0 skipped, 0 failed in ")
    assert "interrupted: the batches done so far are saved; run the import again to finish" in err
    assert "Traceback" not in err
    assert _count(db) == batch
    assert [status for status, _ in _runs(db)] == ["interrupted"]

    resumed = CliRunner().invoke(app, ["--db", str(db), "import", str(lib), "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert (json.loads(resumed.stdout)["new"], _count(db)) == (40, batch + 40)

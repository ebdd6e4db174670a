"""The background checkpoint: committed pages reach the catalog file while the connection that wrote them stays open."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from lora_manager.db import open_catalog
from lora_manager.db.checkpoint import BackgroundCheckpoint
from lora_manager.db.schema import import_run
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import civitai_version, write_model


def _rows_in_file_alone(path: Path, tmp: Path) -> int:
    """How many runs the catalog file holds by itself, its write-ahead log left out."""
    copy = tmp / "file-alone.db"
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        return int(db.execute("SELECT count(*) FROM import_run").fetchone()[0])


def _checkpoint_beside_the_writer(path: Path, tmp: Path, runs: int) -> tuple[int, int]:
    """Commit ``runs`` rows, then run one background checkpoint while the writer's connection stays
    open: the runs the file holds by itself before and after it."""
    engine = open_catalog(str(path))
    try:
        with engine.connect() as conn:  # the schema into the file first
            assert conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0] == 0
        with engine.begin() as conn:
            rows = [{"started_at": datetime.now(UTC), "roots": ["/lib"], "status": "completed"} for _ in range(runs)]
            conn.execute(import_run.insert(), rows)
        with engine.connect() as conn:  # the writer's connection is open: no close has copied anything
            assert conn.execute(select(import_run.c.id)).all()
            before = _rows_in_file_alone(path, tmp)
            checkpoint = BackgroundCheckpoint(path)
            checkpoint.start()
            checkpoint.wait()
            return before, _rows_in_file_alone(path, tmp)
    finally:
        engine.dispose()


def test_committed_pages_are_copied_into_the_file_while_the_writer_stays_open(tmp_path: Path) -> None:
    assert _checkpoint_beside_the_writer(tmp_path / "catalog.db", tmp_path, 50) == (0, 50)


def test_no_file_no_thread(tmp_path: Path) -> None:
    checkpoint = BackgroundCheckpoint(None)
    checkpoint.start()
    assert threading.active_count() == 1
    checkpoint.wait()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    """The file of every checkpoint the import asks for (it still runs)."""
    asked: list[Path | None] = []
    start = BackgroundCheckpoint.start

    def counted(self: BackgroundCheckpoint) -> None:
        asked.append(self.path)
        start(self)

    monkeypatch.setattr(BackgroundCheckpoint, "start", counted)
    return asked


def _library(root: Path) -> Path:
    for i in range(7):
        write_model(root, f"m{i}", civitai_version(f"Model {i}"), suffix=".civitai.info")
    return root


def test_an_import_in_batches_leaves_no_thread_and_a_consistent_file(
    tmp_path: Path, started: list[Path | None]
) -> None:
    """Batches of two: a checkpoint starts after each but the last (nothing is left to overlap with it);
    none outlives the import, and every row is there."""
    library = _library(tmp_path / "lib")
    path = tmp_path / "catalog.db"
    engine = open_catalog(str(path))
    try:
        report = run_import(engine, ImportOptions(roots=[str(library)], batch_size=2))
        assert threading.active_count() == 1
        assert report.counts["new"] == 7
        assert started == [path] * 3
    finally:
        engine.dispose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM adapter").fetchone()[0] == 7


def test_a_large_import_leaves_checkpoints_to_sqlite(
    tmp_path: Path, started: list[Path | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As many entries as the limit or more (a first import): no thread; SQLite checkpoints every 10,000 pages."""
    from lora_manager.services import importer

    monkeypatch.setattr(importer, "BACKGROUND_CHECKPOINT_BELOW", 7)
    library = _library(tmp_path / "lib")
    engine = open_catalog(str(tmp_path / "catalog.db"))
    try:
        assert run_import(engine, ImportOptions(roots=[str(library)], batch_size=2)).counts["new"] == 7
    finally:
        engine.dispose()
    assert started == [None] * 3  # asked after each batch but the last, with no file to copy: nothing runs


def _import_seven(tmp_path: Path) -> Path:
    """A first import of seven models with the default options; the catalog's path."""
    library = _library(tmp_path / "lib")
    path = tmp_path / "catalog.db"
    engine = open_catalog(str(path))
    try:
        assert run_import(engine, ImportOptions(roots=[str(library)])).counts["new"] == 7
    finally:
        engine.dispose()
    return path


def test_an_import_of_one_batch_asks_for_no_checkpoint(tmp_path: Path, started: list[Path | None]) -> None:
    """A re-import of a few edits writes one batch: the close copies its pages, once."""
    path = _import_seven(tmp_path)
    assert started == []
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names a descriptor's file through /proc")
def test_a_checkpoint_syncs_the_pages_it_copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite syncs the file only after copying the whole log; the copy here syncs what it copied."""
    import os

    synced: list[str] = []
    sync = getattr(os, "fdatasync", os.fsync)

    def recorded(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        sync(fd)

    monkeypatch.setattr(os, "fdatasync", recorded, raising=False)
    monkeypatch.setattr(os, "fsync", recorded)
    path = tmp_path / "catalog.db"
    assert _checkpoint_beside_the_writer(path, tmp_path, 1)[1] == 1
    assert str(path) in synced


def test_a_re_import_of_edits_writes_small_batches_each_copied_beside_the_next(
    tmp_path: Path, started: list[Path | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the limit of a re-import of edits, batches of ``EDIT_BATCH`` whatever ``batch_size`` says."""
    from lora_manager.services import importer

    monkeypatch.setattr(importer, "EDIT_BATCH", 3)
    path = _import_seven(tmp_path)
    assert started == [path] * 2  # 3, 3 and 1: a copy after each but the last

"""Reading changed entries during the walk: the results are those of reading them later, or none at all."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lora_manager.db import open_catalog
from lora_manager.discovery import walk
from lora_manager.paths import resolve_root
from lora_manager.services import prefetch as prefetch_module
from lora_manager.services import reader_process
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.import_report import ImportReport
from lora_manager.services.importer import ImportOptions, run_import
from lora_manager.services.prefetch import Prefetcher
from lora_manager.services.reading import read_entry
from tests.builders import civitai_model, write_model

MAX = 1 << 20


@pytest.fixture(autouse=True)
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wait for the reader to load: on a busy test machine it may load after the walk of a small library."""
    monkeypatch.setattr(prefetch_module, "BOOT_WAIT", 30.0)


@pytest.fixture(params=["spawned", "forked", "early"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each reader there is: a fresh interpreter everywhere, a fork of this process on Linux, and an
    early reader (a fresh interpreter started before the walk, as the CLI does, told its root later)."""
    if request.param == "forked" and not prefetch_module.can_fork():
        pytest.skip("no fork here (not Linux, or another thread runs)")
    if request.param == "spawned":
        monkeypatch.setattr(prefetch_module, "can_fork", lambda: False)
    if request.param == "early":
        init = Prefetcher.__init__

        def with_early_reader(self: Prefetcher, *args: Any, early: Any = None, **kwargs: Any) -> None:
            init(self, *args, early=early or prefetch_module.start_early_reader(), **kwargs)

        monkeypatch.setattr(Prefetcher, "__init__", with_early_reader)
    return str(request.param)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader is a fresh interpreter (these tests replace the program it runs)."""
    monkeypatch.setattr(prefetch_module, "can_fork", lambda: False)


def _library(root: Path, count: int, folders: int = 4) -> Path:
    for i in range(count):
        folder = root / f"f{i % folders}"
        write_model(folder, f"m{i:03}", civitai_model(f"Model {i}", file_name=f"m{i:03}.safetensors"))
    return root


def _edit(root: Path, every: int) -> list[Path]:
    """Rewrite every ``every``-th sidecar with a new description (size and mtime change)."""
    edited = sorted(root.rglob("*.json"))[::every]
    for path in edited:
        doc = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**doc, "description": "edited"}), encoding="utf-8")
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return edited


def test_prefetched_results_equal_reading_the_same_entries_here(tmp_path: Path, kind: str) -> None:
    """Every entry handed to the reader comes back as read_entry would make it, once, for that very entry."""
    root = resolve_root(_library(tmp_path / "lib", 30))
    entries = walk(root).entries
    pf = Prefetcher(root, MAX, start_at=4)
    try:
        pf.add(entries[:2])  # below start_at: held back
        assert pf.sent == 0
        pf.add(entries[2:])
        pf.walk_done()
        assert pf.sent == 30
        for e in entries:
            got = pf.take(e)
            want = read_entry(e, root, MAX)
            assert got is not None
            assert (got.key, got.status, got.row, got.problems) == (want.key, want.status, want.row, want.problems)
        assert pf.take(entries[0]) is None  # handed out once
        assert pf.used == 30
    finally:
        pf.close()


def test_a_result_is_not_used_for_another_grouping_of_the_same_key(tmp_path: Path, kind: str) -> None:
    """A directory grouped again after the walk makes new Entry objects: the reader's results are not theirs."""
    root = resolve_root(_library(tmp_path / "lib", 8, folders=1))
    first = walk(root).entries
    again = {e.key: e for e in walk(root).entries}
    pf = Prefetcher(root, MAX, start_at=1)
    try:
        pf.add(first)
        pf.walk_done()
        assert all(pf.take(again[e.key]) is None for e in first)
    finally:
        pf.close()


def test_too_few_entries_are_left_to_the_importer_and_past_the_limit_none_are_sent(tmp_path: Path, kind: str) -> None:
    """Fewer than start_at entries are left to the importer; past ``limit`` nothing more is held.

    A fresh interpreter starts with the first entry (it must load), an early reader is taken then,
    and either is let go; a fork never starts.
    """
    root = resolve_root(_library(tmp_path / "lib", 12, folders=1))
    entries = walk(root).entries
    few = Prefetcher(root, MAX, start_at=20)
    few.add(entries)
    reader = few._proc
    few.walk_done()
    assert few.sent == 0 and few.take(entries[0]) is None and few._proc is None
    few.close()
    if kind != "forked":
        assert reader is not None and reader.poll() is not None  # started, let go, and reaped
    else:
        assert reader is None
    capped = Prefetcher(root, MAX, start_at=1, limit=5)
    try:
        capped.add(entries)
        capped.walk_done()
        assert capped.sent == 5
        assert [capped.take(e) is not None for e in entries] == [True] * 5 + [False] * 7
    finally:
        capped.close()


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """``(sent, used)`` of every prefetcher an import closed; readers start from the first entry."""
    monkeypatch.setattr(prefetch_module, "START_AT", 1)
    monkeypatch.setattr(prefetch_module, "FORK_START_AT", 1)
    monkeypatch.setattr(prefetch_module.os, "cpu_count", lambda: 2)  # a reader even on a one-core machine
    seen: list[tuple[int, int]] = []
    close = Prefetcher.close

    def recording_close(self: Prefetcher) -> None:
        seen.append((self.sent, self.used))
        close(self)

    monkeypatch.setattr(Prefetcher, "close", recording_close)
    return seen


def test_a_reader_that_dies_leaves_every_entry_to_the_importer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed: list[tuple[int, int]], kind: str
) -> None:
    """A dead reader process is no error: take() answers None and the import reads the entries itself."""
    _misbehave(monkeypatch, kind, "dies")
    edited, report, records = _reimport_through(tmp_path, monkeypatch, 40)
    sent, used = closed[-1]
    # Entries were sent and none came back (how many were sent depends on when the pool
    # noticed the death: a broken pool takes no more).
    assert 0 < sent <= len(edited) and used == 0
    assert report.counts["updated"] == len(edited) and report.counts["failed"] == 0
    assert sum(1 for r in records if r["description"] == "edited") == len(edited)


def test_a_reader_that_fails_leaves_the_catalog_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed: list[tuple[int, int]], kind: str
) -> None:
    """A reader raising after it said ready: the import reads every entry itself, and the catalog
    (whose open connection a forked reader holds a copy of) is whole and holds every edit."""
    _misbehave(monkeypatch, kind, "raises")
    edited, report, records = _reimport_through(tmp_path, monkeypatch, 40)
    assert closed[-1][1] == 0
    assert report.counts["updated"] == len(edited) and report.counts["failed"] == 0
    assert sum(1 for r in records if r["description"] == "edited") == len(edited)
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "c.db")) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("SELECT count(*) FROM adapter WHERE description = 'edited'").fetchone() == (len(edited),)


# A reader that says it is ready, then never answers (stopped, or stuck on a dead mount).
_STUCK = "import sys, time; sys.stdout.buffer.write(b'R'); sys.stdout.buffer.flush(); time.sleep(600)"


def _misbehave(monkeypatch: pytest.MonkeyPatch, kind: str, how: str) -> None:
    """Make the reader of ``kind`` die at once, raise after saying ready, or say ready and never answer."""
    if kind != "forked":
        ready = "import sys, time; sys.stdout.buffer.write(b'R'); sys.stdout.buffer.flush(); "
        programs = {"dies": "import os; os._exit(3)", "raises": ready + "raise RuntimeError('a bug')", "stuck": _STUCK}
        monkeypatch.setattr(prefetch_module, "_CHILD", programs[how])
        return

    def serve(source: Any, sink: Any, root: str, max_bytes: int, forked: bool = False) -> None:
        if how == "dies":
            os._exit(3)
        sink.write(reader_process.READY)
        sink.flush()
        if how == "stuck":
            time.sleep(600)
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(reader_process, "_serve", serve)


def _reimport_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, stall: float | None = None
) -> tuple[list[Path], ImportReport, list[dict[str, Any]]]:
    """Import a library, edit every other sidecar, and import again (with the reader the test set up):
    the edited sidecars, the second import's report, and the records after it."""
    lib = _library(tmp_path / "lib", count)
    engine = open_catalog(str(tmp_path / "c.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        edited = _edit(lib, 2)
        if stall is not None:
            monkeypatch.setattr(prefetch_module, "STALL", stall)
        report = run_import(engine, ImportOptions(roots=[str(lib)]))
        return edited, report, list_adapters(engine, ListQuery())
    finally:
        engine.dispose()


def test_an_import_with_a_reader_during_the_walk_equals_one_without(
    tmp_path: Path, closed: list[tuple[int, int]], kind: str
) -> None:
    """Edits in known folders are read during the walk, and the catalog is what reading them later gives."""
    records = []
    for name, workers in (("during.db", None), ("after.db", 1)):
        lib = _library(tmp_path / name / "lib", 40)
        engine = open_catalog(str(tmp_path / name / "c.db"))
        try:
            run_import(engine, ImportOptions(roots=[str(lib)], workers=workers))
            edited = _edit(lib, 3)
            report = run_import(engine, ImportOptions(roots=[str(lib)], workers=workers))
            assert report.counts["updated"] == len(edited)
            volatile = ("id", "created_at", "updated_at", "last_ingested_at", "file_path", "json_file_path")
            volatile += ("primary_file_local_path", "preview_path", "json_file_mtime", "sidecars", "entry_key")
            records.append(
                [{k: v for k, v in r.items() if k not in volatile} for r in list_adapters(engine, ListQuery())]
            )
        finally:
            engine.dispose()
    # "during": nothing to read ahead on the first import, every edit on the second; "after" has no reader.
    assert closed == [(0, 0), (len(edited), len(edited))]
    assert records[0] == records[1]


def test_a_reader_still_loading_when_asked_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spawned: None
) -> None:
    """The importer does not wait for a reader that has not loaded: it reads those entries itself."""
    root = resolve_root(_library(tmp_path / "lib", 6, folders=1))
    entries = walk(root).entries
    monkeypatch.setattr(prefetch_module, "BOOT_WAIT", 0.0)
    monkeypatch.setattr(prefetch_module, "_CHILD", "import time; time.sleep(60)")
    pf = Prefetcher(root, MAX, start_at=1)
    try:
        pf.add(entries)
        pf.walk_done()
        assert pf.sent == 6
        proc = pf._proc
        assert proc is not None
        assert all(pf.take(e) is None for e in entries)
        assert pf.used == 0
        assert proc.poll() is not None  # stopped at once, not left running for a minute
    finally:
        pf.close()


def test_an_early_reader_still_loading_is_waited_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader started with the command has been loading for a while: the importer waits for it (up to
    ``EARLY_BOOT_WAIT``) where it lets a reader started during the walk go, and its results are used."""
    root = resolve_root(_library(tmp_path / "lib", 6, folders=1))
    entries = walk(root).entries
    monkeypatch.setattr(prefetch_module, "BOOT_WAIT", 0.0)
    monkeypatch.setattr(prefetch_module, "EARLY_BOOT_WAIT", 60.0)
    monkeypatch.setattr(prefetch_module, "_CHILD", "import time; time.sleep(1); " + prefetch_module._CHILD)
    for early in (None, prefetch_module.start_early_reader()):
        pf = Prefetcher(root, MAX, start_at=1, fork=False, early=early)
        try:
            pf.add(entries)
            pf.walk_done()
            taken = [pf.take(e) for e in entries]
            if early is None:
                assert taken == [None] * 6 and pf._broken
            else:
                assert all(r is not None and r.status == "ok" for r in taken) and pf.used == 6
        finally:
            pf.close()


def test_an_early_reader_is_sent_entries_once_eight_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the README says: a reader started with the command gets the changed entries from the
    eighth on (it has loaded meanwhile), in chunks of ``EARLY_CHUNK``; fewer are read here."""
    monkeypatch.setattr(prefetch_module.os, "cpu_count", lambda: 2)  # a reader even on a one-core machine
    root = resolve_root(_library(tmp_path / "lib", prefetch_module.FORK_START_AT, folders=1))
    entries = walk(root).entries
    for count in (prefetch_module.FORK_START_AT - 1, prefetch_module.FORK_START_AT):
        pf = Prefetcher(root, MAX, early=prefetch_module.start_early_reader())
        try:
            assert (pf.start_at, pf.chunk) == (8, prefetch_module.EARLY_CHUNK)
            for e in entries[:count]:
                pf.add([e])
            pf.walk_done()
            assert pf.sent == (count if count >= 8 else 0)
            assert sum(pf.take(e) is not None for e in entries) == pf.sent
        finally:
            pf.close()


@pytest.mark.parametrize("near_the_end", [True, False])
def test_in_the_walks_last_moments_entries_go_in_smaller_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, near_the_end: bool
) -> None:
    """What the reader is sent last, the importer waits for once the walk is done: in the walk's last
    ``FINAL_WINDOW`` (judged from its pace over the folders the catalog knows), eight entries make a
    chunk instead of ``EARLY_CHUNK``. Every result still comes back, whatever the chunks."""
    monkeypatch.setattr(prefetch_module.os, "cpu_count", lambda: 2)  # a reader even on a one-core machine
    root = resolve_root(_library(tmp_path / "lib", 24, folders=1))
    entries = walk(root).entries
    folder = entries[0].directory
    # The walk is at ``folder``: the last of the known folders (nothing left), or the first of a
    # thousand, a second after it began (some 1,000 s left).
    known = [folder + "-" + str(i) for i in range(1000)]
    pf = Prefetcher(root, MAX, early=prefetch_module.start_early_reader())
    try:
        pf.walk_starts([folder[:-1]] if near_the_end else known)
        pf._walk_started -= 1.0
        for e in entries:
            pf.add([e])
        chunks_in_walk = len(pf._results)
        pf.walk_done()
        assert chunks_in_walk == (3 if near_the_end else 1)  # 8, 8, 8; or 8, then 16 wait for more
        assert len(pf._results) == (3 if near_the_end else 2)
        assert all(pf.take(e) is not None for e in entries)
    finally:
        pf.close()


def test_an_early_reader_not_loaded_in_time_is_let_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = resolve_root(_library(tmp_path / "lib", 6, folders=1))
    entries = walk(root).entries
    monkeypatch.setattr(prefetch_module, "BOOT_WAIT", 0.0)
    monkeypatch.setattr(prefetch_module, "EARLY_BOOT_WAIT", 0.2)
    monkeypatch.setattr(prefetch_module, "_CHILD", "import time; time.sleep(60)")
    early = prefetch_module.start_early_reader()
    assert early is not None
    pf = Prefetcher(root, MAX, start_at=1, early=early)
    try:
        pf.add(entries)
        pf.walk_done()
        assert all(pf.take(e) is None for e in entries) and pf._broken
        assert early.poll() is not None  # stopped, not left running for a minute
    finally:
        pf.close()


def test_an_early_reader_is_stopped_whether_used_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An import with nothing to read stops the reader it was given, so does one told to read in one
    process; one never given to an import is stopped by :func:`early_reader`."""
    monkeypatch.setattr(prefetch_module.os, "cpu_count", lambda: 2)  # a reader even on a one-core machine
    lib = _library(tmp_path / "lib", 4)
    engine = open_catalog(str(tmp_path / "c.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        with prefetch_module.early_reader() as reader:
            assert reader is not None and reader.poll() is None
            report = run_import(engine, ImportOptions(roots=[str(lib)]), reader=reader)
            assert report.counts["unchanged"] == 4
            assert reader.poll() is not None  # the import's prefetcher stopped it
        with prefetch_module.early_reader() as unused:
            assert unused is not None
        assert unused.poll() is not None
        assert prefetch_module.start_early_reader(workers=1) is None  # one process asked for: no reader
        given = prefetch_module.start_early_reader()
        assert given is not None
        run_import(engine, ImportOptions(roots=[str(lib)], workers=1), reader=given)  # given, though one process
        assert given.poll() is not None
    finally:
        engine.dispose()


def test_the_reader_imports_nothing_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed: list[tuple[int, int]], kind: str
) -> None:
    """A library may hold a ``pydantic.py``: run from inside it, the reader still loads the real modules."""
    lib = _library(tmp_path / "lib", 12)
    marker = tmp_path / "ran"
    for name in ("pydantic", "orjson", "lora_manager"):
        (lib / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    monkeypatch.chdir(lib)
    engine = open_catalog(str(tmp_path / "c.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        edited = _edit(lib, 2)
        report = run_import(engine, ImportOptions(roots=[str(lib)]))
        assert report.counts["updated"] == len(edited)
        assert closed[-1] == (len(edited), len(edited))  # every edit came from the reader
        assert not marker.exists()
    finally:
        engine.dispose()


def test_the_reader_is_as_isolated_as_the_importer(tmp_path: Path) -> None:
    """Run with ``python -I``, the importer ignores PYTHONPATH; so does its reader (a
    ``sitecustomize`` there never runs), which still reads every edit."""
    import subprocess
    import sys
    import textwrap

    lib = _library(tmp_path / "lib", 12)
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "ran"
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    repo = str(Path(__file__).resolve().parents[2])
    code = textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {repo!r})
        from lora_manager.db import open_catalog
        from lora_manager.services import prefetch
        from lora_manager.services.importer import ImportOptions, run_import
        from tests.services.test_prefetch import _edit
        from pathlib import Path
        prefetch.START_AT, prefetch.BOOT_WAIT = 1, 30.0
        prefetch.can_fork = lambda: False  # the reader is a fresh interpreter, started with -I
        os.cpu_count = lambda: 2
        seen = []
        close = prefetch.Prefetcher.close
        def recording_close(self):
            seen.append((self.sent, self.used))
            close(self)
        prefetch.Prefetcher.close = recording_close
        engine = open_catalog({str(tmp_path / "c.db")!r})
        run_import(engine, ImportOptions(roots=[{str(lib)!r}]))
        edited = _edit(Path({str(lib)!r}), 2)
        run_import(engine, ImportOptions(roots=[{str(lib)!r}]))
        print(json.dumps([len(edited), seen[-1]]))
    """)
    env = {**os.environ, "PYTHONPATH": str(evil)}
    done = subprocess.run([sys.executable, "-I", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    edited, (sent, used) = json.loads(done.stdout)
    assert sent == used == edited
    assert not marker.exists()
    assert prefetch_module.child_flags(type("F", (), {"isolated": 0, "ignore_environment": 1, "no_user_site": 1})) == [
        "-P",
        "-E",
        "-s",
    ]


def test_a_reader_that_stops_answering_is_let_go_and_the_import_reads_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed: list[tuple[int, int]], kind: str
) -> None:
    """Waiting on a reader alive but silent used to be forever (and under cron, with the import lock held)."""
    _misbehave(monkeypatch, kind, "stuck")
    edited, report, _ = _reimport_through(tmp_path, monkeypatch, 20, stall=0.5)
    assert closed[-1] == (len(edited), 0)
    assert report.counts["updated"] == len(edited) and report.counts["failed"] == 0


def test_a_stopping_import_does_not_wait_for_its_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ctrl-C while the importer waits for a silent reader: it stops waiting at once (the stall limit is an hour)."""
    root = resolve_root(_library(tmp_path / "lib", 6, folders=1))
    entries = walk(root).entries
    monkeypatch.setattr(prefetch_module, "STALL", 3600.0)
    _misbehave(monkeypatch, kind, "stuck")
    stopping = [False]
    pf = Prefetcher(root, MAX, start_at=1, should_stop=lambda: stopping[0])
    try:
        pf.add(entries)
        pf.walk_done()
        stopping[0] = True
        answers: list[object] = []
        taker = threading.Thread(target=lambda: answers.append(pf.take(entries[0])), daemon=True)
        taker.start()
        taker.join(120)  # a waiter that ignored the stop would still be waiting (for an hour)
        assert not taker.is_alive() and answers == [None] and pf._broken
    finally:
        pf.close()


@pytest.mark.parametrize(
    "answer", ["[]", "{}", "None", "[None] * 1000"], ids=["too-few", "not-a-list", "none", "too-many"]
)
def test_results_that_do_not_answer_what_was_sent_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str, spawned: None
) -> None:
    """A reader of another version (the package upgraded during a long import) must not crash the import."""
    root = resolve_root(_library(tmp_path / "lib", 6, folders=1))
    entries = walk(root).entries
    child = (
        "import os, pickle, struct, sys; out = sys.stdout.buffer; out.write(b'R'); out.flush(); "
        "head = sys.stdin.buffer.read(4); sys.stdin.buffer.read(struct.unpack('<I', head)[0]); "
        f"data = pickle.dumps({answer}); out.write(struct.pack('<I', len(data)) + data); out.flush(); "
        "sys.stdin.buffer.read()"
    )
    monkeypatch.setattr(prefetch_module, "_CHILD", child)
    pf = Prefetcher(root, MAX, start_at=1)
    try:
        pf.add(entries)
        pf.walk_done()
        assert all(pf.take(e) is None for e in entries) and pf._broken
    finally:
        pf.close()


def test_results_go_in_chunks_and_are_let_go_once_taken(tmp_path: Path, kind: str) -> None:
    """Many edits go as chunks of at most ``chunk`` entries, whose results are not held once handed out."""
    size = {"spawned": prefetch_module.CHUNK, "forked": prefetch_module.FORK_CHUNK}.get(
        kind, prefetch_module.EARLY_CHUNK
    )
    count = size * 2 + 5
    root = resolve_root(_library(tmp_path / "lib", count, folders=1))
    entries = walk(root).entries
    pf = Prefetcher(root, MAX, start_at=1)
    try:
        assert pf.chunk == size
        pf.add(entries)
        pf.walk_done()
        assert len(pf._results) == 3
        assert all(pf.take(e) is not None for e in entries[:size])
        assert pf._results[0] is None and pf._left == [0, size, 5]
        assert all(pf.take(e) is not None for e in entries[size:])
        assert pf._results == [None, None, None] and pf.used == count
    finally:
        pf.close()


def test_the_reader_finds_the_standard_library_first(tmp_path: Path) -> None:
    """The package's folder goes first on the reader's path only when its path lacks it: an installed
    package's site-packages is already there, behind the standard library (PyPI's old ``dataclasses``
    backport in site-packages must not shadow the real one in the reader alone)."""
    import subprocess
    import sys
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    probe = prefetch_module._CHILD_PATH + "print(sys.path.index(sys.argv[1]), sys.path.index(sys.argv[2]))"
    done = subprocess.run(
        [sys.executable, "-P", "-c", probe, site, sysconfig.get_paths()["stdlib"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    site_at, stdlib_at = map(int, done.stdout.split())
    assert stdlib_at < site_at
    elsewhere = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-P", "-c", prefetch_module._CHILD_PATH + "print(sys.path[0])", elsewhere],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == elsewhere  # an editable install's folder: first, as before


def test_readers_start_on_a_python_without_ctypes(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyenv builds without libffi lack ``_ctypes``: every pool reader's initializer then failed (exit 2)."""
    import sys

    from lora_manager.services.reader_process import die_with_parent

    monkeypatch.setitem(sys.modules, "ctypes", None)  # ``import ctypes`` raises ImportError
    die_with_parent()  # no guard against the parent's death then, and no error either


def test_no_fork_while_another_thread_runs() -> None:
    """A fork copies only its own thread: with another running (a progress bar's), the reader is a fresh interpreter."""
    if not prefetch_module.can_fork():
        pytest.skip("no fork here")
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert not prefetch_module.can_fork()
        assert not Prefetcher("/", MAX).fork
    finally:
        release.set()
        other.join()
    assert prefetch_module.can_fork()


def test_a_walk_with_long_to_go_gets_a_fresh_interpreter_one_nearly_done_a_fork(tmp_path: Path) -> None:
    """A fork's cost grows with the walk left to do (its pages are copied as the walk writes them): a walk
    1% through its known folders a tenth of a second in has ~10 s to go, one through all of them none."""
    import subprocess

    if not prefetch_module.can_fork():
        pytest.skip("no fork here")
    root = resolve_root(_library(tmp_path / "lib", 4, folders=1))
    entries = walk(root).entries
    folder = entries[0].directory  # .../lib/f0
    after = [f"{folder}/z{i:02}" for i in range(99)]  # sorted after it: still to walk
    before = [f"{root}/a{i:02}" for i in range(99)]  # sorted before it: walked
    for known, expected in ((after, subprocess.Popen), (before, reader_process.Forked)):
        pf = Prefetcher(root, MAX, start_at=1, fork=True)
        try:
            pf.walk_starts([folder, *known])
            pf._walk_started -= 0.1
            pf.add(entries)
            pf.walk_done()
            assert isinstance(pf._proc, expected) and pf.fork is (expected is reader_process.Forked)
            assert all(pf.take(e) == read_entry(e, root, MAX) for e in entries)
        finally:
            pf.close()


def test_a_forked_reader_holds_none_of_the_importers_files(tmp_path: Path) -> None:
    """Only its two pipes and /dev/null: a copy of the import lock's descriptor would keep the lock held."""
    if not prefetch_module.can_fork():
        pytest.skip("no fork here")
    root = resolve_root(_library(tmp_path / "lib", 4, folders=1))
    entries = walk(root).entries
    held = open(tmp_path / "held.lock", "wb")  # noqa: SIM115 - open across the fork on purpose
    pf = Prefetcher(root, MAX, start_at=1, fork=True)
    try:
        pf.add(entries)
        pf.walk_done()
        while not pf._ready:  # it says ready once its descriptors are settled; it waits for more input then
            assert pf._wait(30) and pf._drain()
        assert isinstance(pf._proc, reader_process.Forked)
        targets = [os.readlink(fd) for fd in Path(f"/proc/{pf._proc.pid}/fd").iterdir()]
        assert sorted(t.startswith("pipe:") for t in targets) == [False] * 3 + [True] * 2
        assert all(t == os.devnull or t.startswith("pipe:") for t in targets), targets
        assert all(pf.take(e) is not None for e in entries)
    finally:
        pf.close()
        held.close()

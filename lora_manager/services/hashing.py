"""Hashes we can trust: compute them for model files, check sidecars against them, find copies.

- :func:`hash_file` (in ``services.file_hashes``) reads a file once into its SHA256 and, for
  safetensors, the SHA256 of its tensor data (AutoV3).
- :func:`run_hashing` stats every tracked file in scope, hashes the ones without a hash for
  their current size and ``st_mtime_ns`` in a thread pool (hashlib releases the GIL), and
  stores results in short transactions, so Ctrl-C or a kill loses at most a second of work.
  A file that changes while it is read is not stored. Progress goes through a callback.
- :func:`verify` and :func:`find_duplicates` read only hashes that are still current, on
  disk as in the catalog: a stale hash never passes as evidence.
"""

from __future__ import annotations

import os
import stat as statmod
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from lora_manager.db import hashes as db
from lora_manager.db import repository as repo
from lora_manager.errors import FailureKind, LoraError
from lora_manager.listings import int64
from lora_manager.models import FileProblem
from lora_manager.paths import LINK_OUT, LeadsOut, NotRegular, is_inside, library_of, resolve_root
from lora_manager.services.file_hashes import Aborted, FileChanged, FileHashes, TensorMode, hash_file


@dataclass(frozen=True, slots=True)
class HashProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


@dataclass
class HashOptions:
    paths: list[str] = field(default_factory=list)  # folders or files; none means every tracked file
    query: str | None = None  # else: files of catalogued LoRAs whose name contains this
    threads: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    tensor: TensorMode = "auto"
    # Read every file in scope again, current or not: content rewritten behind a restored size
    # and mtime (bit rot, a tool that keeps timestamps) shows only so.
    force: bool = False
    batch_files: int = 64
    batch_seconds: float = 1.0


@dataclass
class HashReport:
    files: int = 0  # tracked model files in scope
    current: int = 0  # already hashed at their current size and mtime: not read
    hashed: list[dict[str, Any]] = field(default_factory=list)
    bytes_hashed: int = 0
    vanished: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # changed while being read: not stored
    problems: list[FileProblem] = field(default_factory=list)
    threads: int = 0
    interrupted: bool = False
    duration: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        public = ("path", "sha256", "autov2", "autov3", "autov3_source", "tensor_sha256")
        return {
            "files": self.files,
            "hashed": len(self.hashed),
            "already_current": self.current,
            "bytes_hashed": self.bytes_hashed,
            "vanished": self.vanished,
            "changed_while_hashing": self.changed,
            "problems": [p.model_dump() for p in self.problems],
            "threads": self.threads,
            "interrupted": self.interrupted,
            "duration_seconds": round(self.duration, 3),
            "hashes": [{k: r[k] for k in public} for r in self.hashed],
        }


@dataclass(frozen=True, slots=True)
class _Job:
    path: str
    size: int
    expect: tuple[int, int] | None  # (size, mtime) of a current SHA256: only the tensor data is wanted
    inside: str  # where the file must really be (see ``_library_of``)


def split_paths(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(folders, files)`` as the catalog spells them; a path that does not exist is a usage error."""
    folders: list[str] = []
    files: list[str] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            folders.append(resolve_root(p))
        elif p.exists():
            files += [os.path.abspath(p), os.path.realpath(p)]
        else:
            raise LoraError(f"{raw}: no such file or folder")
    return folders, files


def run_hashing(
    engine: Engine,
    options: HashOptions,
    progress: Callable[[HashProgress], None] = lambda p: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> HashReport:
    """Hash the files in scope that lack a current hash; every other file costs one ``stat``."""
    started = time.monotonic()
    report = HashReport(threads=max(1, options.threads))
    with engine.connect() as conn:
        if options.query is not None:
            files = db.adapter_files(conn, options.query)
            if not files:
                raise LoraError(f"{options.query!r}: no such file or folder, nor a LoRA name (see `lora list`)")
            rows = db.load_files(conn, files=files)
        else:
            rows = db.load_files(conn, *split_paths(options.paths))
        roots = db.library_roots(conn)
    report.files = len(rows)
    jobs = _plan(engine, rows, options, report, roots)
    if jobs:
        _hash_all(engine, jobs, options, report, progress, should_stop)
    report.duration = time.monotonic() - started
    return report


def _library_of(path: str, roots: Sequence[str]) -> str:
    """The folder ``path`` must really lie in: the outermost imported root holding it.

    A file catalogued by an import of that folder may link anywhere in it, as the walk allows.
    A path under no recorded root (runs deleted by hand) gets itself: no link is followed.
    """
    return library_of(path, roots) or path


def _plan(
    engine: Engine, rows: list[db.FileRow], options: HashOptions, report: HashReport, roots: Sequence[str] = ()
) -> list[_Job]:
    """Stat every file: record what vanished, came back or changed; return what must be read.

    ``roots`` (shortest first) are the folders imports ran on: a file must really lie in the
    one holding it. A link out is reported here, before its target's size is even recorded,
    and a file swapped for one after this stat is refused when it is opened.
    """
    gone: list[str] = []
    back: list[str] = []
    moved: dict[bool, list[dict[str, Any]]] = {True: [], False: []}  # drop hashes? -> rows
    jobs: list[_Job] = []
    for row in rows:
        inside = _library_of(row.path, roots)
        try:
            st = os.lstat(row.path)  # one call, as a stat, for all but links
            if statmod.S_ISLNK(st.st_mode):
                if not is_inside(row.path, inside):
                    report.problems.append(_leads_out(row.path, inside))
                    continue
                st = os.stat(row.path)
        except _ABSENT:
            st = None
        except OSError as exc:
            report.problems.append(_unreadable(row.path, f"cannot stat: {exc.strerror}"))
            continue
        if st is None or not statmod.S_ISREG(st.st_mode):
            # Absent, or no file the walk would pair (a FIFO, a device, a folder): the import sees
            # no model file here either, so it is gone, and is never opened.
            if row.missing_since is None:  # gone since the catalog last saw it (else said already)
                report.vanished.append(row.path)
                gone.append(row.path)
            continue
        if row.missing_since is not None:
            back.append(row.path)
        mtime_ns = int64(st.st_mtime_ns)  # as the catalog stores it (see listings.int64)
        current = row.current_at(st.st_size, mtime_ns)
        if (st.st_size, mtime_ns) != (row.size, row.mtime_ns):
            moved[not current].append({"path": row.path, "size": st.st_size, "mtime_ns": mtime_ns})
        tensor_wanted = options.tensor == "always" and row.autov3_source == "header" and row.tensor_sha256 is None
        if current and not tensor_wanted and not options.force:
            report.current += 1
            continue
        expect = (st.st_size, mtime_ns) if current and not options.force else None
        jobs.append(_Job(row.path, st.st_size, expect, inside))
    if gone or back or any(moved.values()):
        with engine.begin() as conn:
            repo.mark_model_files_missing(conn, gone, datetime.now(UTC))
            db.mark_present(conn, back)
            db.record_stats(conn, moved[True], drop_hashes=True)  # replaced in place: the old hash is no evidence
            db.record_stats(conn, moved[False], drop_hashes=False)
    return sorted(jobs, key=lambda j: (-j.size, j.path))  # largest first: the pool's tail stays short


# What the stat of a catalogued path raises when nothing is there: the file, or a folder above
# it (ENOTDIR: a folder replaced by a file), is gone. Other errors are reported as unreadable.
_ABSENT = (FileNotFoundError, NotADirectoryError)


def _unreadable(path: str, message: str) -> FileProblem:
    return FileProblem(path=path, kind=FailureKind.UNREADABLE.value, message=message)


def _leads_out(path: str, inside: str) -> FileProblem:
    """A catalogued file that is really outside its library (a link out): reported, never hashed."""
    message = (
        LINK_OUT
        if inside != path
        else "a link, and no import of a folder holding it is recorded; not followed (run `lora import` on its library)"
    )
    return FileProblem(path=path, kind=FailureKind.UNSAFE_PATH.value, message=message)


def _hash_all(
    engine: Engine,
    jobs: list[_Job],
    options: HashOptions,
    report: HashReport,
    progress: Callable[[HashProgress], None],
    should_stop: Callable[[], bool],
) -> None:
    """Hash ``jobs`` in a thread pool; the calling thread reports progress and stores batches."""
    abort = threading.Event()
    lock = threading.Lock()
    read = [0]

    def count(n: int) -> None:
        with lock:
            read[0] += n

    def work(job: _Job) -> FileHashes:
        return hash_file(job.path, job.expect is None, options.tensor, abort, count, job.expect, inside=job.inside)

    total_bytes = sum(j.size for j in jobs)
    pending: list[dict[str, Any]] = []
    done = 0
    last_store = time.monotonic()

    def collect(fut: Future[FileHashes], job: _Job) -> None:
        nonlocal done
        done += 1
        try:
            result = fut.result()
        except Aborted:
            return
        except LeadsOut:  # swapped for a link out since the stat above: nothing of it was read
            report.problems.append(_leads_out(job.path, job.inside))
            return
        except OSError as exc:  # FileChanged is not stored: the next run reads the file again
            if isinstance(exc, FileChanged):
                report.changed.append(job.path)
            elif isinstance(exc, (NotRegular, *_ABSENT)):  # deleted, or swapped for a FIFO, since the stat
                report.vanished.append(job.path)
            else:
                report.problems.append(_unreadable(job.path, f"cannot read: {exc.strerror or exc}"))
            return
        pending.append(result.as_row(job.path))
        report.bytes_hashed += result.size

    def store() -> None:
        nonlocal last_store
        if pending:
            with engine.begin() as conn:
                db.store_hashes(conn, pending)
            report.hashed.extend(pending)
            pending.clear()
        last_store = time.monotonic()

    # At most ``threads`` files in flight: a stop request starts nothing new.
    queue = iter(jobs)
    running: dict[Future[FileHashes], _Job] = {}
    pool = ThreadPoolExecutor(max_workers=report.threads, thread_name_prefix="lora-hash")
    try:
        while True:
            while len(running) < report.threads and (job := next(queue, None)) is not None:
                running[pool.submit(work, job)] = job
            if not running:
                break
            finished, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
            for fut in finished:
                collect(fut, running.pop(fut))
            progress(HashProgress(done, len(jobs), read[0], total_bytes))
            if should_stop():
                report.interrupted = True
                break
            if len(pending) >= options.batch_files or time.monotonic() - last_store >= options.batch_seconds:
                store()
    finally:
        abort.set()  # files being read stop within one chunk
        pool.shutdown(wait=True)
        for fut, job in running.items():
            collect(fut, job)
        store()


def on_disk(path: str, size: int, mtime_ns: int, roots: Sequence[str] = ()) -> str:
    """``same``, ``changed``, ``gone`` or ``unsafe``: whether a stored hash can still describe the file at ``path``.

    A file swapped for a link leading out of its library (``roots``: see ``_library_of``) is
    ``unsafe``: what it points at is not the catalogued file, whatever its size and mtime
    (``lora hash`` refuses it too). Anything but a regular file (a FIFO, a device) is ``gone``,
    as it is to the import and to ``lora hash``.
    """
    try:
        st = os.lstat(path)
        if statmod.S_ISLNK(st.st_mode):
            if not is_inside(path, _library_of(path, roots)):  # the rule `lora hash` reads by
                return "unsafe"
            st = os.stat(path)
    except OSError:
        return "gone"
    if not statmod.S_ISREG(st.st_mode):
        return "gone"
    return "same" if (st.st_size, int64(st.st_mtime_ns)) == (size, mtime_ns) else "changed"


def _on_disk_under(roots: Sequence[str]) -> db.OnDisk:
    return lambda path, size, mtime_ns: on_disk(path, size, mtime_ns, roots)


def verify(engine: Engine, paths: Sequence[str] = ()) -> db.VerifyReport:
    """Compare the hashes the sidecars claim with the computed ones, under ``paths`` (default: all)."""
    folders, files = split_paths(paths)
    with engine.connect() as conn:
        return db.verify(conn, _on_disk_under(db.library_roots(conn)), folders, files)


def find_duplicates(engine: Engine) -> db.DuplicatesReport:
    """Copies, re-headered copies and identity clashes, with the bytes that keeping one copy frees."""
    with engine.connect() as conn:
        return db.duplicates(conn, _on_disk_under(db.library_roots(conn)))

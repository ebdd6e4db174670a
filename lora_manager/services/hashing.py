"""Hashes we can trust: compute them for model files, check sidecars against them, find copies.

- :func:`hash_file` reads a file once, in 1 MiB chunks, into the whole-file SHA256 (AutoV2 is
  its first 10 hex) and, for safetensors, a second SHA256 over the tensor data only (the bytes
  after the 8+N header; AutoV3 is its first 12 hex, as A1111 and Civitai show it). That one is
  skipped, unless asked for, when the header records AutoV3: it doubles the CPU per byte.
- :func:`run_hashing` stats every tracked file in scope, hashes the ones without a hash for
  their current size and ``st_mtime_ns`` in a thread pool (hashlib releases the GIL), and
  stores results in short transactions, so Ctrl-C or a kill loses at most a second of work.
  A file that changes while it is read is not stored. Progress goes through a callback.
- :func:`verify` and :func:`find_duplicates` read only hashes that are still current, on
  disk as in the catalog: a stale hash never passes as evidence.
"""

from __future__ import annotations

import hashlib
import os
import stat as statmod
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from lora_manager.db import hashes as db
from lora_manager.db import repository as repo
from lora_manager.errors import FailureKind, LoraError, SidecarError
from lora_manager.listings import int64
from lora_manager.models import FileProblem
from lora_manager.paths import LINK_OUT, LeadsOut, is_inside, lies_under, open_regular, resolve_root
from lora_manager.safetensors import MAX_HEADER_BYTES, parse_header

CHUNK = 1024 * 1024
_IDENTITY = ("st_size", "st_mtime_ns", "st_ino", "st_dev")  # what must not move while a file is read
TensorMode = Literal["auto", "always", "never"]


class FileChanged(OSError):
    """The file moved (size, mtime or inode) while it was read: the hash describes no version of it."""


class Aborted(Exception):
    """Hashing was asked to stop before the file was done."""


@dataclass(frozen=True, slots=True)
class FileHashes:
    """What one pass over a file produced, and the size and mtime it was read at."""

    size: int
    mtime_ns: int
    sha256: str | None  # None for a tensor-only pass
    tensor_sha256: str | None = None
    header_autov3: str | None = None

    def as_row(self, path: str) -> dict[str, Any]:
        """The ``model_file`` values, plus AutoV2 (derived, for output): AutoV3 computed beats the header's."""
        return {
            "path": path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "autov2": self.sha256[:10] if self.sha256 else None,
            "autov3": self.tensor_sha256[:12] if self.tensor_sha256 else self.header_autov3,
            "autov3_source": "computed" if self.tensor_sha256 else ("header" if self.header_autov3 else None),
            "tensor_sha256": self.tensor_sha256,
            "hashed_at": datetime.now(UTC),
        }


class _TensorPart:
    """Finds the safetensors header at the start of the stream, then hashes what follows it."""

    def __init__(self, size: int, mode: TensorMode) -> None:
        self.size, self.mode = size, mode
        self.head = bytearray()
        self.end = 8  # bytes of header wanted: the length first, then 8+N
        self.length_known = self.decided = False
        self.hasher: Any = None
        self.header_autov3: str | None = None

    def feed(self, chunk: memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(chunk)
            return
        while not self.decided:
            take = min(len(chunk), self.end - len(self.head))
            self.head += chunk[:take]
            chunk = chunk[take:]
            if len(self.head) < self.end:
                return
            if self.length_known:
                self._decide()
            else:
                (length,) = struct.unpack("<Q", self.head)
                if length > MAX_HEADER_BYTES or length + 8 > self.size:
                    self.decided = True  # not a safetensors file after all: the SHA256 is all we take
                self.end, self.length_known = 8 + length, True
        if self.hasher is not None:
            self.hasher.update(chunk)

    def _decide(self) -> None:
        self.decided = True
        try:
            self.header_autov3 = parse_header(bytes(self.head[8:]), self.end).autov3
        except SidecarError:
            return
        finally:
            self.head = bytearray()
        if self.mode == "always" or self.header_autov3 is None:
            self.hasher = hashlib.sha256()


def hash_file(
    path: str,
    whole: bool = True,
    tensor: TensorMode = "auto",
    abort: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
    expect: tuple[int, int] | None = None,
    *,
    inside: str | None = None,
) -> FileHashes:
    """Hash ``path`` in one read; raises :class:`FileChanged` if it moved meanwhile (or differs from ``expect``).

    ``whole=False`` is a tensor-only pass (the SHA256 is known). ``tensor``: ``auto`` hashes the
    tensor data unless the header records AutoV3, ``always`` hashes it anyway, ``never`` skips it.
    With ``inside``, a file that is really elsewhere (a link out) raises :class:`LeadsOut` unread.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open_regular(path, buffering=0, inside=inside) as f:
        before = os.fstat(f.fileno())
        if expect is not None and (before.st_size, int64(before.st_mtime_ns)) != expect:
            raise FileChanged(path)
        full = hashlib.sha256() if whole else None
        tensors = tensor != "never" and path.lower().endswith(".safetensors")
        part = _TensorPart(before.st_size, tensor) if tensors else None
        total = 0
        # Never past the size seen at open: a file that keeps growing must not keep us reading.
        while total < before.st_size and (n := f.readinto(buf)):
            if abort is not None and abort.is_set():
                raise Aborted(path)
            chunk = view[:n]
            if full is not None:
                full.update(chunk)
            if part is not None:
                part.feed(chunk)
            total += n
            if on_bytes is not None:
                on_bytes(n)
    after = os.stat(path)
    if total != before.st_size or [getattr(after, k) for k in _IDENTITY] != [getattr(before, k) for k in _IDENTITY]:
        raise FileChanged(path)
    tensor_sha256 = part.hasher.hexdigest() if part is not None and part.hasher is not None else None
    header_autov3 = part.header_autov3 if part is not None else None
    sha256 = full.hexdigest() if full is not None else None
    return FileHashes(before.st_size, int64(before.st_mtime_ns), sha256, tensor_sha256, header_autov3)


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
    return next((root for root in roots if lies_under(path, root)), path)


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
        except FileNotFoundError:
            report.vanished.append(row.path)
            if row.missing_since is None:
                gone.append(row.path)
            continue
        except OSError as exc:
            report.problems.append(_unreadable(row.path, f"cannot stat: {exc.strerror}"))
            continue
        if not statmod.S_ISREG(st.st_mode):
            report.problems.append(_unreadable(row.path, "not a regular file"))
            continue
        if row.missing_since is not None:
            back.append(row.path)
        mtime_ns = int64(st.st_mtime_ns)  # as the catalog stores it (see listings.int64)
        current = row.current_at(st.st_size, mtime_ns)
        if (st.st_size, mtime_ns) != (row.size, row.mtime_ns):
            moved[not current].append({"path": row.path, "size": st.st_size, "mtime_ns": mtime_ns})
        tensor_wanted = options.tensor == "always" and row.autov3_source == "header" and row.tensor_sha256 is None
        if current and not tensor_wanted:
            report.current += 1
            continue
        jobs.append(_Job(row.path, st.st_size, (st.st_size, mtime_ns) if current else None, inside))
    if gone or back or any(moved.values()):
        with engine.begin() as conn:
            repo.mark_model_files_missing(conn, gone, datetime.now(UTC))
            db.mark_present(conn, back)
            db.record_stats(conn, moved[True], drop_hashes=True)  # replaced in place: the old hash is no evidence
            db.record_stats(conn, moved[False], drop_hashes=False)
    return sorted(jobs, key=lambda j: (-j.size, j.path))  # largest first: the pool's tail stays short


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
            if isinstance(exc, FileChanged | FileNotFoundError):
                (report.changed if isinstance(exc, FileChanged) else report.vanished).append(job.path)
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


def on_disk(path: str, size: int, mtime_ns: int) -> str:
    """``same``, ``changed`` or ``gone``: whether a stored hash can still describe the file at ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return "gone"
    return "same" if (st.st_size, int64(st.st_mtime_ns)) == (size, mtime_ns) else "changed"


def verify(engine: Engine, paths: Sequence[str] = ()) -> db.VerifyReport:
    """Compare the hashes the sidecars claim with the computed ones, under ``paths`` (default: all)."""
    folders, files = split_paths(paths)
    with engine.connect() as conn:
        return db.verify(conn, on_disk, folders, files)


def find_duplicates(engine: Engine) -> db.DuplicatesReport:
    """Copies, re-headered copies and identity clashes, with the bytes that keeping one copy frees."""
    with engine.connect() as conn:
        return db.duplicates(conn, on_disk)

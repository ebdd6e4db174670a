"""Import a library into the catalog: plan (walk + compare signatures), then run in batches.

The plan costs one walk and one query per root: an entry whose signature (its files' names,
sizes and ``st_mtime_ns``) equals the stored one is not opened. Changed entries are read
(in worker processes when there are many), then written in short transactions of
``batch_size`` entries, so a killed import loses at most one batch and the next run finishes
the work. ``dry_run`` is the same run with every write left out: ``lora scan`` is that.

Identity rules: ``(name, version)`` is unique; when two entries claim one identity, the
first in path order wins and the other is a duplicate, stably across runs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection, Engine

from lora_manager.db import repository as repo
from lora_manager.db.retry import in_transaction
from lora_manager.discovery import IGNORE_FILE, Entry, load_ignore, resolve_root, walk, walk_directory
from lora_manager.errors import FailureKind, LoraError
from lora_manager.models import FileProblem
from lora_manager.services.reading import DEFAULT_MAX_SIDECAR_BYTES, EntryResult, read_entry

Progress = Callable[[str, int, int], None]  # (phase, done, total)
PARALLEL_THRESHOLD = 2000  # fewer changed entries than this are read in this process
POOL_CHUNK = 200
PRELOAD_OWNERS = 5000  # this many entries to read or more: load all owners in one query


@dataclass
class ImportOptions:
    roots: list[str]
    force: bool = False
    dry_run: bool = False
    prune: bool = False
    ignore: list[str] = field(default_factory=list)
    max_sidecar_bytes: int = DEFAULT_MAX_SIDECAR_BYTES
    batch_size: int = 1000
    workers: int | None = None  # None: decide by the amount of work
    list_unchanged: bool = False  # keep an Outcome for unchanged entries too (``lora scan --all``)
    keep_outcomes: bool = False  # keep an Outcome per entry read (``lora scan``); off, memory stays flat


@dataclass
class Outcome:
    """What happened to one entry (kept for changed entries only; ``scan`` prints them)."""

    key: str
    action: str  # new | updated | unchanged | skipped | failed | duplicate | orphan | missing
    name: str | None = None
    version: str | None = None
    detail: str = ""


@dataclass
class ImportReport:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[FileProblem] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    run_id: int | None = None
    interrupted: bool = False

    keep_outcomes: bool = False

    def outcome(self, outcome: Outcome) -> None:
        if self.keep_outcomes:
            self.outcomes.append(outcome)

    @property
    def failed(self) -> bool:
        return any(FailureKind(p.kind).is_failure for p in self.problems)

    def as_dict(self) -> dict[str, object]:
        keys = ("new", "updated", "unchanged", "skipped", "failed", "duplicates", "orphans", "missing", "pruned")
        return {
            **{k: self.counts.get(k, 0) for k in keys},
            "problems": [p.model_dump() for p in self.problems],
            "duration_seconds": round(self.duration, 3),
            "run_id": self.run_id,
            "interrupted": self.interrupted,
        }


@dataclass
class _RootPlan:
    root: str
    todo: list[Entry]  # entries to read, in key order
    stored: dict[str, repo.StoredEntry]  # the stored state of the todo and vanished entries
    vanished: list[repo.StoredEntry]
    unchanged: Counter[str]  # stored status -> entries not read
    unchanged_outcomes: list[Outcome]
    # Directory -> fingerprint to record once the run is through, and the statuses of its entries.
    fingerprints: dict[str, str]
    dir_statuses: dict[str, Counter[str]]
    gone_dirs: list[str]  # known directories that are no more
    stale_dirs: set[str]  # directories to look at in full next time
    walk_problems: list[FileProblem]
    files_seen: int
    known_dirs: int  # directories the catalog knew under this root


def _now() -> datetime:
    return datetime.now(UTC)


def _ignore_seed(root: str, patterns: list[str]) -> str:
    """What the fingerprints depend on besides the files: the ignore rules in force."""
    loraignore = os.path.join(root, IGNORE_FILE)
    try:
        with open(loraignore, "rb") as f:
            text = f.read(1_000_000).decode("utf-8", "replace")
    except OSError:
        text = ""
    return "\n".join(patterns) + "\0" + text


def plan_root(conn: Connection, root: str, options: ImportOptions) -> _RootPlan:
    """Walk ``root`` and compare with what is stored: the entries that must be read again.

    Directories whose fingerprint is unchanged are skipped whole; in the others, each entry's
    signature is compared with the stored one. Only the stored state of the entries that
    changed or vanished is loaded in full.
    """
    known_dirs = repo.load_directories(conn, root)
    skip = not (options.force or options.list_unchanged)
    known = {path: fp for path, (fp, _) in known_dirs.items()} if skip else None
    result = walk(root, load_ignore(root, options.ignore), known, _ignore_seed(root, options.ignore))
    clean = set(result.clean)
    gone_dirs = [d for d in known_dirs if d not in result.fingerprints]
    looked_at = {d for d in result.fingerprints if d not in clean}
    signatures = repo.load_signatures(conn, root, looked_at | set(gone_dirs))
    unchanged: Counter[str] = Counter()
    for d in clean:
        unchanged.update(known_dirs[d][1])
    dir_statuses: dict[str, Counter[str]] = {d: Counter() for d in looked_at}
    todo: list[Entry] = []
    unchanged_keys: set[str] = set()
    for e in result.entries:
        old = signatures.get(e.key)
        if options.force or old is None or old[0] != e.signature:
            todo.append(e)
        else:
            unchanged[old[1]] += 1
            dir_statuses[e.directory][old[1]] += 1
            unchanged_keys.add(e.key)
    present = {e.key for e in result.entries}
    vanished_keys = [k for k in signatures if k not in present]
    stored = repo.load_entries_by_key(conn, [e.key for e in todo] + vanished_keys)
    vanished = [stored[k] for k in vanished_keys if k in stored]
    # Identities that may be let go this run: duplicates waiting for them must be read again.
    releasing = {(s.name, s.version_key) for s in vanished if s.status == "ok" and s.name is not None}
    releasing |= {(s.name, s.version_key) for e in todo if (s := stored.get(e.key)) and s.status == "ok" and s.name}
    stale_dirs: set[str] = set()
    if releasing:
        todo_keys = {e.key for e in todo}
        waiting = set(repo.waiting_duplicates(conn, releasing)) - todo_keys - set(vanished_keys)
        extra = [e for e in result.entries if e.key in waiting]
        for d in {os.path.dirname(k) for k in waiting} & clean:  # a clean directory is listed again
            extra += [e for e in walk_directory(root, d, load_ignore(root, options.ignore)) if e.key in waiting]
            stale_dirs.add(d)
        if extra:
            stored.update(repo.load_entries_by_key(conn, [e.key for e in extra]))
            for e in extra:
                if e.directory in dir_statuses and e.key in unchanged_keys:
                    dir_statuses[e.directory]["duplicate"] -= 1
                unchanged["duplicate"] -= 1
            todo = sorted(todo + extra, key=lambda e: e.key)
    outcomes = []
    if options.list_unchanged:
        details = repo.load_entries_by_key(conn, sorted(unchanged_keys))
        for key in sorted(unchanged_keys):
            old_entry = details[key]
            action = "unchanged" if old_entry.status in ("ok", "duplicate") else old_entry.status
            outcomes.append(Outcome(key, action, old_entry.name, old_entry.version_key or None))
    return _RootPlan(
        root=root,
        todo=todo,
        stored=stored,
        vanished=vanished,
        unchanged=unchanged,
        unchanged_outcomes=outcomes,
        fingerprints={d: fp for d, fp in result.fingerprints.items() if d in looked_at},
        dir_statuses=dir_statuses,
        gone_dirs=gone_dirs,
        stale_dirs=stale_dirs,
        walk_problems=[FileProblem(path=p, kind=k.value, message=m) for p, k, m in result.problems],
        files_seen=result.files_seen,
        known_dirs=len(known_dirs),
    )


def run_import(
    engine: Engine,
    options: ImportOptions,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ImportReport:
    """Import every root; the caller holds the import lock (see ``db.lock``) unless ``dry_run``."""
    report = ImportReport(keep_outcomes=options.keep_outcomes or options.dry_run or options.list_unchanged)
    roots = [resolve_root(r) for r in options.roots]
    if not options.dry_run:
        with engine.begin() as conn:
            report.run_id = repo.start_run(conn, roots, False, _now())
    status = "failed"
    try:
        for root in roots:
            with engine.connect() as conn:
                plan = plan_root(conn, root, options)
            if plan.files_seen == 0 and (plan.known_dirs or options.prune):
                raise LoraError(f"{root}: the folder is empty; is the drive mounted? Nothing was changed.")
            _run_root(engine, plan, options, report, progress, should_stop)
            if report.interrupted:
                break
        status = "interrupted" if report.interrupted else "completed"
    finally:
        report.duration = time.monotonic() - report.started
        if report.run_id is not None:
            with engine.begin() as conn:
                repo.finish_run(conn, report.run_id, status, dict(report.counts), _now())
    return report


def _run_root(
    engine: Engine,
    plan: _RootPlan,
    options: ImportOptions,
    report: ImportReport,
    progress: Progress | None,
    should_stop: Callable[[], bool],
) -> None:
    report.counts["unchanged"] += plan.unchanged["ok"]
    report.counts["orphans"] += plan.unchanged["orphan"]
    report.problems.extend(plan.walk_problems)
    report.counts["failed"] += len(plan.walk_problems)
    if plan.walk_problems and report.run_id is not None and not options.dry_run:
        with engine.begin() as conn:
            repo.record_failures(conn, report.run_id, plan.walk_problems)
    for o in plan.unchanged_outcomes:
        report.outcome(o)
    _handle_vanished(engine, plan, report, options.dry_run)
    state = _RunState(plan)
    done, total = 0, len(plan.todo)
    for batch in _read_batches(plan, options):
        if options.dry_run:
            with engine.connect() as conn:
                state.decide(batch, report, conn, write=False)
        else:
            # A transient database error runs the batch again, its effect on state and report undone.
            in_transaction(engine, partial(_write_batch, state, batch, report), "saving a batch", keep=(state, report))
        done += len(batch)
        if progress:
            progress("import", done, total)
        if should_stop():
            report.interrupted = True
            return
    if options.dry_run:
        return
    with engine.begin() as conn:
        repo.save_directories(
            conn,
            [
                {
                    "path": d,
                    "fingerprint": "" if d in plan.stale_dirs else fp,
                    "counts": {k: v for k, v in plan.dir_statuses.get(d, Counter()).items() if v > 0},
                }
                for d, fp in plan.fingerprints.items()
            ],
        )
        repo.stale_directories(conn, plan.stale_dirs)
        if options.prune:
            report.counts["pruned"] += repo.prune_missing(conn, plan.root)


def _write_batch(state: _RunState, batch: list[EntryResult], report: ImportReport, conn: Connection) -> None:
    state.decide(batch, report, conn, write=True)
    if report.run_id is not None:
        failures = [p for r in batch for p in r.problems if FailureKind(p.kind).is_failure]
        repo.record_failures(conn, report.run_id, failures)


def _handle_vanished(engine: Engine, plan: _RootPlan, report: ImportReport, dry_run: bool) -> None:
    """Entries whose files are all gone: their rows are marked missing (before any take-over)."""
    held = [s for s in plan.vanished if s.adapter_id is not None]
    for s in held:
        report.outcome(Outcome(s.key, "missing", s.name, s.version_key or None, "files are gone"))
    if dry_run:
        report.counts["missing"] += len(held)
        return
    with engine.begin() as conn:
        report.counts["missing"] += repo.mark_missing(conn, [s.adapter_id for s in held if s.adapter_id], _now())
        repo.delete_entries(conn, [s.key for s in plan.vanished])
        repo.forget_directories(conn, plan.gone_dirs)
        repo.mark_model_files_missing(conn, [s.model_path for s in plan.vanished if s.model_path], _now())


def _read_batches(plan: _RootPlan, options: ImportOptions) -> Iterator[list[EntryResult]]:
    """Read the changed entries, in order, one batch at a time (in worker processes when it pays).

    Entries leave the queue as they are read, and at most a few chunks are in flight per
    worker, so memory stays flat however large the library is.
    """
    from collections import deque

    queue = deque(plan.todo)
    plan.todo = []
    workers = options.workers
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if len(queue) >= PARALLEL_THRESHOLD else 1

    def take(n: int) -> list[Entry]:
        return [queue.popleft() for _ in range(min(n, len(queue)))]

    if workers <= 1:
        while queue:
            yield _read_chunk(take(options.batch_size), plan.root, options.max_sidecar_bytes)
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, initializer=_die_with_parent) as pool:
        pending: deque[Future[list[EntryResult]]] = deque()

        def submit() -> None:
            pending.append(pool.submit(_read_chunk, take(POOL_CHUNK), plan.root, options.max_sidecar_bytes))

        while queue and len(pending) < 2 * workers:
            submit()
        batch: list[EntryResult] = []
        while pending:
            batch.extend(pending.popleft().result())
            if queue:
                submit()
            if len(batch) >= options.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _die_with_parent() -> None:
    """A reader process ends when the import does, even if the import was SIGKILLed (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_chunk(entries: list[Entry], root: str, max_sidecar_bytes: int) -> list[EntryResult]:
    return [read_entry(e, root, max_sidecar_bytes) for e in entries]


class _RunState:
    """The decisions of one root's run: who holds which identity, batch after batch."""

    def __init__(self, plan: _RootPlan) -> None:
        self.plan = plan
        self.vanished_keys = {s.key for s in plan.vanished}
        self.todo_keys = {e.key for e in plan.todo}
        self.claims: dict[repo.Identity, str] = {}  # identity -> entry key, decided this run
        # With many entries to read, every row's owner is loaded once instead of per batch.
        self.owner_map: dict[repo.Identity, repo.Owner] | None = None

    def _count_status(self, key: str, status: str) -> None:
        """What the directory of ``key`` holds after this run (for its stored counts)."""
        directory = key.rpartition(os.sep)[0]
        counts = self.plan.dir_statuses.get(directory)
        if counts is None:
            counts = self.plan.dir_statuses[directory] = Counter()
        counts[status] += 1

    def _verdict(self, ident: repo.Identity, key: str, owners: dict[repo.Identity, repo.Owner]) -> tuple[bool, str]:
        """``(claims, other)``: whether ``key`` may hold ``ident``; ``other`` is the loser or winner."""
        holder = self.claims.get(ident)
        if holder is not None and holder != key:
            return False, holder
        owner = owners.get(ident)
        if owner is None or owner.entry_key in (None, key) or owner.missing:
            return True, ""
        other = owner.entry_key
        if other in self.vanished_keys or other in self.todo_keys:
            return True, ""  # gone, or read this run (it let go, or it sorts after us and will lose)
        return (False, other) if other < key else (True, other)

    def decide(self, batch: list[EntryResult], report: ImportReport, conn: Connection, write: bool) -> None:
        now = _now()
        stored = self.plan.stored
        idents = {(r.row["name"], r.row["version_key"]) for r in batch if r.row}
        if self.owner_map is None and len(self.todo_keys) >= PRELOAD_OWNERS:
            self.owner_map = repo.all_owners(conn)
        owners = (
            {i: o for i in idents if (o := self.owner_map.get(i))}
            if self.owner_map is not None
            else (repo.owners(conn, idents))
        )
        adapters: list[dict[str, object]] = []
        entries: list[dict[str, object]] = []
        models: list[dict[str, object]] = []
        renames: list[tuple[int, str, str | None]] = []
        drop: list[int] = []
        demote: list[tuple[str, FileProblem]] = []
        missing: list[int] = []
        for r in batch:
            old = stored.get(r.key)
            old_id = old.adapter_id if old else None
            old_ident = (old.name or "", old.version_key or "") if old and old.adapter_id is not None else None
            report.problems.extend(r.problems)
            row: dict[str, object] = {
                "key": r.key,
                "signature": r.signature,
                "status": r.status,
                "name": None,
                "version_key": None,
                "adapter_id": None,
                "model_path": r.model_path,
                "problems": [p.model_dump() for p in r.problems],
                "seen_at": now,
            }
            if r.model_path and r.model_size is not None:
                models.append(
                    {"path": r.model_path, "size": r.model_size, "mtime_ns": r.model_mtime_ns, "missing_since": None}
                )
            if r.row is not None:
                rec = r.row
                ident = (rec["name"], rec["version_key"])
                row.update(name=ident[0], version_key=ident[1])
                claims, other = self._verdict(ident, r.key, owners)
                if not claims:
                    row["status"] = "duplicate"
                    problem = FileProblem(
                        path=rec["json_file_path"] or r.key,
                        kind=FailureKind.DUPLICATE.value,
                        message=f"{_label(ident)} is already catalogued from {other}",
                    )
                    report.problems.append(problem)
                    row["problems"] = [*row["problems"], problem.model_dump()]  # type: ignore[list-item]
                    report.counts["duplicates"] += 1
                    report.outcome(Outcome(r.key, "duplicate", rec["name"], rec["version"], problem.message))
                    self._count_status(r.key, "duplicate")
                    if old_id is not None and old_ident != ident and self.claims.get(old_ident) in (None, r.key):
                        drop.append(old_id)
                    entries.append(row)
                    continue
                owner = owners.get(ident)
                renamed = False
                if old_id is not None and old_ident != ident and self.claims.get(old_ident) in (None, r.key):
                    if owner is None:
                        renames.append((old_id, rec["name"], rec["version"]))
                        owners[ident] = owner = repo.Owner(old_id, r.key, False)
                        renamed = True
                    else:
                        drop.append(old_id)
                if other:  # an unchanged holder later in path order: it becomes the duplicate
                    message = f"{_label(ident)} is now catalogued from {r.key}, earlier in path order"
                    where = (owner.json_file_path if owner else None) or other
                    demote.append((other, FileProblem(path=where, kind=FailureKind.DUPLICATE.value, message=message)))
                    report.problems.append(demote[-1][1])
                    report.counts["duplicates"] += 1
                    report.counts["unchanged"] -= 1
                    report.outcome(Outcome(other, "duplicate", rec["name"], rec["version"], message))
                self.claims[ident] = r.key
                action = "new" if owner is None else "updated"
                report.counts[action] += 1
                report.outcome(Outcome(r.key, action, rec["name"], rec["version"], "renamed" if renamed else ""))
                adapters.append(repo.adapter_row(rec, r.key, now))
            else:
                keeps = (
                    r.status == "failed"
                    and old_ident is not None
                    and old_id is not None
                    and not any(p.kind == FailureKind.MODEL_MISSING.value for p in r.problems)
                    and self.claims.get(old_ident) in (None, r.key)
                )
                if keeps and old_ident is not None:  # a broken sidecar: keep the last good record as it was
                    row.update(name=old_ident[0], version_key=old_ident[1], adapter_id=old_id)
                    self.claims[old_ident] = r.key
                elif old_id is not None and self.claims.get(old_ident) in (None, r.key):
                    missing.append(old_id)
                    report.counts["missing"] += 1
                    row.update(
                        adapter_id=old_id,
                        name=old_ident[0] if old_ident else None,
                        version_key=old_ident[1] if old_ident else None,
                    )
                action = {"orphan": "orphans", "skipped": "skipped"}.get(r.status, "failed")
                if action == "orphans":
                    report.counts["orphans"] += 1
                report.outcome(
                    Outcome(r.key, r.status, None, None, "; ".join(f"{p.kind}: {p.message}" for p in r.problems))
                )
            entries.append(row)
            self._count_status(r.key, str(row["status"]))
        report.counts["failed"] += sum(1 for r in batch for p in r.problems if FailureKind(p.kind).is_failure)
        report.counts["skipped"] += sum(1 for r in batch for p in r.problems if p.kind == FailureKind.NOT_METADATA)
        if not write:
            return
        for adapter_id, name, version in renames:
            repo.rename_adapter(conn, adapter_id, name, version)
        if drop:
            repo.delete_adapters(conn, drop)
        ids = repo.upsert_adapters(conn, adapters) if adapters else {}
        if self.owner_map is not None:
            for a in adapters:
                self.owner_map[(a["name"], a["version_key"])] = repo.Owner(
                    ids[a["entry_key"]], a["entry_key"], False, a["json_file_path"]
                )
        repo.replace_tags(conn, {ids[a["entry_key"]]: a["tags"] for a in adapters})  # type: ignore[index,misc]
        for row in entries:
            if row["status"] == "ok":
                row["adapter_id"] = ids.get(row["key"])  # type: ignore[arg-type]
        if demote:
            repo.demote_to_duplicate(conn, {k: [p.model_dump()] for k, p in demote})
            self.plan.stale_dirs.update(os.path.dirname(k) for k, _ in demote)
        if missing:
            repo.mark_missing(conn, missing, now)
        repo.save_entries(conn, entries)
        repo.save_model_files(conn, models)


def _label(ident: repo.Identity) -> str:
    return f"{ident[0]!r} version {ident[1]!r}" if ident[1] else f"{ident[0]!r} (no version)"

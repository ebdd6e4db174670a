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

from sqlalchemy import Connection, Engine

from lora_manager.db import repository as repo
from lora_manager.discovery import Entry, load_ignore, resolve_root, walk
from lora_manager.errors import FailureKind, LoraError
from lora_manager.models import FileProblem
from lora_manager.services.reading import DEFAULT_MAX_SIDECAR_BYTES, EntryResult, read_entry

Progress = Callable[[str, int, int], None]  # (phase, done, total)
PARALLEL_THRESHOLD = 2000


@dataclass
class ImportOptions:
    roots: list[str]
    force: bool = False
    dry_run: bool = False
    prune: bool = False
    ignore: list[str] = field(default_factory=list)
    max_sidecar_bytes: int = DEFAULT_MAX_SIDECAR_BYTES
    batch_size: int = 500
    workers: int | None = None  # None: decide by the amount of work
    list_unchanged: bool = False  # keep an Outcome for unchanged entries too (``lora scan --all``)


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
    entries: list[Entry]
    todo: list[Entry]
    stored: dict[str, repo.StoredEntry]
    vanished: list[repo.StoredEntry]
    walk_problems: list[FileProblem]
    files_seen: int


def _now() -> datetime:
    return datetime.now(UTC)


def plan_root(conn: Connection, root: str, options: ImportOptions) -> _RootPlan:
    """Walk ``root`` and compare with the stored signatures: what must be read again."""
    result = walk(root, load_ignore(root, options.ignore))
    stored = repo.load_entries(conn, root)
    keys = {e.key for e in result.entries}
    todo = [
        e for e in result.entries if options.force or (s := stored.get(e.key)) is None or s.signature != e.signature
    ]
    vanished = [s for k, s in stored.items() if k not in keys]
    # Identities that may be let go this run: duplicates waiting for them must be read again.
    releasing = {(s.name, s.version_key) for s in vanished if s.status == "ok"}
    releasing |= {(s.name, s.version_key) for e in todo if (s := stored.get(e.key)) and s.status == "ok"}
    if releasing:
        todo_keys = {e.key for e in todo}
        waiting = {k for k, s in stored.items() if s.status == "duplicate" and (s.name, s.version_key) in releasing}
        todo = sorted(
            todo + [e for e in result.entries if e.key in waiting and e.key not in todo_keys], key=lambda e: e.key
        )
    problems = [FileProblem(path=p, kind=k.value, message=m) for p, k, m in result.problems]
    return _RootPlan(root, result.entries, todo, stored, vanished, problems, result.files_seen)


def run_import(
    engine: Engine,
    options: ImportOptions,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ImportReport:
    """Import every root; the caller holds the import lock (see ``db.lock``) unless ``dry_run``."""
    report = ImportReport()
    roots = [resolve_root(r) for r in options.roots]
    if not options.dry_run:
        with engine.begin() as conn:
            report.run_id = repo.start_run(conn, roots, False, _now())
    status = "failed"
    try:
        for root in roots:
            with engine.connect() as conn:
                plan = plan_root(conn, root, options)
            if not plan.entries and (plan.stored or options.prune):
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
    todo_keys = {e.key for e in plan.todo}
    report.counts["unchanged"] += sum(
        1 for e in plan.entries if e.key not in todo_keys and plan.stored[e.key].status == "ok"
    )
    report.counts["orphans"] += sum(
        1 for e in plan.entries if e.key not in todo_keys and plan.stored[e.key].status == "orphan"
    )
    report.problems.extend(plan.walk_problems)
    if options.list_unchanged:
        for e in plan.entries:
            if e.key not in todo_keys:
                old = plan.stored[e.key]
                action = "unchanged" if old.status in ("ok", "duplicate") else old.status
                report.outcomes.append(Outcome(e.key, action, old.name, old.version_key or None))
    _handle_vanished(engine, plan, report, options.dry_run)
    state = _RunState(plan)
    done = 0
    for batch in _read_batches(plan, options):
        if options.dry_run:
            with engine.connect() as conn:
                state.decide(batch, report, conn, write=False)
        else:
            with engine.begin() as conn:
                state.decide(batch, report, conn, write=True)
                if report.run_id is not None:
                    repo.record_failures(conn, report.run_id, [p for r in batch for p in r.problems])
        done += len(batch)
        if progress:
            progress("import", done, len(plan.todo))
        if should_stop():
            report.interrupted = True
            return
    if options.prune and not options.dry_run:
        with engine.begin() as conn:
            report.counts["pruned"] += repo.prune_missing(conn, plan.root)


def _handle_vanished(engine: Engine, plan: _RootPlan, report: ImportReport, dry_run: bool) -> None:
    """Entries whose files are all gone: their rows are marked missing (before any take-over)."""
    held = [s for s in plan.vanished if s.adapter_id is not None]
    for s in held:
        report.outcomes.append(Outcome(s.key, "missing", s.name, s.version_key or None, "files are gone"))
    if dry_run:
        report.counts["missing"] += len(held)
        return
    with engine.begin() as conn:
        report.counts["missing"] += repo.mark_missing(conn, [s.adapter_id for s in held if s.adapter_id], _now())
        repo.delete_entries(conn, [s.key for s in plan.vanished])
        repo.mark_model_files_missing(conn, [s.model_path for s in plan.vanished if s.model_path], _now())


def _read_batches(plan: _RootPlan, options: ImportOptions) -> Iterator[list[EntryResult]]:
    """Read the changed entries, in order, one batch at a time (in worker processes when it pays)."""
    todo = plan.todo
    size = options.batch_size
    workers = options.workers
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if len(todo) >= PARALLEL_THRESHOLD else 1
    if workers <= 1:
        for start in range(0, len(todo), size):
            yield [read_entry(e, plan.root, options.max_sidecar_bytes) for e in todo[start : start + size]]
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_read_for_pool, ((e, plan.root, options.max_sidecar_bytes) for e in todo), chunksize=64)
        batch: list[EntryResult] = []
        for result in results:
            batch.append(result)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def _read_for_pool(args: tuple[Entry, str, int]) -> EntryResult:
    return read_entry(*args)


class _RunState:
    """The decisions of one root's run: who holds which identity, batch after batch."""

    def __init__(self, plan: _RootPlan) -> None:
        self.plan = plan
        self.walk_keys = {e.key for e in plan.entries}
        self.todo_keys = {e.key for e in plan.todo}
        self.prefix = plan.root.rstrip(os.sep) + os.sep
        self.claims: dict[repo.Identity, str] = {}  # identity -> entry key, decided this run

    def _verdict(self, ident: repo.Identity, key: str, owners: dict[repo.Identity, repo.Owner]) -> tuple[bool, str]:
        """``(claims, other)``: whether ``key`` may hold ``ident``; ``other`` is the loser or winner."""
        holder = self.claims.get(ident)
        if holder is not None and holder != key:
            return False, holder
        owner = owners.get(ident)
        if owner is None or owner.entry_key in (None, key) or owner.missing:
            return True, ""
        other = owner.entry_key
        present = other in self.walk_keys if other.startswith(self.prefix) else True
        if not present or other in self.todo_keys:
            return True, ""  # gone, or read this run (it let go, or it sorts after us and will lose)
        return (False, other) if other < key else (True, other)

    def decide(self, batch: list[EntryResult], report: ImportReport, conn: Connection, write: bool) -> None:
        now = _now()
        stored = self.plan.stored
        idents = {(r.record.name, r.record.version or "") for r in batch if r.record}
        owners = repo.owners(conn, idents)
        adapters: list[dict[str, object]] = []
        entries: list[dict[str, object]] = []
        models: list[dict[str, object]] = []
        renames: list[tuple[int, str, str | None]] = []
        drop: list[int] = []
        demote: list[str] = []
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
            if r.record is not None:
                rec = r.record
                ident = (rec.name, rec.version or "")
                row.update(name=ident[0], version_key=ident[1])
                claims, other = self._verdict(ident, r.key, owners)
                if not claims:
                    row["status"] = "duplicate"
                    problem = FileProblem(
                        path=rec.json_file_path or r.key,
                        kind=FailureKind.DUPLICATE.value,
                        message=f"{_label(ident)} is already catalogued from {other}",
                    )
                    report.problems.append(problem)
                    row["problems"] = [*row["problems"], problem.model_dump()]  # type: ignore[list-item]
                    report.counts["duplicates"] += 1
                    report.outcomes.append(Outcome(r.key, "duplicate", rec.name, rec.version, problem.message))
                    if old_id is not None and old_ident != ident and self.claims.get(old_ident) in (None, r.key):
                        drop.append(old_id)
                    entries.append(row)
                    continue
                owner = owners.get(ident)
                renamed = False
                if old_id is not None and old_ident != ident and self.claims.get(old_ident) in (None, r.key):
                    if owner is None:
                        renames.append((old_id, rec.name, rec.version))
                        owners[ident] = owner = repo.Owner(old_id, r.key, False)
                        renamed = True
                    else:
                        drop.append(old_id)
                if other:
                    demote.append(other)
                self.claims[ident] = r.key
                action = "new" if owner is None else "updated"
                report.counts[action] += 1
                report.outcomes.append(Outcome(r.key, action, rec.name, rec.version, "renamed" if renamed else ""))
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
                report.outcomes.append(
                    Outcome(r.key, r.status, None, None, "; ".join(f"{p.kind}: {p.message}" for p in r.problems))
                )
            entries.append(row)
        report.counts["failed"] += sum(1 for r in batch for p in r.problems if FailureKind(p.kind).is_failure)
        report.counts["skipped"] += sum(1 for r in batch for p in r.problems if p.kind == FailureKind.NOT_METADATA)
        if not write:
            return
        for adapter_id, name, version in renames:
            repo.rename_adapter(conn, adapter_id, name, version)
        if drop:
            repo.delete_adapters(conn, drop)
        ids = repo.upsert_adapters(conn, adapters) if adapters else {}
        repo.replace_tags(conn, {ids[a["entry_key"]]: a["tags"] for a in adapters})  # type: ignore[index,misc]
        for row in entries:
            if row["status"] == "ok":
                row["adapter_id"] = ids.get(row["key"])  # type: ignore[arg-type]
        if demote:
            repo.demote_to_duplicate(conn, demote)
        if missing:
            repo.mark_missing(conn, missing, now)
        repo.save_entries(conn, entries)
        repo.save_model_files(conn, models)


def _label(ident: repo.Identity) -> str:
    return f"{ident[0]!r} version {ident[1]!r}" if ident[1] else f"{ident[0]!r} (no version)"

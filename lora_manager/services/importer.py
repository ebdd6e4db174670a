"""Import a library into the catalog: plan each root, read what changed, write it in batches.

Changed entries are read (in worker processes when there are many) and written in short
transactions of ``batch_size`` entries, so a killed import loses at most one batch and the
next run finishes the work. ``dry_run`` is the same run with every write left out: ``lora
scan`` is that. The plan is in ``planning``, the identity rules in ``decisions``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import StatementError

from lora_manager.db import directories
from lora_manager.db import repository as repo
from lora_manager.db.checkpoint import BackgroundCheckpoint
from lora_manager.db.engine import sqlite_path
from lora_manager.db.key_ranges import chunks
from lora_manager.db.retry import in_transaction
from lora_manager.errors import FailureKind, LoraError
from lora_manager.ignore import IGNORE_FILE
from lora_manager.paths import lies_under, resolve_root
from lora_manager.services.import_report import ImportOptions, ImportReport, Outcome, now
from lora_manager.services.planning import RootPlan, plan_root
from lora_manager.services.prefetch import Prefetcher, prefetcher_for, stop_reader

if TYPE_CHECKING:
    import subprocess

    from lora_manager.services.decisions import BatchDecisions, RunState
    from lora_manager.services.results import EntryResult

__all__ = ["ImportOptions", "ImportReport", "Outcome", "Progress", "run_import"]

Progress = Callable[[str, int, int], None]  # (phase, done, total)
# Fewer entries to write than this: each batch's pages are checkpointed on a second thread.
BACKGROUND_CHECKPOINT_BELOW = 5000
# Such a re-import of edits writes batches of at most this many entries: a batch's pages are
# copied and synced beside the next batch, and what the close still has to sync is one batch's
# (1,100 edits at 100,000 models: 500, 500, 100 rather than 1,000 and 100, which left the copy
# of the first batch still running when the last was written).
EDIT_BATCH = 500


def run_import(
    engine: Engine,
    options: ImportOptions,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    reader: subprocess.Popen[bytes] | None = None,
) -> ImportReport:
    """Import every root; the caller holds the import lock (see ``db.lock``) unless ``dry_run``.

    ``reader``: one from :func:`~lora_manager.services.prefetch.start_early_reader`, for the first
    root; it is stopped once that root is done (the caller stops it if the run fails before).
    """
    # An Outcome per entry only for ``scan``/``--dry-run``: a real import's memory stays flat.
    report = ImportReport(keep_outcomes=options.dry_run or options.list_unchanged)
    roots = _outermost([resolve_root(r) for r in options.roots])
    if not options.dry_run:
        with engine.begin() as conn:
            report.run_id = repo.start_run(conn, roots, False, now())
    status = "failed"
    try:
        for i, root in enumerate(roots):
            early = reader if i == 0 else None
            prefetch = prefetcher_for(root, options.max_sidecar_bytes, options.workers, should_stop, early)
            try:
                with engine.connect() as conn:
                    plan = plan_root(conn, root, options, prefetch)
                if plan.files_seen == 0 and (options.prune or _holds_entries(engine, root)):
                    unlisted = next((p.message for p in plan.walk_problems if p.path == root), None)
                    if unlisted is not None:  # the root itself: every record would be unknown anyway
                        raise LoraError(f"{root}: {unlisted}. Nothing was changed.")
                    if plan.rules.text:
                        raise LoraError(
                            f"{root}: no file to import: the folder is empty, or the ignore rules (--ignore, "
                            f"{IGNORE_FILE}) skip every file; is the drive mounted? Nothing was changed."
                        )
                    raise LoraError(f"{root}: the folder is empty; is the drive mounted? Nothing was changed.")
                _run_root(engine, plan, options, report, progress, should_stop, prefetch)
            finally:
                if prefetch:
                    prefetch.close()
                else:
                    stop_reader(early)  # no prefetcher took it: this run reads in one process
            if report.interrupted:
                break
        status = "interrupted" if report.interrupted else "completed"
    finally:
        report.duration = time.monotonic() - report.started
        if report.run_id is not None:
            with engine.begin() as conn:
                repo.finish_run(conn, report.run_id, status, dict(report.counts), now())
    return report


def _holds_entries(engine: Engine, root: str) -> bool:
    """Whether the catalog knows entries under ``root`` (asked only when its walk found no file)."""
    with engine.connect() as conn:
        return repo.holds_entries(conn, root)


def _outermost(roots: list[str]) -> list[str]:
    """The roots, each once, less those inside another: ``lora import lib lib/sub`` imports ``lib`` once."""
    unique = list(dict.fromkeys(roots))
    return [r for r in unique if not any(other != r and lies_under(r, other) for other in unique)]


def _run_root(
    engine: Engine,
    plan: RootPlan,
    options: ImportOptions,
    report: ImportReport,
    progress: Progress | None,
    should_stop: Callable[[], bool],
    prefetch: Prefetcher | None = None,
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
    # Only for a re-import of edits: a large import's batches rewrite the same index pages again and
    # again, which SQLite's own checkpoint every 10,000 pages copies once, and its readers use the
    # other core (see ``db.checkpoint``).
    few = plan.todo_count < BACKGROUND_CHECKPOINT_BELOW
    checkpoint = BackgroundCheckpoint(sqlite_path(str(engine.url)) if few and not options.dry_run else None)
    try:
        if plan.todo_count:
            _read_and_write(engine, plan, options, report, progress, should_stop, prefetch, checkpoint)
            if report.interrupted:
                return
        if options.dry_run:
            return
        if should_stop():  # a stop asked for (or, on PostgreSQL, the import lock lost) before the last writes
            report.interrupted = True
            return
        with engine.begin() as conn:
            # A few hundred directories at a time (a files record is 8 bytes a file).
            for part in chunks(list(plan.fingerprints.items()), 200):
                directories.save_directories(conn, [_directory_row(plan, d, fp) for d, fp in part])
            directories.stale_directories(conn, plan.stale_dirs)
            if options.prune:
                report.counts["pruned"] += repo.prune_missing(conn, plan.root)
    finally:
        checkpoint.wait()


def _read_and_write(
    engine: Engine,
    plan: RootPlan,
    options: ImportOptions,
    report: ImportReport,
    progress: Progress | None,
    should_stop: Callable[[], bool],
    prefetch: Prefetcher | None,
    checkpoint: BackgroundCheckpoint,
) -> None:
    """Read the plan's entries and write them in batches (a dry run decides them and writes nothing)."""
    # Reading and deciding import the parsers and pydantic models: a run with nothing to read
    # (the usual cron run) does without them.
    from lora_manager.services.batching import read_batches
    from lora_manager.services.decisions import RunState

    with engine.connect() as conn:
        state = RunState(plan, conn, saved=not options.dry_run)
    done, total = 0, plan.todo_count
    batches = read_batches(
        plan.todo_in_key_order(),
        total,
        plan.root,
        min(options.batch_size, EDIT_BATCH) if checkpoint.path is not None else options.batch_size,
        options.max_sidecar_bytes,
        options.workers,
        prefetch.take if prefetch else None,
    )
    for batch in batches:
        if options.dry_run:
            with engine.connect() as conn:
                state.apply(state.decide(batch, conn), report)
        else:
            for decided in _save(engine, state, batch, report):
                state.apply(decided, report)
            if done + len(batch) < total:
                # The batch is committed: its pages may be copied while the next is written. After
                # the last one there is nothing to overlap with: a 10k re-import after 110 edits (one
                # batch) ran 5-10 ms faster without that copy, which syncs the files once more.
                checkpoint.start()
        plan.let_go_stored([r.key for r in batch])
        done += len(batch)
        if progress:
            progress("import", done, total)
        if should_stop():
            report.interrupted = True
            return


def _directory_row(plan: RootPlan, directory: str, fp: str) -> dict[str, object]:
    """What the catalog keeps of a directory looked at: a stale one is looked at in full next time.

    Its files record goes in as a patch of the full one stored when it can (see
    ``listings.patch_for``); else in full, with the names if they changed (else the names
    stored are still the directory's).
    """
    row: dict[str, object] = {
        "path": directory,
        "fingerprint": fp,
        "counts": {k: v for k, v in plan.dir_statuses.get(directory, Counter()).items() if v > 0},
    }
    if directory in plan.stale_dirs:
        row.update(fingerprint="", patch=None, names=None)
    elif directory in plan.patches:
        row["patch"] = plan.patches[directory]
    else:  # every directory looked at has a files record: the walk made one before grouping it
        row.update(patch=b"", files=plan.files[directory])
        if directory in plan.names:
            row["names"] = plan.names[directory]
    return row


def _save(engine: Engine, state: RunState, batch: list[EntryResult], report: ImportReport) -> list[BatchDecisions]:
    """Write one batch; if the database refuses a value in it, each entry alone, and the refused ones as failed.

    A transient database error runs the whole batch again (decided anew, nothing to undo). Any
    other is about the data: the parsers make every value storable, but should one slip
    through, it costs its entry, named, and not the run.
    """
    try:
        return [in_transaction(engine, partial(_write_batch, state, batch, report), "saving a batch")]
    except _REFUSALS as exc:
        if len(batch) == 1:
            return [in_transaction(engine, partial(_write_batch, state, [_refused(batch[0], exc)], report), "saving")]
    return [decided for result in batch for decided in _save(engine, state, [result], report)]


# What a database (or its driver, before it: sqlite3 raises OverflowError for an integer past
# 64 bits) answers to a value it will not store. Transient errors never get here (see db.retry);
# a TypeError or ValueError is a bug of ours, which must not pass for a refused file.
_REFUSALS = (StatementError, OverflowError)


def _refused(result: EntryResult, exc: Exception) -> EntryResult:
    """``result`` as a failure: the database would not store it."""
    from lora_manager.models import FileProblem
    from lora_manager.services.results import EntryResult

    path = (result.row or {}).get("json_file_path") or result.model_path or result.key
    text = str(getattr(exc, "orig", None) or exc).strip()
    cause = text.splitlines()[0][:200] if text else type(exc).__name__
    problem = FileProblem(path=path, kind=FailureKind.DB_ERROR.value, message=f"the catalog refused it: {cause}")
    return EntryResult(
        result.key,
        result.signature,
        "failed",
        problems=[*result.problems, problem],
        model_path=result.model_path,
        model_size=result.model_size,
        model_mtime_ns=result.model_mtime_ns,
    )


def _write_batch(state: RunState, batch: list[EntryResult], report: ImportReport, conn: Connection) -> BatchDecisions:
    decided = state.decide(batch, conn)
    state.write(decided, conn)
    if report.run_id is not None:
        failures = [p for r in batch for p in r.problems if FailureKind(p.kind).is_failure]
        repo.record_failures(conn, report.run_id, failures)
    return decided


def _handle_vanished(engine: Engine, plan: RootPlan, report: ImportReport, dry_run: bool) -> None:
    """Entries whose files are all gone: their rows are marked missing (before any take-over).

    Their model files are marked missing too, but for one another entry has as its model: if
    that entry is read again this run and lets go of the file, its batch marks it (see
    ``RunState.write``).
    """
    # Only rows these entries still hold: one taken over by another entry since is that one's.
    pairs = [(s.adapter_id, s.key) for s in plan.vanished if s.adapter_id is not None]
    with engine.begin() if not dry_run else engine.connect() as conn:
        still = set(repo.rows_still_held(conn, pairs)) if pairs else set()
        # What the run goes on to decide knows them as holding no row (see RunState.vanished_ids).
        plan.vanished = [s if s.adapter_id in still else s._replace(adapter_id=None) for s in plan.vanished]
        held = [s for s in plan.vanished if s.adapter_id is not None]
        for s in held:
            report.outcome(Outcome(s.key, "missing", s.name, s.version_key or None, "files are gone"))
        if dry_run:
            report.counts["missing"] += len(held)
            return
        report.counts["missing"] += repo.mark_missing(conn, sorted(still), now())
        repo.delete_entries(conn, [s.key for s in plan.vanished])
        directories.forget_directories(conn, plan.gone_dirs)
        # Their directories' counts still count them until the run saves those at the end (see RunState.write).
        directories.stale_directories(
            conn, {os.path.dirname(s.key) for s in plan.vanished} - set(plan.gone_dirs), keep_names=True
        )
        repo.mark_model_files_missing(
            conn, [s.model_path for s in plan.vanished if s.model_path], now(), unless_held=True
        )

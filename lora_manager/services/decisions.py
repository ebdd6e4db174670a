"""Who holds which ``(name, version)``: the decisions an import makes for each batch it writes.

When two entries claim one identity, the first in path order wins and the other is a
duplicate, the same way on every run. A batch's decisions are computed into a
:class:`BatchDecisions` and applied to the run's state only after its transaction commits,
so a batch that a transient database error rolls back is simply decided again.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from lora_manager.db import directories
from lora_manager.db import repository as repo
from lora_manager.db.rows import adapter_row
from lora_manager.entries import signed_files, signs_neighbour
from lora_manager.errors import FailureKind
from lora_manager.models import FileProblem
from lora_manager.paths import lies_under
from lora_manager.services.claims import ClaimFilter, Claims
from lora_manager.services.import_report import ImportReport, Outcome, now
from lora_manager.services.planning import RootPlan
from lora_manager.services.results import EntryResult

PRELOAD_OWNERS = 5000  # this many entries to read or more: load every row's owner in one query


# Neither compared nor printed: without them, making the class (on every re-import of edits) costs half.
@dataclass(repr=False, eq=False)
class BatchDecisions:
    """What one batch decided; :meth:`RunState.apply` adds it to the run once it is saved."""

    claims: dict[repo.Identity, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[FileProblem] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    statuses: list[tuple[str, str]] = field(default_factory=list)  # (entry key, its status after the run)
    stale_dirs: set[str] = field(default_factory=set)
    # The writes, in the order they are made.
    renames: list[tuple[int, str, str | None]] = field(default_factory=list)
    renamed_from: list[repo.Identity] = field(default_factory=list)  # identities whose row moved away: free now
    adapters: list[dict[str, Any]] = field(default_factory=list)
    fresh: set[str] = field(default_factory=set)  # entry keys whose adapter row is inserted, not updated
    demote: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    let_go: list[str] = field(default_factory=list)  # failed holders whose last good record is taken over
    missing: list[int] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # model files entries read again no longer have
    # Holders outside this run's root whose files are gone (a library moved): their entries are forgotten.
    forget: list[str] = field(default_factory=list)
    revived: set[int] = field(default_factory=set)  # rows this run left missing, taken over again
    # Who holds each identity the batch touches once its renames are made: the rows its upserts update.
    holders: dict[repo.Identity, repo.Owner] = field(default_factory=dict)

    def outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


class RunState:
    """The decisions of one root's run, batch after batch."""

    def __init__(self, plan: RootPlan, conn: Connection | None = None, saved: bool = True) -> None:
        """``saved``: each batch is written before the next is decided (False for a dry run)."""
        self.plan = plan
        self.vanished_keys = {s.key for s in plan.vanished}
        self.vanished_ids = {s.adapter_id for s in plan.vanished if s.adapter_id is not None}
        self._gone: dict[str, bool] = {}  # holders outside the root: whether their files are gone
        self.claimed = ClaimFilter()  # the identities earlier batches may have claimed (see claims.Claims)
        # A dry run saves nothing to look claims up in: it keeps them in full.
        self.claims: dict[repo.Identity, str] | None = None if saved else {}
        # With many entries to read, every row's owner is loaded once instead of per batch. It is
        # not kept up to date with this run's writes: an identity claimed this run is answered by
        # ``claims`` before its owner is asked for, so a second map of the run's rows (a quarter
        # of a 100,000-model cold import's memory) would add nothing.
        self.owner_map = repo.all_owners(conn) if conn is not None and plan.todo_count >= PRELOAD_OWNERS else None

    def apply(self, decided: BatchDecisions, report: ImportReport) -> None:
        """Make a saved batch's decisions part of the run."""
        self.claimed.update(decided.claims)
        if self.claims is not None:
            self.claims.update(decided.claims)
        report.counts.update(decided.counts)
        report.problems.extend(decided.problems)
        for outcome in decided.outcomes:
            report.outcome(outcome)
        statuses = self.plan.dir_statuses
        for key, status in decided.statuses:
            directory = key.rpartition(os.sep)[0]
            if directory not in statuses:
                statuses[directory] = Counter()
            statuses[directory][status] += 1
        self.plan.stale_dirs |= decided.stale_dirs
        self.vanished_ids -= decided.revived
        if self.owner_map is not None:  # loaded before the run: a row moved to another identity is gone from this one
            for ident in decided.renamed_from:
                self.owner_map.pop(ident, None)

    def decide(self, batch: list[EntryResult], conn: Connection) -> BatchDecisions:
        """Decide the fate of each entry of ``batch`` (reads the database, writes nothing)."""
        out = BatchDecisions()
        self.plan.load_stored(conn, [r.key for r in batch])
        holder_of = self.claims.get if self.claims is not None else self._holder(conn, batch[0].key if batch else "")
        claims = Claims(out.claims, self.claimed, holder_of)
        idents = {(r.row["name"], r.row["version_key"]) for r in batch if r.row}
        # The rows the batch's entries held before: whether each still does (another entry may have taken it over).
        idents |= {
            (s.name or "", s.version_key or "") for r in batch if (s := self.plan.stored.get(r.key)) and s.adapter_id
        }
        if self.owner_map is not None:
            owners = {i: o for i in idents if (o := self.owner_map.get(i))}
        else:
            owners = repo.owners(conn, idents)
        stamp = now()
        for r in batch:
            row = self._decide_one(r, claims, owners, out, stamp, conn)
            out.entries.append(row)
            out.statuses.append((r.key, str(row["status"])))
            old = self.plan.stored.get(r.key)
            if r.model_path and r.model_size is not None and not _model_file_unchanged(old, r):
                out.models.append(
                    {"path": r.model_path, "size": r.model_size, "mtime_ns": r.model_mtime_ns, "missing_since": None}
                )
            if old is not None and old.model_path and old.model_path != r.model_path:
                out.released.append(old.model_path)
        out.holders = owners
        out.counts["failed"] += sum(1 for r in batch for p in r.problems if FailureKind(p.kind).is_failure)
        out.counts["skipped"] += sum(1 for r in batch for p in r.problems if p.kind == FailureKind.NOT_METADATA)
        return out

    def write(self, decided: BatchDecisions, conn: Connection) -> None:
        """Make the batch's decisions in the database (inside the caller's transaction)."""
        for adapter_id, name, version in decided.renames:
            repo.rename_adapter(conn, adapter_id, name, version)
        if decided.missing:  # before the upserts: an entry later in the batch may take the row over
            repo.mark_missing(conn, decided.missing, now())
        # A first import's rows are all new: their stored indexed values need not be read.
        fresh = len(decided.fresh) == len(decided.adapters)
        ids = repo.upsert_adapters(conn, decided.adapters, fresh, decided.holders) if decided.adapters else {}
        repo.replace_tags(conn, _changed_tags(decided, ids), {ids[k] for k in decided.fresh})
        for row in decided.entries:
            if row["status"] == "ok":
                row["adapter_id"] = ids.get(row["key"])
        if decided.demote:
            repo.demote_to_duplicate(conn, decided.demote)
        if decided.let_go:
            repo.let_go_of_records(conn, decided.let_go)
        if decided.forget:
            repo.forget_entries(conn, decided.forget, now())
        stored = self.plan.stored
        all_new = not any(row["key"] in stored for row in decided.entries)
        repo.save_entries(conn, decided.entries, all_new, stored)
        # A directory's stored counts say how many of its entries are ok, orphans, failed...: one whose
        # entry changed status here is stale until the run saves it at the end (a run killed before
        # then would leave counts that later runs, adding to them, would carry on).
        recounted = {
            row["key"].rpartition(os.sep)[0]
            for row in decided.entries
            if (old := stored.get(row["key"])) is None or old.status != row["status"]
        }
        if recounted:
            directories.stale_directories(conn, recounted, keep_names=True)
        repo.save_model_files(conn, decided.models)
        if decided.released:
            # After this batch's entries are saved, so that one of them taking the file over holds it.
            # A file another entry still holds stays: if that entry lets go of it later in this run,
            # its own batch marks it then (made in the batch's transaction, so a run stopped after
            # it leaves no file that nobody will mark).
            repo.mark_model_files_missing(conn, decided.released, now(), unless_held=True)

    def _holder(self, conn: Connection, batch_start: str) -> Callable[[repo.Identity], str | None]:
        """The entry that claimed an identity in an earlier batch of this run, as the catalog says.

        Entries are decided in key order, so one read this run whose key sorts before the
        batch's first was decided in an earlier batch; the row it holds and has not let go
        of (a row left missing is let go) is its claim.
        """

        def holder_of(ident: repo.Identity) -> str | None:
            owner = repo.owners(conn, [ident]).get(ident)
            if owner is None or owner.missing or owner.entry_key is None:
                return None
            key = owner.entry_key
            return key if key < batch_start and self.plan.in_todo(key) else None

        return holder_of

    def _verdict(
        self,
        ident: repo.Identity,
        key: str,
        claims: Claims,
        owners: dict[repo.Identity, repo.Owner],
    ) -> tuple[bool, str]:
        """``(claims, other)``: whether ``key`` may hold ``ident``; ``other`` is the loser or winner."""
        holder = claims.get(ident)
        if holder is not None and holder != key:
            return False, holder
        owner = owners.get(ident)
        if owner is None or owner.entry_key in (None, key) or owner.missing:
            return True, ""
        other = owner.entry_key
        if other in self.vanished_keys or self.plan.in_todo(other):
            return True, ""  # gone, or read this run (it let go, or it sorts after us and will lose)
        if self._gone_elsewhere(other, owner.json_file_path):
            return True, ""  # outside this root, and its files are gone: a library moved or deleted
        return (False, other) if other < key else (True, other)

    def _gone_elsewhere(self, key: str, sidecar: str | None) -> bool:
        """Whether a holder outside this run's root is gone: its folder or its sidecar no longer exists.

        The walk only sees this root, so a library that was moved (imported again under its new
        path) would otherwise stay catalogued under paths that are no more, its new copies all
        duplicates of it. One ``lstat`` or two per such holder, once a run.
        """
        if lies_under(key, self.plan.root):
            return False  # inside the root: the walk said whether it is there
        if key not in self._gone:
            folder_gone = not os.path.isdir(os.path.dirname(key))
            self._gone[key] = folder_gone or (sidecar is not None and not os.path.lexists(sidecar))
        return self._gone[key]

    def _decide_one(
        self,
        r: EntryResult,
        claims: Claims,
        owners: dict[repo.Identity, repo.Owner],
        out: BatchDecisions,
        stamp: Any,
        conn: Connection,
    ) -> dict[str, Any]:
        """The entry row for ``r``, with every decision about its identity recorded in ``out``."""
        old = self.plan.stored.get(r.key)
        old_id = old.adapter_id if old else None
        old_ident = (old.name or "", old.version_key or "") if old and old.adapter_id is not None else None
        # The row it held is still its own: it still bears that identity (another entry may have
        # taken it over and moved it to another since), no other entry holds it, and none claimed
        # it this run. Else that row is another's now, and nothing this entry does may touch it.
        held = owners.get(old_ident) if old_ident is not None else None
        mine_or_free = (
            old_ident is not None
            and held is not None
            and held.adapter_id == old_id
            and held.entry_key in (None, r.key)
            and claims.get(old_ident) in (None, r.key)
        )
        out.problems.extend(r.problems)
        row: dict[str, Any] = {
            "key": r.key,
            "signature": r.signature,
            "status": r.status,
            "name": None,
            "version_key": None,
            "adapter_id": None,
            "model_path": r.model_path,
            "problems": [p.model_dump() for p in r.problems],
            "seen_at": stamp,
        }
        if r.row is None:
            live = held is not None and not held.missing
            self._without_record(r, row, old, old_ident, mine_or_free, live, claims, out)
            return row
        rec = r.row
        ident = (rec["name"], rec["version_key"])
        row.update(name=ident[0], version_key=ident[1])
        allowed, other = self._verdict(ident, r.key, claims, owners)
        if not allowed:
            row["status"] = "duplicate"
            problem = FileProblem(
                path=rec["json_file_path"] or r.key,
                kind=FailureKind.DUPLICATE.value,
                message=f"{_label(ident)} is already catalogued from {other}",
            )
            out.problems.append(problem)
            row["problems"] = [*row["problems"], problem.model_dump()]
            out.counts["duplicates"] += 1
            out.outcome(Outcome(r.key, "duplicate", rec["name"], rec["version"], problem.message))
            if old_id is not None and old_ident != ident and mine_or_free:
                # No file holds its old identity now: the row is left missing, not deleted, so the
                # user's state on it comes back if the sidecar is put right (--prune removes it).
                out.missing.append(old_id)
                out.counts["missing"] += 1
            return row
        owner = owners.get(ident)
        renamed = False
        if old_id is not None and old_ident is not None and old_ident != ident and mine_or_free:
            if owner is None:  # the new identity is free: move the row, keeping the user's state on it
                out.renames.append((old_id, rec["name"], rec["version"]))
                owners[ident] = owner = repo.Owner(old_id, r.key, False)
                # The old identity has no row now: an entry claiming it after this one makes a new one.
                owners.pop(old_ident, None)
                out.renamed_from.append(old_ident)
                renamed = True
            else:  # it takes over the new identity's row: its old one is left missing, the user's state on it kept
                out.missing.append(old_id)
                out.counts["missing"] += 1
        if other and _failed(conn, other):
            # An unchanged holder later in path order whose sidecar broke (it kept its last good
            # record): the record is this entry's now, and it stays failed, holding none, as a fresh
            # import has it (a duplicate of nothing it could read).
            out.let_go.append(other)
        elif other:  # an unchanged holder later in path order: it becomes the duplicate
            message = f"{_label(ident)} is now catalogued from {r.key}, earlier in path order"
            where = (owner.json_file_path if owner else None) or other
            problem = FileProblem(path=where, kind=FailureKind.DUPLICATE.value, message=message)
            out.demote[other] = [problem.model_dump()]
            out.stale_dirs.add(os.path.dirname(other))
            out.problems.append(problem)
            out.counts["duplicates"] += 1
            if lies_under(other, self.plan.root):  # counted unchanged by the plan; one outside the root was not
                out.counts["unchanged"] -= 1
            out.outcome(Outcome(other, "duplicate", rec["name"], rec["version"], message))
        claims[ident] = r.key
        if owner is not None and owner.entry_key not in (None, r.key) and self._gone.get(owner.entry_key or ""):
            out.forget.append(owner.entry_key or "")
        if owner is not None and owner.adapter_id in self.vanished_ids:
            out.revived.add(owner.adapter_id)  # counted missing when its files went; it is not
            out.counts["missing"] -= 1
        action = "new" if owner is None else "updated"
        if owner is None:
            out.fresh.add(r.key)
        out.counts[action] += 1
        out.outcome(Outcome(r.key, action, rec["name"], rec["version"], "renamed" if renamed else ""))
        out.adapters.append(adapter_row(rec, r.key, stamp))
        return row

    @staticmethod
    def _without_record(
        r: EntryResult,
        row: dict[str, Any],
        old: repo.StoredEntry | None,
        old_ident: repo.Identity | None,
        mine_or_free: bool,
        live: bool,
        claims: Claims,
        out: BatchDecisions,
    ) -> None:
        """An entry that gave no record (failed, orphan, noise): what becomes of its old row (``live``:
        it is not marked missing).

        A failed entry keeps its last good record only while its model file is there: a sidecar
        broken as the model was deleted leaves the record missing, as the model's deletion alone does.
        """
        if old is not None and old.adapter_id is not None and old_ident is not None and mine_or_free:
            old_id = old.adapter_id
            row.update(name=old_ident[0], version_key=old_ident[1], adapter_id=old_id)
            if r.status == "failed" and _model_there(r, old.model_path):
                if live:  # a broken sidecar: the last good record stays as it was
                    claims[old_ident] = r.key
                # else it was left missing (its model went): a broken sidecar does not hold it, so
                # another entry may claim its identity, as in a fresh import
            else:
                out.missing.append(old_id)  # the model or all its metadata is gone
                out.counts["missing"] += 1
        if r.status == "orphan":
            out.counts["orphans"] += 1
        detail = "; ".join(f"{p.kind}: {p.message}" for p in r.problems)
        out.outcome(Outcome(r.key, r.status, None, None, detail))


def _failed(conn: Connection, key: str) -> bool:
    """Whether the stored entry ``key`` failed (asked only of a holder losing its identity: rare)."""
    stored = repo.load_entries_by_key(conn, [key]).get(key)
    return stored is not None and stored.status == "failed"


def _model_there(r: EntryResult, had: str | None) -> bool:
    """Whether the model file of a failed entry is there: found by its read, or, when no sidecar could be
    read to name one, the file ``had`` (the model its last good sidecar named) still beside it.

    A file named by a sidecar is one of another stem with no sidecar of its own: the walk puts it in
    the entry's signature as ``n:name:size:mtime`` (see ``Entry.signature``).
    """
    if any(p.kind == FailureKind.MODEL_MISSING.value for p in r.problems):
        return False  # its sidecars were read, and name no model file that is there
    if r.model_path is not None:
        return True
    if had is None or os.path.dirname(had) != r.key.rpartition(os.sep)[0]:
        return False
    listed = signs_neighbour(r.signature, os.path.basename(had))
    # Past the neighbours a signature lists one by one, only the disk can tell.
    return os.path.isfile(had) if listed is None else listed


def _changed_tags(decided: BatchDecisions, ids: dict[str, int]) -> dict[int, list[str]]:
    """The tags of each upserted row, less those of a row that stored the very same list already.

    A re-import after a description was edited keeps its tags: asking ``adapter_tag`` for them
    again was a query of every row the batch rewrites.
    """
    out: dict[int, list[str]] = {}
    for a in decided.adapters:
        adapter_id = ids[a["entry_key"]]
        held = decided.holders.get((a["name"], a["version_key"]))
        if held is None or held.adapter_id != adapter_id or held.tags != a["tags"]:
            out[adapter_id] = a["tags"]
    return out


def _model_file_unchanged(old: repo.StoredEntry | None, r: EntryResult) -> bool:
    """Whether the entry's model file is the one, same size and mtime, it had when last read.

    Then its ``model_file`` row is already right, and rewriting it (with its three hash
    indexes) would only add pages for the commit to flush: a re-import after sidecar edits
    skips it. ``lora hash`` keeps that row's missing flag, as for an entry not read at all.
    """
    if old is None or r.model_path is None or old.model_path != r.model_path:
        return False
    file = (os.path.basename(r.model_path), str(r.model_size), str(r.model_mtime_ns))
    signed = signed_files(old.signature)
    return any(kind in ("m", "n") and (name, size, mtime) == file for kind, name, size, mtime in signed)


def _label(ident: repo.Identity) -> str:
    return f"{ident[0]!r} version {ident[1]!r}" if ident[1] else f"{ident[0]!r} (no version)"

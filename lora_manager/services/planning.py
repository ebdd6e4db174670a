"""The plan of an import: walk a root, compare with what is stored, decide what to read.

The plan costs one walk and a few queries per root: a directory whose fingerprint (its files'
names, sizes and ``st_mtime_ns``) is unchanged is skipped whole; in the others, an entry
whose signature equals the stored one is not opened. Only the stored state of the entries
that changed or vanished is loaded in full.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Connection

from lora_manager.db import directories
from lora_manager.db import repository as repo
from lora_manager.discovery import regroup, walk, walk_directory
from lora_manager.entries import Entry
from lora_manager.ignore import IgnoreRules, load_ignore
from lora_manager.models import FileProblem
from lora_manager.paths import library_of
from lora_manager.services.import_report import ImportOptions, Outcome
from lora_manager.services.prefetch import Prefetcher


@dataclass
class RootPlan:
    root: str
    todo: list[Entry]  # entries to read, in key order (besides those of ``lazy_dirs``)
    stored: dict[str, repo.StoredEntry]  # the stored state of the todo and vanished entries
    vanished: list[repo.StoredEntry]
    unchanged: Counter[str]  # stored status -> entries not read
    unchanged_outcomes: list[Outcome]
    # Directory -> fingerprint (and files record) to store once the run is through, and its entries' statuses.
    fingerprints: dict[str, str]
    files: dict[str, bytes]  # see ``listings``
    names: dict[str, bytes]  # the directories whose names changed -> their names, packed
    # The directories whose files record is stored as a patch of the full one kept (``listings.patch_for``).
    patches: dict[str, bytes]
    dir_statuses: dict[str, Counter[str]]
    gone_dirs: list[str]  # known directories that are no more
    stale_dirs: set[str]  # directories to look at in full next time
    walk_problems: list[FileProblem]
    files_seen: int
    known_dirs: int  # directories the catalog knew under this root
    # New directories whose entries are all read, grouped only when their turn comes (see
    # ``todo_in_key_order``), and how many entries they hold; the rules to group them by.
    lazy_dirs: dict[str, int] = field(default_factory=dict)
    rules: IgnoreRules = field(default_factory=IgnoreRules)
    # The lazy directories the catalog knows (``--force``): their entries' stored state is
    # loaded batch by batch (:meth:`load_stored`), not up front with ``stored``.
    reread_dirs: set[str] = field(default_factory=set)

    @property
    def todo_count(self) -> int:
        return len(self.todo) + sum(self.lazy_dirs.values())

    def __post_init__(self) -> None:
        self._todo_keys = frozenset(e.key for e in self.todo)

    def in_todo(self, key: str) -> bool:
        """Whether the entry ``key`` is read this run (a set of every key would cost memory per model)."""
        return key in self._todo_keys or key.rpartition(os.sep)[0] in self.lazy_dirs

    def load_stored(self, conn: Connection, keys: list[str]) -> None:
        """Add to ``stored`` that of the entries of ``reread_dirs`` among ``keys`` (a batch about to be decided)."""
        if self.reread_dirs:
            wanted = [k for k in keys if k not in self.stored and k.rpartition(os.sep)[0] in self.reread_dirs]
            if wanted:
                self.stored.update(repo.load_entries_by_key(conn, wanted))

    def let_go_stored(self, keys: list[str]) -> None:
        """Forget what :meth:`load_stored` loaded for ``keys`` once their batch is saved: memory stays flat."""
        if self.reread_dirs:
            for k in keys:
                if k.rpartition(os.sep)[0] in self.reread_dirs:
                    self.stored.pop(k, None)

    def todo_in_key_order(self) -> Iterator[Entry]:
        """Every entry to read, in key order: ``todo`` merged with the lazy directories' entries.

        A lazy directory is grouped once the merge reaches its path (its keys all sort after
        ``directory + "/"``), and let go once its entries are read: only the directories on
        the current path are held at a time. One that changed since the walk is marked
        stale, so the next run looks at it in full.
        """
        lazy = sorted(self.lazy_dirs, key=lambda d: d + os.sep)
        heap: list[tuple[str, int, Entry, Iterator[Entry]]] = []
        order = itertools.count()

        def push(entries: Iterator[Entry]) -> None:
            first = next(entries, None)
            if first is not None:
                heapq.heappush(heap, (first.key, next(order), first, entries))

        push(_drain(self.todo))
        opened = 0
        while heap or opened < len(lazy):
            while opened < len(lazy) and (not heap or lazy[opened] + os.sep <= heap[0][0]):
                directory = lazy[opened]
                entries, fp = regroup(self.root, directory, self.rules)
                if fp != self.fingerprints.get(directory):
                    self.stale_dirs.add(directory)
                push(iter(entries))
                opened += 1
            if heap:
                _, _, entry, rest = heapq.heappop(heap)
                yield entry
                push(rest)


def _drain(entries: list[Entry]) -> Iterator[Entry]:
    """``entries`` in order, each let go of once it is handed out."""
    queue = deque(entries)
    entries.clear()
    while queue:
        yield queue.popleft()


def plan_root(conn: Connection, root: str, options: ImportOptions, prefetch: Prefetcher | None = None) -> RootPlan:
    """Walk ``root`` and compare with what is stored: the entries that must be read again.

    See the module's docstring for what is looked at and what is not. ``prefetch`` is given
    the entries of the directories looked at in part during the walk.
    """
    known_dirs = directories.load_directories(conn, root)
    skip = not (options.force or options.list_unchanged)
    # ``--force`` reads every entry: a directory that did not change is grouped when its turn
    # comes, as a new one is, and its entries' stored state loaded batch by batch (grouping
    # and loading all of them up front held ~370 MB at 100,000 models).
    reread = options.force and not options.list_unchanged
    known = {path: fp for path, (fp, _) in known_dirs.items()} if skip or reread else None

    rules = load_ignore(root, options.ignore)
    previous = directories.StoredDirectories(conn, root) if skip else None
    if prefetch:
        prefetch.walk_starts(known_dirs.keys())
    result = walk(
        root,
        rules,
        known,
        previous,
        defer_new=skip or reread,
        on_partial=prefetch.add if prefetch else None,
        defer_clean=reread,
    )
    if prefetch:
        prefetch.walk_done()
    clean = set(result.clean)
    # A folder that could not be listed, and what is below it, is unknown this run: its
    # records stay as they are (not missing, so ``--prune`` cannot delete them).
    unknown: list[str] = []
    gone_dirs: list[str] = []
    for d in known_dirs:
        if d not in result.fingerprints:
            (unknown if library_of(d, result.unlisted) else gone_dirs).append(d)
    looked_at = {d for d in result.fingerprints if d not in clean}
    reread_dirs = {d for d in result.deferred if d in known_dirs} if reread else set()
    whole = (looked_at - result.partial.keys() - reread_dirs) | set(gone_dirs)
    signatures = repo.load_signatures(conn, root, whole)
    # A new directory with stored entries after all (an import killed before it saved its
    # directories): its entries are compared with them, so it is grouped now.
    held = {os.path.dirname(k) for k in signatures} & result.deferred.keys()
    for d in sorted(held):
        result.entries += walk_directory(root, d, rules)
        del result.deferred[d]
    if held:
        result.entries.sort(key=lambda e: e.key)
    considered = {d: [d + os.sep + stem for stem in stems] for d, stems in result.partial.items()}
    # The changed stems' entries are read almost surely: their stored state is loaded in full at once.
    changed = repo.load_entries_by_key(conn, [k for keys in considered.values() for k in keys])
    signatures.update((k, (s.signature, s.status)) for k, s in changed.items())
    unchanged: Counter[str] = Counter()
    for d in (*clean, *unknown):
        unchanged.update(known_dirs[d][1])
    dir_statuses: dict[str, Counter[str]] = {d: Counter() for d in looked_at}
    for d in result.partial:  # a directory looked at in part: the rest of it is as counted last time
        rest = Counter(known_dirs[d][1])
        for key in considered[d]:
            if key in signatures:
                rest[signatures[key][1]] -= 1
        unchanged.update(rest)
        dir_statuses[d].update(rest)
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
    wanted = [e.key for e in todo] + vanished_keys
    stored = {k: changed[k] for k in wanted if k in changed}
    stored.update(repo.load_entries_by_key(conn, [k for k in wanted if k not in changed]))
    del changed
    vanished = [stored[k] for k in vanished_keys if k in stored]
    # Identities that may be let go this run: duplicates waiting for them must be read again. A
    # failed entry that kept its last good record holds its identity as an ok one does.
    releasing = {(s.name or "", s.version_key or "") for s in vanished if _holds(s)}
    releasing |= {(s.name or "", s.version_key or "") for e in todo if (s := stored.get(e.key)) and _holds(s)}
    # A folder where the walk found a file it could not use (a link that loops: not a problem
    # of any entry, so stored with none) is stored stale, so that the next import looks at it
    # again and finds the problem again: listed by ``lora errors`` (the last run's walk
    # problems) for as long as the file is there. Only such folders cost a no-op import more.
    stale_dirs: set[str] = set(result.file_problems)
    # Duplicates whose identity's row is gone or missing (its holder went away under another
    # root, or in a run of a sub-folder): they may take it over now.
    stranded = set(repo.stranded_duplicates(conn, root)) if skip else set()
    if releasing or stranded:
        todo_keys = {e.key for e in todo}
        waiting = set(repo.waiting_duplicates(conn, releasing)) if releasing else set()
        waiting = (waiting | stranded) - todo_keys - set(vanished_keys)
        extra = [e for e in result.entries if e.key in waiting]
        # A clean directory, or one looked at in part, is listed again for the waiting entries it holds.
        missed = waiting - {e.key for e in extra}
        for d in {os.path.dirname(k) for k in missed} & (clean | result.partial.keys()):
            extra += [e for e in walk_directory(root, d, rules) if e.key in missed]
            stale_dirs.add(d)
        if extra:
            stored.update(repo.load_entries_by_key(conn, [e.key for e in extra]))
            for e in extra:  # counted as an unchanged duplicate, in its directory's statuses too
                if e.directory in dir_statuses and (e.key in unchanged_keys or e.directory in result.partial):
                    dir_statuses[e.directory]["duplicate"] -= 1
                unchanged["duplicate"] -= 1
            todo = sorted(todo + extra, key=lambda e: e.key)
    outcomes = []
    if options.list_unchanged:
        details = repo.load_entries_by_key(conn, sorted(unchanged_keys))
        for key in sorted(unchanged_keys):
            old_entry = details[key]
            action = "unchanged" if old_entry.status in ("ok", "duplicate") else old_entry.status
            # Its files did not change: it stays as the last import left it (see `lora errors` for why).
            detail = "" if action == "unchanged" else "unchanged since the last import"
            outcomes.append(Outcome(key, action, old_entry.name, old_entry.version_key or None, detail))
    return RootPlan(
        root=root,
        todo=todo,
        stored=stored,
        vanished=vanished,
        unchanged=unchanged,
        unchanged_outcomes=outcomes,
        fingerprints={d: fp for d, fp in result.fingerprints.items() if d in looked_at},
        files=result.files,
        names=result.names,
        patches=result.patches,
        dir_statuses=dir_statuses,
        gone_dirs=gone_dirs,
        stale_dirs=stale_dirs,
        walk_problems=[FileProblem(path=p, kind=k.value, message=m) for p, k, m in result.problems],
        files_seen=result.files_seen,
        known_dirs=len(known_dirs),
        lazy_dirs=result.deferred,
        rules=rules,
        reread_dirs=reread_dirs,
    )


def _holds(s: repo.StoredEntry) -> bool:
    """Whether a stored entry holds an identity (and its record) that it may let go this run."""
    return bool(s.name) and (s.status == "ok" or s.adapter_id is not None)

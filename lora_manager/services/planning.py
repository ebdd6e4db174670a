"""The plan of an import: walk a root, compare with what is stored, decide what to read.

The plan costs one walk and a few queries per root: a directory whose fingerprint (its files'
names, sizes and ``st_mtime_ns``) is unchanged is skipped whole; in the others, an entry
whose signature equals the stored one is not opened. Only the stored state of the entries
that changed or vanished is loaded in full.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection

from lora_manager.db import repository as repo
from lora_manager.discovery import Entry, load_ignore, walk, walk_directory
from lora_manager.models import FileProblem
from lora_manager.services.import_report import ImportOptions, Outcome


@dataclass
class RootPlan:
    root: str
    todo: list[Entry]  # entries to read, in key order
    stored: dict[str, repo.StoredEntry]  # the stored state of the todo and vanished entries
    vanished: list[repo.StoredEntry]
    unchanged: Counter[str]  # stored status -> entries not read
    unchanged_outcomes: list[Outcome]
    # Directory -> fingerprint (and listing) to record once the run is through, and its entries' statuses.
    fingerprints: dict[str, str]
    listings: dict[str, str]
    dir_statuses: dict[str, Counter[str]]
    gone_dirs: list[str]  # known directories that are no more
    stale_dirs: set[str]  # directories to look at in full next time
    walk_problems: list[FileProblem]
    files_seen: int
    known_dirs: int  # directories the catalog knew under this root


def plan_root(conn: Connection, root: str, options: ImportOptions) -> RootPlan:
    """Walk ``root`` and compare with what is stored: the entries that must be read again.

    See the module's docstring for what is looked at and what is not.
    """
    known_dirs = repo.load_directories(conn, root)
    skip = not (options.force or options.list_unchanged)
    known = {path: fp for path, (fp, _) in known_dirs.items()} if skip else None

    rules = load_ignore(root, options.ignore)
    result = walk(root, rules, known, repo.listing_reader(conn) if skip else None)
    clean = set(result.clean)
    gone_dirs = [d for d in known_dirs if d not in result.fingerprints]
    looked_at = {d for d in result.fingerprints if d not in clean}
    whole = (looked_at - result.partial.keys()) | set(gone_dirs)
    signatures = repo.load_signatures(conn, root, whole)
    considered = {d: [d + os.sep + stem for stem in stems] for d, stems in result.partial.items()}
    signatures.update(repo.load_signature_keys(conn, [k for keys in considered.values() for k in keys]))
    unchanged: Counter[str] = Counter()
    for d in clean:
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
    stored = repo.load_entries_by_key(conn, [e.key for e in todo] + vanished_keys)
    vanished = [stored[k] for k in vanished_keys if k in stored]
    # Identities that may be let go this run: duplicates waiting for them must be read again.
    releasing = {(s.name, s.version_key or "") for s in vanished if s.status == "ok" and s.name is not None}
    releasing |= {
        (s.name, s.version_key or "") for e in todo if (s := stored.get(e.key)) and s.status == "ok" and s.name
    }
    stale_dirs: set[str] = set()
    if releasing:
        todo_keys = {e.key for e in todo}
        waiting = set(repo.waiting_duplicates(conn, releasing)) - todo_keys - set(vanished_keys)
        extra = [e for e in result.entries if e.key in waiting]
        for d in {os.path.dirname(k) for k in waiting} & clean:  # a clean directory is listed again
            extra += [e for e in walk_directory(root, d, rules) if e.key in waiting]
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
    return RootPlan(
        root=root,
        todo=todo,
        stored=stored,
        vanished=vanished,
        unchanged=unchanged,
        unchanged_outcomes=outcomes,
        fingerprints={d: fp for d, fp in result.fingerprints.items() if d in looked_at},
        listings=result.listings,
        dir_statuses=dir_statuses,
        gone_dirs=gone_dirs,
        stale_dirs=stale_dirs,
        walk_problems=[FileProblem(path=p, kind=k.value, message=m) for p, k, m in result.problems],
        files_seen=result.files_seen,
        known_dirs=len(known_dirs),
    )

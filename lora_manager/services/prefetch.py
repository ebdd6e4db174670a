"""Reading changed entries on another core while the walk is still going.

A re-import after a few edits spends most of its time walking the library. The entries of
a directory looked at in part (see ``discovery.walk``'s ``on_partial``) almost surely
changed, so one reader process starts reading them as soon as the walk groups them; when
the plan is made, the importer takes the results of the entries it must read. A result is
used only for the very ``Entry`` object it was read for (same files, same grouping), so it
is what reading that entry later would give; anything the reader could not do is read as
before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from lora_manager.entries import Entry

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from lora_manager.services.reading import EntryResult

# Fewer entries than this are read in this process for less than a reader costs: its start
# (~15 ms here), sending entries and results, and the walk's slowdown while it reads (about
# 0.1 ms an entry). At 10,000 models, 110 edited entries were read faster without one; at
# 100,000, 1,100 in about 0.1 s less with one.
START_AT = 256
CHUNK = 64  # entries sent to the reader at a time
# Results held at most (a few KB each); entries past this are read the usual way.
LIMIT = 4000


class Prefetcher:
    """Feeds entries to one reader process, and hands their results out by entry."""

    def __init__(
        self, root: str, max_sidecar_bytes: int, start_at: int | None = None, limit: int | None = None
    ) -> None:
        self.root = root
        self.max_sidecar_bytes = max_sidecar_bytes
        self.start_at = START_AT if start_at is None else start_at
        self.limit = LIMIT if limit is None else limit
        self.sent = 0  # entries given to the reader
        self.used = 0  # results handed out
        self._waiting: list[Entry] = []
        self._slots: dict[str, tuple[Entry, Future[list[EntryResult]], int]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False

    def add(self, entries: list[Entry]) -> None:
        """Entries that will probably be read: sent to the reader once there are enough of them."""
        room = self.limit - self.sent - len(self._waiting)
        if room <= 0 or self._broken:
            return
        self._waiting.extend(entries[:room])
        if self.sent + len(self._waiting) >= self.start_at and len(self._waiting) >= (CHUNK if self._pool else 1):
            self._send()

    def walk_done(self) -> None:
        """Send what is left; too few entries to be worth a reader are left to the importer."""
        if self._pool is not None and self._waiting:
            self._send()
        self._waiting = []

    def take(self, entry: Entry) -> EntryResult | None:
        """The reader's result for ``entry``, or None when it has none (or failed): read it then."""
        slot = self._slots.pop(entry.key, None)
        if slot is None or slot[0] is not entry:
            return None
        try:
            results = slot[1].result()
        except Exception:  # a reader that died (BrokenProcessPool) or failed: the importer reads it
            return None
        self.used += 1
        return results[slot[2]]

    def close(self) -> None:
        """Stop the reader; results not taken are dropped."""
        self._slots.clear()
        self._waiting = []
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _send(self) -> None:
        chunk, self._waiting = self._waiting, []
        try:
            pool = self._pool or self._start()
            future = pool.submit(_read, chunk, self.root, self.max_sidecar_bytes)
        except Exception:  # no process could be started (limits, a sandbox): the importer reads it all
            self._broken = True
            return
        self.sent += len(chunk)
        for i, e in enumerate(chunk):
            self._slots[e.key] = (e, future, i)

    def _start(self) -> ProcessPoolExecutor:
        from concurrent.futures import ProcessPoolExecutor

        from lora_manager.services.reading import _die_with_parent

        self._pool = ProcessPoolExecutor(max_workers=1, initializer=_die_with_parent)
        return self._pool


def prefetcher_for(root: str, max_sidecar_bytes: int, workers: int | None) -> Prefetcher | None:
    """A prefetcher when there is a second core to read on (and the caller did not ask for one process)."""
    if workers == 1 or (workers is None and (os.cpu_count() or 1) < 2):
        return None
    return Prefetcher(root, max_sidecar_bytes)


def _read(entries: list[Entry], root: str, max_sidecar_bytes: int) -> list[Any]:
    """Runs in the reader process."""
    from lora_manager.services.reading import read_entry

    return [read_entry(e, root, max_sidecar_bytes) for e in entries]

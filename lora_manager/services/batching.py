"""Reading an import's changed entries in order, one batch at a time.

The parsers (``reading``) are loaded only for an entry no reader process has read already:
a re-import whose few changed entries were read on the other core during the walk (see
``prefetch``) never loads them here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from lora_manager.entries import Entry
from lora_manager.services.reader_process import die_with_parent
from lora_manager.services.results import EntryResult

# Fewer changed entries than this are read in this process. A forked reader spends its first
# ~60 ms faulting in the parent's memory, and results come back pickled: at 1,100 and at 3,000
# entries, two readers measured slower than this process alone; they pay once reading overlaps
# several batches of writing.
PARALLEL_THRESHOLD = 4000
POOL_CHUNK = 200
# A batch also ends once its sidecars hold this many bytes, and a reader's chunk at a quarter
# of it: parsed, a sidecar takes tens of times its size (a 9 MB Civitai JSON of 900,000 tags
# took 440 MB), so batches of 1,000 such files took gigabytes. Ordinary batches (2-60 KB a
# sidecar) stay whole.
BATCH_BYTES = 32 << 20


def read_batches(
    entries: Iterable[Entry],
    count: int,
    root: str,
    batch_size: int,
    max_sidecar_bytes: int,
    workers: int | None = None,
    ready: Callable[[Entry], EntryResult | None] | None = None,
) -> Iterator[list[EntryResult]]:
    """Read the ``count`` changed entries, in order, one batch at a time (in worker processes when it pays).

    Entries are taken from ``entries`` only as they are read, and at most two batches are in
    flight, so memory stays flat however large the library is. ``ready`` gives the result of
    an entry already read (see ``services.prefetch``), or None.
    """
    from collections import deque

    source = iter(entries)
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if count >= PARALLEL_THRESHOLD else 1

    def take(n: int, budget: int) -> tuple[list[Entry], int]:
        """The next ``n`` entries, or fewer once their sidecars hold ``budget`` bytes (at least one),
        and the bytes they hold."""
        taken: list[Entry] = []
        held = 0
        for entry in source:
            taken.append(entry)
            held += sum(f.size for f in entry.sidecars)
            if len(taken) >= n or held >= budget:
                break
        return taken, held

    def known(chunk: list[Entry]) -> list[EntryResult | None]:
        return [ready(e) for e in chunk] if ready else [None] * len(chunk)

    if workers <= 1:
        while chunk := take(batch_size, BATCH_BYTES)[0]:
            yield [
                r if r is not None else _read_here(e, root, max_sidecar_bytes)
                for e, r in zip(chunk, known(chunk), strict=True)
            ]
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) as pool:
        pending: deque[tuple[list[EntryResult | None], Future[list[EntryResult]] | None, int]] = deque()
        exhausted = False

        def submit() -> None:
            nonlocal exhausted
            chunk, size = take(POOL_CHUNK, BATCH_BYTES // 4)
            if not chunk:
                exhausted = True
                return
            have = known(chunk)
            missing = [e for e, r in zip(chunk, have, strict=True) if r is None]
            future = pool.submit(_read_chunk, missing, root, max_sidecar_bytes) if missing else None
            pending.append((have, future, size))

        # Read ahead up to two batches, so the readers keep going while this process writes one.
        ahead = max(2 * workers, 2 * batch_size // POOL_CHUNK)
        while not exhausted and len(pending) < ahead:
            submit()
        batch: list[EntryResult] = []
        held = 0
        while pending:
            have, future, size = pending.popleft()
            read = iter(future.result() if future else ())
            batch.extend(r if r is not None else next(read) for r in have)
            held += size
            if not exhausted:
                submit()
            if len(batch) >= batch_size or held >= BATCH_BYTES:
                yield batch
                batch, held = [], 0
        if batch:
            yield batch


def _read_here(entry: Entry, root: str, max_sidecar_bytes: int) -> EntryResult:
    """Read ``entry`` in this process, loading the parsers the first time."""
    from lora_manager.services.reading import read_entry

    return read_entry(entry, root, max_sidecar_bytes)


def _read_chunk(entries: list[Entry], root: str, max_sidecar_bytes: int) -> list[EntryResult]:
    from lora_manager.services.reading import read_entry

    return [read_entry(e, root, max_sidecar_bytes) for e in entries]

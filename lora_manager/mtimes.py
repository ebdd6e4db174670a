"""When a file's mtime can be trusted to show its next write: the "racy" files of size-and-mtime change detection.

A file system keeps mtimes at some granularity: 2 s on FAT, 1 s on ext3, HFS+ and many SMB
servers, 10 ms on exFAT, a clock tick (1-16 ms) on ext4 or NTFS. A file written again
within the tick of its last write keeps its mtime; if its size stays too, nothing a stat
shows changes. Had the import read it before that second write, it would keep the first
content for good, since unchanged files are never opened again (git's "racy clean" entries).

So a file is read only once its mtime's tick is over: a file written a moment ago is read
after a short wait (at most :data:`FINE_TICK_NS` for sub-second mtimes), and whatever is
written after the read gets a new mtime, which the next import sees. The tick is guessed
from the mtime itself: one of whole seconds comes from a coarse file system. An mtime
further ahead of this machine's clock than :data:`AHEAD_NS` is a clock set wrong (or a tool's
placeholder date), not a tick to wait out, and is read at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

SECOND_NS = 1_000_000_000
COARSE_TICK_NS = 2 * SECOND_NS  # an mtime of whole seconds: FAT keeps even seconds
FINE_TICK_NS = 50_000_000  # any other: above Linux's (≤ 10 ms), Windows' (15.6 ms) and exFAT's (10 ms) ticks
AHEAD_NS = SECOND_NS  # a network share's clock may run a little ahead of ours


def settled_at(mtime_ns: int, now_ns: int) -> int:
    """When a file whose mtime is ``mtime_ns`` can no longer be written without its mtime changing.

    ``now_ns`` (or earlier) when that is already so, or when the mtime is too far ahead to wait for.
    """
    tick = COARSE_TICK_NS if mtime_ns % SECOND_NS == 0 else FINE_TICK_NS
    end = mtime_ns + tick
    if end <= now_ns or mtime_ns > now_ns + AHEAD_NS:
        return now_ns
    return end


def settled_before() -> int:
    """An mtime at or before this is past any tick now: only later ones need :func:`wait_until_settled`."""
    return time.time_ns() - COARSE_TICK_NS


def wait_until_settled(mtimes: Iterable[int]) -> None:
    """Sleep until every one of ``mtimes`` is past its tick (see the module's docstring); at once, usually."""
    now = time.time_ns()
    recent = [m for m in mtimes if m > now - COARSE_TICK_NS]
    if not recent:  # the usual case: files written more than 2 s ago
        return
    until = max(settled_at(m, now) for m in recent)
    if until > now:
        time.sleep((until - now) / SECOND_NS)

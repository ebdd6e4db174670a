"""Reading changed entries on another core while the walk is still going.

A re-import after a few edits spends most of its time walking the library. The entries of
a directory looked at in part (see ``discovery.walk``'s ``on_partial``) almost surely
changed, so one reader process starts reading them as soon as the walk groups them; when
the plan is made, the importer takes the results of the entries it must read. A result is
used only for the very ``Entry`` object it was read for (same files, same grouping), so it
is what reading that entry later would give; anything the reader could not do is read as
before.

The CLI starts the reader as the command begins (:func:`start_early_reader`): a fresh
interpreter that loads the parsers on the other core while this process loads the catalog's
modules and walks, and that is told its root with the first entries. Without one (the second
root of a run, the library used from Python), the reader is started during the walk, as follows.
On Linux, while this process runs a single thread (a cron run: no progress bar), the reader
is a fork of it when the walk is nearly done: it has every module loaded and starts reading
at once, so it pays from a handful of entries on. A fork shares the walk's memory, though,
and each page the walk writes afterwards is copied: with most of a large library still to
walk, that cost more than the fresh interpreter's loading (a 1% edit at 100,000 models, in
interleaved pairs: 0.47 s over the unchanged run with a fork and 0.33 s with a fresh
interpreter in a busy spell of the test machine, 0.39 and 0.37 s in a quiet one; the fork
took 4,400 more page faults). So when the walk has
more than ``SPAWN_WHEN_LEFT`` seconds to go (from its pace so far over the folders the catalog
knows), and anywhere but Linux, the reader is a fresh interpreter, which loads the parsers in
~0.15 s on the other core and pays only for hundreds of entries. Either talks over two pipes;
it is not a worker of a process pool, whose result thread would unpickle results in this
process while the walk runs: here the walk only appends to a pipe it never waits on, and the
results stay bytes until the importer asks for them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from typing import IO, TYPE_CHECKING

from lora_manager.entries import Entry
from lora_manager.services.reader_process import FRAME, READY, Forked, can_fork, child_flags

if TYPE_CHECKING:
    from lora_manager.services.results import EntryResult

# Fewer changed entries than this are read in this process by a fresh-interpreter reader: for
# so few, sending entries and results and the walk's slowdown cost more than the reading saves
# (at 10,000 models, 110 edited entries were read faster here; at 100,000, 1,100 faster with
# a reader). That reader (loading the parsers takes ~0.15 s on the other core) starts with the
# first entry, so that it has loaded if they are many, and is let go unused if they are few.
START_AT = 256
CHUNK = 64  # entries sent to the reader at a time
# A forked reader has nothing to load, so it pays with fewer entries (110 edits at 10,000
# models: ~20 ms less than reading them here): it starts once this many wait, and is sent
# them in smaller chunks, so that it reads while the walk goes on.
FORK_START_AT = 8
FORK_CHUNK = 16
# An early reader (see :func:`start_early_reader`) is sent entries in chunks this large: it reads
# throughout the walk of a large library, where sixteen at a time cost the walk 15 ms more in
# sending (1,000 edits at 100,000 models: 63 sends instead of 32).
EARLY_CHUNK = 32
# In the walk's last ``FINAL_WINDOW`` seconds (estimated from its pace), entries go in chunks of
# at most ``FINAL_CHUNK``: what the reader is sent last, the importer waits for once the walk is
# done. With chunks of 32 throughout, a 10,000-model re-import after 110 edits waited ~8 ms there
# for the reader's last results; with 8 at the end, nothing.
FINAL_CHUNK = 8
FINAL_WINDOW = 0.05
# A walk with this many seconds left (estimated when the reader would be forked) gets a fresh
# interpreter instead: it has loaded and read well before the walk ends, and the walk's pages
# are not copied meanwhile.
SPAWN_WHEN_LEFT = 0.5
# Results held at most (a few KB each); entries past this are read the usual way.
LIMIT = 4000
_PIPE_BYTES = 1 << 20  # asked of the kernel for each pipe, so the walk rarely finds one full
# Result bytes read at a time. Not the pipe's size: ``os.read`` allocates what it is asked for,
# and a 1 MiB buffer came from ``mmap`` and went back on every read (a chunk's 100 KB of results
# cost 75 us and 26 page faults, 19 us and none at 64 KiB; a 100,000-model re-import after
# 1,000 edits took 2,000 more page faults in its walk, most of them there).
_READ_BYTES = 1 << 16
# How long the importer waits for a reader still loading (tests raise it: a loaded machine is slow).
BOOT_WAIT = 0.0
# The same for an early reader (:func:`start_early_reader`): it has been loading since the command
# began, so it is nearly there, and reading here would first load the same parsers.
EARLY_BOOT_WAIT = 0.5
# Seconds without a byte from a reader that has work before it is taken for stuck (stopped,
# hung on a dead mount) and let go: the importer reads the rest itself.
STALL = 60.0
_TICK = 0.25  # a wait looks at the clock and the import's stop flag this often
# Where the reader finds this package: its folder is put first on its path only when its
# path lacks it (an editable install, PYTHONPATH), so that an install finds its modules,
# the standard library's among them, where this process found them.
_CHILD_PATH = "import sys; p = sys.argv[1]; p in sys.path or sys.path.insert(0, p); "
# What the reader process runs (a test replaces it with a reader that dies).
_CHILD = _CHILD_PATH + "from lora_manager.services.reader_process import serve; serve()"


class Prefetcher:
    """Feeds entries to one reader process, and hands their results out by entry."""

    def __init__(
        self,
        root: str,
        max_sidecar_bytes: int,
        start_at: int | None = None,
        limit: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        fork: bool | None = None,
        early: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """``early``: a reader from :func:`start_early_reader`, used (told this root) instead of starting one."""
        self.root = root
        self._early = early
        self._was_early = early is not None
        self.fork = early is None and (can_fork() if fork is None else fork)
        self.should_stop = should_stop  # the import's stop flag (Ctrl-C): no waiting for the reader then
        self.max_sidecar_bytes = max_sidecar_bytes
        self._start_at = start_at
        # A fork or an early reader has (almost) nothing left to load: it pays from a few entries on.
        quick = self.fork or early is not None
        self.start_at = (FORK_START_AT if quick else START_AT) if start_at is None else start_at
        self.chunk = EARLY_CHUNK if early is not None else FORK_CHUNK if self.fork else CHUNK
        self.limit = LIMIT if limit is None else limit
        self.sent = 0  # entries given to the reader
        self.used = 0  # results handed out
        self._waiting: list[Entry] = []
        self._slots: dict[str, tuple[Entry, int, int]] = {}  # key -> (entry, chunk number, place in it)
        self._proc: subprocess.Popen[bytes] | Forked | None = None
        self._outbox = bytearray()  # framed chunks the pipe did not take yet
        self._inbox = bytearray()  # result bytes read, not yet decoded
        self._results: list[list[EntryResult] | None] = []  # by chunk number: None until decoded, and once all taken
        self._left: list[int] = []  # by chunk number: its results not yet taken
        self._done = 0  # chunks decoded
        self._ready = False  # the reader said it has loaded and reads
        self._killed: list[subprocess.Popen[bytes] | Forked] = []  # readers let go, not reaped yet
        self._broken = False  # no reader (it could not start, or died): the importer reads the rest
        self._folders: Collection[str] = ()  # the folders the catalog knows: how far the walk is
        self._sorted_folders: list[str] | None = None  # the same, sorted once a reader asks
        self._walk_started = 0.0

    def walk_starts(self, known_folders: Collection[str]) -> None:
        """The walk begins over a library whose catalog knows these folders (its pace tells how long it has left).

        They are sorted the first time a reader asks how far the walk is: an unchanged library's run never asks.
        """
        import time

        self._folders = known_folders
        self._sorted_folders = None
        self._walk_started = time.monotonic()

    def _walk_left(self, folder: str) -> float | None:
        """Seconds the walk has left, from its pace so far; None when it cannot tell (no folder known)."""
        import bisect
        import time

        if not self._folders:
            return None
        if self._sorted_folders is None:
            self._sorted_folders = sorted(self._folders)
        elapsed = time.monotonic() - self._walk_started
        done = bisect.bisect_right(self._sorted_folders, folder) / len(self._folders)
        return elapsed * (1 - done) / max(done, 1e-6)

    def _use_interpreter(self) -> None:
        self.fork = False
        self.start_at = START_AT if self._start_at is None else self._start_at
        self.chunk = CHUNK

    def add(self, entries: list[Entry]) -> None:
        """Entries that will probably be read: sent to the reader once there are enough of them.

        The reader starts with the first of them, so that it has loaded by then; if there
        are not enough in the end, it is let go unused.
        """
        room = self.limit - self.sent - len(self._waiting)
        if room <= 0 or self._broken or not entries:
            return
        self._waiting.extend(entries[:room])
        # A fresh interpreter starts with the first entry, so that it has loaded by the time
        # there are enough; a fork starts when there are, unless the walk has long to go.
        if self._proc is None:
            if self.fork and len(self._waiting) < self.start_at:
                return
            # A walk whose pace cannot be told (no folder known) is taken as nearly done: a fork.
            if self.fork and (self._walk_left(entries[0].directory) or 0.0) > SPAWN_WHEN_LEFT:
                self._use_interpreter()
            if not self._start():
                self._waiting = []
                return
        enough = self.sent + len(self._waiting) >= self.start_at
        if enough and len(self._waiting) >= (self._chunk_now(entries[0].directory) if self.sent else 1):
            self._send()

    def _chunk_now(self, folder: str) -> int:
        """How many waiting entries make a chunk, the walk being at ``folder``: fewer near its end."""
        if len(self._waiting) < FINAL_CHUNK or self.chunk <= FINAL_CHUNK or len(self._waiting) >= self.chunk:
            return self.chunk  # the answer does not depend on where the walk is: no clock read
        left = self._walk_left(folder)
        return FINAL_CHUNK if left is not None and left < FINAL_WINDOW else self.chunk

    def walk_done(self) -> None:
        """Send what is left; too few entries to be worth a reader are left to the importer.

        A reader let go here is killed and not waited for: its exit (~3 ms for an interpreter
        with the parsers loaded) would hold up every run with nothing to read; :meth:`close` reaps it.
        """
        if self.sent == 0:
            self._let_go(wait=False)
        elif self._waiting and not self._broken:
            self._send()
        self._waiting = []

    def take(self, entry: Entry) -> EntryResult | None:
        """The reader's result for ``entry``, or None when it has none (or failed): read it then."""
        slot = self._slots.pop(entry.key, None)
        if slot is None or slot[0] is not entry:
            return None
        _, number, place = slot
        chunk = self._chunk(number)
        if chunk is None:
            return None
        self.used += 1
        self._left[number] -= 1
        if not self._left[number]:
            self._results[number] = None  # every result handed out: not held to the end
        return chunk[place]

    def close(self) -> None:
        """Stop the reader; results not taken are dropped."""
        self._slots.clear()
        self._waiting = []
        self._results = []
        self._let_go()
        while self._killed:
            _stop(self._killed.pop())

    def _let_go(self, wait: bool = True) -> None:
        """Stop the reader process, if there is one (an early reader not used yet too); without
        ``wait``, it is killed and left for :meth:`close` to reap."""
        for proc in (self._proc, self._early):
            if proc is not None:
                _stop(proc, wait)
                if not wait:
                    self._killed.append(proc)
        self._proc = self._early = None

    def _send(self) -> None:
        """Frame what waits in chunks of at most ``CHUNK``: results come back, and are let go, a chunk at a time."""
        waiting, self._waiting = self._waiting, []
        if self._proc is None:
            return
        for start in range(0, len(waiting), self.chunk):
            chunk = waiting[start : start + self.chunk]
            data = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
            self._outbox += FRAME.pack(len(data)) + data
            number = len(self._results)
            self._results.append(None)
            self._left.append(len(chunk))
            self.sent += len(chunk)
            for i, e in enumerate(chunk):
                self._slots[e.key] = (e, number, i)
        self._pump()

    def _start(self) -> bool:
        """Start the reader; False (and the importer reads everything) when no process can be had."""
        if self._early is not None:
            self._proc, self._early = self._early, None
            told = pickle.dumps((self.root, self.max_sidecar_bytes), pickle.HIGHEST_PROTOCOL)
            self._outbox += FRAME.pack(len(told)) + told
        elif self.fork:
            # Threads may have started since this prefetcher was made: then no fork, and no reader.
            self._proc = Forked.start(self.root, self.max_sidecar_bytes) if can_fork() else None
        else:
            self._proc = _spawn(self.root, self.max_sidecar_bytes)
        if self._proc is None:
            self._broken = True
            return False
        assert self._proc.stdin is not None and self._proc.stdout is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            _widen(pipe)
            os.set_blocking(pipe.fileno(), False)
        return True

    def _pump(self) -> None:
        """Write what the pipe takes and read what results wait, never blocking the walk."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return
        try:
            while self._outbox:
                written = os.write(proc.stdin.fileno(), self._outbox)
                del self._outbox[:written]
        except BlockingIOError:
            pass
        except OSError:  # the reader is gone
            self._fail()
            return
        if not self._drain():
            self._end_of_stream()

    def _end_of_stream(self) -> None:
        """The reader closed its output (done, or died): what it sent in full is used, the rest read here.

        Its last results and its end often come in one read: they are decoded before it is let go.
        """
        while self._decode_one():
            pass
        self._fail()

    def _drain(self) -> bool:
        """Read the result bytes there are, without waiting. False at the end of the stream (or a reader
        that did not start with the ready byte)."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return False
        try:
            while True:
                data = os.read(proc.stdout.fileno(), _READ_BYTES)
                if not data:
                    return False
                if not self._ready:
                    self._ready, data = data[:1] == READY, data[1:]
                    if not self._ready:
                        return False
                self._inbox += data
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _wait(self, seconds: float, send: bool = False) -> bool:
        """Wait until the reader has written (or, with ``send``, can be written to); False when
        ``seconds`` pass first or the import is stopping."""
        import selectors  # poll/epoll: no limit on descriptor numbers, unlike select()
        import time

        proc = self._proc
        if proc is None or proc.stdout is None or proc.stdin is None:
            return False
        deadline = time.monotonic() + seconds
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if send and not proc.stdin.closed:
                selector.register(proc.stdin, selectors.EVENT_WRITE)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or self.should_stop():
                    return False
                if selector.select(min(left, _TICK)):
                    return True

    def _finish_sending(self) -> None:
        """Send the rest (waiting as needed, reading results meanwhile) and close the reader's input."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None or proc.stdin.closed:
            return
        while self._outbox and not self._broken:
            # A reader blocked on a full result pipe reads no more: results are read meanwhile.
            if not self._wait(STALL, send=True):
                self._fail()
                return
            self._pump()
        try:
            proc.stdin.close()
        except OSError:
            self._fail()

    def _chunk(self, number: int) -> list[EntryResult] | None:
        """The results of chunk ``number``, decoding (and waiting for) those before it; None if the reader failed.

        A reader still loading when the importer first asks is let go (its entries are read
        here): it would be slower than reading them. Once it reads, it reads as fast as this
        process would, and ahead of it.
        """
        if not self._ready and not self._broken:
            self._await_ready()
        self._finish_sending()
        while not self._broken and self._done <= number:
            if self._decode_one():
                continue
            if not self._wait(STALL):  # stuck, or the import is stopping
                self._fail()
            elif not self._drain():
                self._end_of_stream()
        return self._results[number] if number < self._done else None

    def _await_ready(self) -> None:
        """Take the reader's word that it reads, waiting at most ``BOOT_WAIT`` seconds for it (an early
        reader ``EARLY_BOOT_WAIT``); else let it go."""
        import time

        deadline = time.monotonic() + (max(BOOT_WAIT, EARLY_BOOT_WAIT) if self._was_early else BOOT_WAIT)
        while self._drain() and not self._ready:
            left = deadline - time.monotonic()
            if left <= 0 or not self._wait(left):
                break
        if not self._ready:
            self._fail()

    def _decode_one(self) -> bool:
        """Decode the next complete message in the inbox; False when there is none yet.

        Only a reader that said it is ready puts bytes there (see :meth:`_drain`).
        """
        if len(self._inbox) < FRAME.size:
            return False
        (size,) = FRAME.unpack_from(self._inbox)
        if len(self._inbox) < FRAME.size + size:
            return False
        data = bytes(self._inbox[FRAME.size : FRAME.size + size])
        del self._inbox[: FRAME.size + size]
        try:
            results = pickle.loads(data)
        except Exception:
            self._fail()
            return False
        if not isinstance(results, list) or len(results) != self._left[self._done]:
            self._fail()  # not the answer to what was sent (a reader of another version?)
            return False
        self._results[self._done] = results
        self._done += 1
        return True

    def _fail(self) -> None:
        """The reader broke: what it did not return is read by the importer."""
        self._broken = True
        self._outbox.clear()
        self._slots = {k: s for k, s in self._slots.items() if s[1] < self._done}
        if self._done == 0:  # nothing to take from it: stop it now
            self._let_go()


def _spawn(root: str | None, max_bytes: int | None) -> subprocess.Popen[bytes] | None:
    """A fresh interpreter running ``_CHILD`` (an early reader's root comes later, in its first frame)."""
    import lora_manager

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(lora_manager.__file__)))
    argv = [sys.executable, *child_flags(sys.flags), "-c", _CHILD, package_parent]
    if root is not None and max_bytes is not None:
        argv += [root, str(max_bytes)]
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _widen(pipe: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (OSError, ImportError):
        pass  # the default size works, with more waits


def _stop(proc: subprocess.Popen[bytes] | Forked, wait: bool = True) -> None:
    for pipe in (proc.stdin, proc.stdout):
        try:
            if pipe is not None:
                pipe.close()
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    if wait:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def prefetcher_for(
    root: str,
    max_sidecar_bytes: int,
    workers: int | None,
    should_stop: Callable[[], bool] = lambda: False,
    early: subprocess.Popen[bytes] | None = None,
) -> Prefetcher | None:
    """A prefetcher when there is a second core to read on (and the caller did not ask for one process).

    POSIX only: the reader's pipes are non-blocking and waited on with ``selectors``. ``early``:
    see :func:`start_early_reader`; the prefetcher stops it when done with it.
    """
    if not _reads_aside(workers):
        return None
    return Prefetcher(root, max_sidecar_bytes, should_stop=should_stop, early=early)


def _reads_aside(workers: int | None) -> bool:
    """Whether an import reads on a second core: there is one, the caller allows it, and the platform can."""
    allowed = workers != 1 and (workers is not None or (os.cpu_count() or 1) >= 2)
    return allowed and bool(sys.executable) and os.name == "posix"


def start_early_reader(workers: int | None = None) -> subprocess.Popen[bytes] | None:
    """A reader interpreter started now, before the command loads the catalog's modules, for :func:`prefetcher_for`.

    A reader started when the walk finds the first changed entry loads its parsers (~0.15 s)
    while the walk goes on, so for a library walked in less than that (10,000 models), it was
    not ready in time, and a fork of this process was used instead, whose pages this process then
    copied as it wrote them (4,600 page faults more than an unchanged run, at 10,000 models).
    Started with the command, the reader has loaded by the time the walk ends, and costs this
    process one spawn: a 1% edit at 10,000 models measured 56 -> 38 ms over the unchanged run
    (medians of 12 interleaved pairs); at 100,000, no change. None where no reader would be used.
    The caller stops it (:func:`stop_reader`) if no prefetcher took it.
    """
    return _spawn(None, None) if _reads_aside(workers) else None


def stop_reader(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a reader from :func:`start_early_reader` (one already stopped, or None, is left as it is)."""
    if proc is not None:
        _stop(proc)


@contextlib.contextmanager
def early_reader(workers: int | None = None) -> Iterator[subprocess.Popen[bytes] | None]:
    """:func:`start_early_reader`, stopped on the way out (a run that failed before using it, or did not)."""
    reader = start_early_reader(workers)
    try:
        yield reader
    finally:
        stop_reader(reader)

"""The reader process that reads changed entries on another core during the walk (see ``prefetch``).

It reads framed chunks of pickled entries from one pipe and answers each with the framed,
pickled list of their results on the other, having first said :data:`READY`. It is either a
fresh interpreter running :func:`serve`, or (on Linux, while the importer runs one thread)
a fork of the importer (:class:`Forked`), which has every module loaded and reads at once.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
from typing import IO, Any

FRAME = struct.Struct("<I")  # each message: its length, then a pickle
READY = b"R"  # the reader's first byte: it has loaded its modules


def child_flags(flags: Any) -> list[str]:
    """The reader's interpreter options: ``-P`` (nothing from the working directory, which may
    be the library, is importable), and this interpreter's isolation (``-I``, ``-E``, ``-s``),
    so that the reader loads nothing this process would not."""
    if flags.isolated:
        return ["-P", "-I"]
    return ["-P", *(["-E"] if flags.ignore_environment else []), *(["-s"] if flags.no_user_site else [])]


def die_with_parent() -> None:
    """A reader process ends when the import does, even if the import was SIGKILLed (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # no prctl (not Linux), no ctypes (a Python built without libffi): no such guard
        pass


def _fd_limit() -> int:
    """One past the highest descriptor this process can hold (bounded: a loop may close each)."""
    try:
        return min(max(os.sysconf("SC_OPEN_MAX"), 256), 1 << 20)
    except (OSError, ValueError):
        return 1 << 16


def serve() -> None:
    """The reader process: read each chunk of entries from stdin, write its results to stdout, until EOF."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to answer: it stops us
    die_with_parent()
    # An early reader (see ``prefetch.start_early_reader``) starts before its root is known: told in a first frame.
    root, max_bytes = (sys.argv[2], int(sys.argv[3])) if len(sys.argv) > 3 else (None, None)
    # The results go to a private copy of stdout; anything else printed goes nowhere.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    _serve(sys.stdin.buffer, sink, root, max_bytes)
    os._exit(0)  # nothing to tear down


def _serve(source: IO[bytes], sink: IO[bytes], root: str | None, max_bytes: int | None, forked: bool = False) -> None:
    """Say ready, then answer each framed chunk of entries with the framed list of their results.

    Without ``root`` (an early reader), the first frame is ``(root, max_bytes)``.

    A fresh interpreter says it once it has loaded the parsers (~0.15 s with its start): the
    importer lets go of a reader not ready when it first asks, and reads itself. A fork says it
    at once: loading the parsers takes it ~15 ms, which the importer would spend loading them
    too, and more by reading besides.
    """
    if forked:
        sink.write(READY)
        sink.flush()
    from lora_manager.services.reading import read_entry

    if not forked:
        sink.write(READY)
        sink.flush()
    if root is None or max_bytes is None:
        told = _frame(source)
        if told is None:
            return
        root, max_bytes = pickle.loads(told)
    while True:
        chunk = _frame(source)
        if chunk is None:
            break
        entries: list[Any] = pickle.loads(chunk)
        data = pickle.dumps([read_entry(e, root, max_bytes) for e in entries], pickle.HIGHEST_PROTOCOL)
        sink.write(FRAME.pack(len(data)) + data)
        sink.flush()


def _frame(source: IO[bytes]) -> bytes | None:
    """The next framed message, None at the end of the input."""
    head = source.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    return source.read(size)


def can_fork() -> bool:
    """Whether the reader may be a fork of this process: on Linux, and only while it runs one thread.

    A fork copies only the thread that forks; a lock another thread held (a progress bar's
    refresh thread, say) would stay held in the copy for good. Elsewhere (macOS frameworks are
    not fork-safe) the reader is a fresh interpreter.
    """
    import threading

    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


class Forked:
    """A reader forked from this process, with the part of ``Popen`` the prefetcher uses.

    It has every module this process loaded and no interpreter to start, so it reads from
    its first entry on. It never returns into the importer's code: whatever happens in it
    ends in ``os._exit``, so the catalog connection it inherited is never used or closed
    there (closing an SQLite connection can checkpoint the catalog under the importer's feet).
    """

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    @classmethod
    def start(cls, root: str, max_bytes: int) -> Forked | None:
        # The reader loads the parsers itself, on the other core: this process may never need
        # them (the results it takes need only ``services.results``).
        try:
            to_child, from_parent = os.pipe()
            to_parent, from_child = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            for fd in (to_child, from_parent, to_parent, from_child):
                os.close(fd)
            return None
        if pid == 0:  # the reader
            try:
                os.close(from_parent)
                os.close(to_parent)
                _forked_reader(to_child, from_child, root, max_bytes)
            finally:
                os._exit(0)
        os.close(to_child)
        os.close(from_child)
        return cls(pid, os.fdopen(from_parent, "wb", buffering=0), os.fdopen(to_parent, "rb", buffering=0))

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        import time

        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"reader {self.pid}", timeout)
            time.sleep(0.001)
        return self.returncode  # type: ignore[return-value]


def _forked_reader(source_fd: int, sink_fd: int, root: str, max_bytes: int) -> None:
    """The forked reader's life: quiet, deaf to Ctrl-C, gone with its parent, holding none of its files.

    Every descriptor but its two pipes is closed: a copy of the import lock's would keep the
    ``flock`` held for as long as the reader lives (the catalog's own files hold no lock of
    this process's to lose by closing them).
    """
    import fcntl
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN if sig == signal.SIGINT else signal.SIG_DFL)
    die_with_parent()
    # Above the standard streams (a library caller may have closed them, and the pipes taken their numbers).
    source_fd, sink_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in (source_fd, sink_fd))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing it might print reaches the user's terminal
        os.dup2(devnull, fd)
    low, high = sorted((source_fd, sink_fd))
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, _fd_limit())
    with os.fdopen(source_fd, "rb") as source, os.fdopen(sink_fd, "wb") as sink:
        _serve(source, sink, root, max_bytes, forked=True)

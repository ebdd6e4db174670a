"""Paths of the library: the root as given, whether a path stays inside it, names that are not UTF-8.

Every file the importer reads is checked with :func:`is_inside`, so a link cannot lead it out
of the library, and opened with :func:`open_regular`, so a FIFO cannot stop it; names the file
system gives that are not UTF-8 are reported, never stored or printed as they are.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import cast

from lora_manager.errors import LoraError


def resolve_root(path: str | os.PathLike[str]) -> str:
    """The absolute, link-resolved root, or a usage error naming what is wrong."""
    root = Path(path).expanduser()
    if not is_utf8(str(root)):
        raise LoraError(
            f"{printable(str(root))}: the folder's path is not valid UTF-8; rename it or import a folder below"
        )
    if not root.exists():
        raise LoraError(f"{root}: no such directory (is the drive mounted?)")
    if not root.is_dir():
        raise LoraError(f"{root}: not a directory")
    return os.path.realpath(root)


def is_inside(path: str, root: str) -> bool:
    """True when the real path of ``path`` lies under ``root`` (itself a real path)."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes the file system gave that are no UTF-8 (surrogate escapes)
        return False
    return True


def printable(path: str) -> str:
    """``path`` with undecodable bytes shown as U+FFFD, so that it can be stored and printed."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def open_regular(path: str, buffering: int = -1) -> io.BufferedReader | io.FileIO:
    """``open(path, "rb")`` that never waits: anything but a regular file raises ``OSError``.

    The walk groups regular files only, but a file can be swapped for a FIFO before it is
    read, and opening a FIFO for reading waits for a writer, forever. Opened non-blocking
    (which a FIFO allows at once) and checked on the open descriptor, nothing can slip in
    between the check and the read.
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if nonblock:
            os.set_blocking(fd, True)
        return cast("io.BufferedReader | io.FileIO", os.fdopen(fd, "rb", buffering=buffering))
    except BaseException:
        os.close(fd)
        raise

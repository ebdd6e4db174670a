"""Paths of the library: the root as given, whether a path stays inside it, names that are not UTF-8.

Every file the importer reads is checked with :func:`is_inside`, so a link cannot lead it out
of the library, and opened with :func:`open_regular`, so a FIFO cannot stop it and, given the
root, a file swapped for a link out after that check is refused on the open descriptor; names
the file system gives that are not UTF-8 are reported, never stored or printed as they are.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Sequence
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
    try:
        st = root.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise LoraError(f"{root}: no such directory (is the drive mounted?)") from None
    except OSError as exc:  # a name over NAME_MAX, a loop of links, a folder that may not be searched
        raise LoraError(f"{root}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LoraError(f"{root}: not a directory")
    return os.path.realpath(root)


def is_inside(path: str, root: str) -> bool:
    """True when the real path of ``path`` lies under ``root`` (itself a real path)."""
    return lies_under(os.path.realpath(path), root)


def directory_is_inside(directory: str, root: str) -> bool:
    """:func:`is_inside` for a directory, at a cost that does not grow with its depth (Linux).

    ``realpath`` resolves one component at a time, each ``lstat`` walking the path from the top:
    for every folder of a 2,000-deep chain that cost minutes. Opened, the folder is named by the
    kernel in ``/proc/self/fd`` in one ``readlink`` (:func:`_opened_path`, as for a file :func:`open_regular`
    opens). Elsewhere, or when it cannot be opened, ``realpath`` answers, as for any path.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_PATH", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return is_inside(directory, root)
    try:
        real = _opened_path(fd, os.fstat(fd), directory)
    except OSError:
        real = None
    finally:
        os.close(fd)
    return lies_under(real, root) if real is not None else is_inside(directory, root)


def library_of(path: str, roots: Sequence[str]) -> str | None:
    """The outermost of ``roots`` (imported folders, shortest first) that ``path`` lies under, or None."""
    return next((root for root in roots if lies_under(path, root)), None)


def lies_under(real: str, root: str) -> bool:
    """True when the real path ``real`` is ``root`` or lies below it (a string test: nothing is resolved)."""
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


LINK_OUT = "link leads out of the library; not followed"  # the message of every such refusal


class LeadsOut(OSError):
    """The file opened lies outside the folder it had to stay in: reached through a link out."""


class NotRegular(OSError):
    """What :func:`open_regular` opened is no regular file (a FIFO, a device, a folder): to the walk, no file."""


def open_regular(path: str, buffering: int = -1, *, inside: str | None = None) -> io.BufferedReader | io.FileIO:
    """``open(path, "rb")`` that never waits: anything but a regular file raises ``OSError``.

    The walk groups regular files only, but a file can be swapped for a FIFO before it is
    read, and opening a FIFO for reading waits for a writer, forever. Opened non-blocking
    (which a FIFO allows at once) and checked on the open descriptor, nothing can slip in
    between the check and the read.

    With ``inside`` (a real path, as :func:`resolve_root` gives), the file the descriptor
    holds must lie under it, by the same rule as :func:`is_inside`: a file swapped for a
    link out of the library after the walk checked it raises :class:`LeadsOut` unread.
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)
    fd = _open_leaving_atime(path, os.O_RDONLY | nonblock | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.EINVAL, "not a regular file", path)
        if inside is not None and not lies_under(_opened_path(fd, st, path) or "", inside):
            raise LeadsOut(errno.EXDEV, "leads out of the library; not followed", path)
        if nonblock:
            os.set_blocking(fd, True)
        return cast("io.BufferedReader | io.FileIO", os.fdopen(fd, "rb", buffering=buffering))
    except BaseException:
        os.close(fd)
        raise


# Linux's O_NOATIME (0 elsewhere): the read leaves the file's access time as it was. Cleared for
# the rest of the process once the kernel refuses it (only a file's owner may ask it).
_noatime = getattr(os, "O_NOATIME", 0)


def _open_leaving_atime(path: str, flags: int) -> int:
    """``os.open`` that leaves the file's access time alone where the kernel allows it.

    The import only reads the library, and should leave no trace there, but the first read of a
    file after it changed updates its access time (``relatime``): a metadata write per edited
    sidecar, journalled by the file system while the walk stats its neighbours. After 1,100
    edits at 100,000 models, the re-import that made those writes ran 25-63 ms slower than a
    second one that found them made; opening with the flag, 5 ms (interleaved runs; see
    BENCHMARKS.md). A file of another owner refuses the flag (``EPERM``; root may ask it of any
    file): it is opened as usual, and so is every file after it, so a library of another user's
    files costs one refused open a process, not one a file.
    """
    global _noatime
    if _noatime:
        try:
            return os.open(path, flags | _noatime)
        except PermissionError as exc:
            if exc.errno != errno.EPERM:  # EACCES: unreadable, with or without the flag
                raise
            _noatime = 0
    return os.open(path, flags)


def _opened_path(fd: int, st: os.stat_result, path: str) -> str | None:
    """The real path of the file open as ``fd``, or None when it cannot be proven.

    Linux names it in ``/proc/self/fd`` (one ``readlink``, ~2 µs; a file deleted since shows
    its last path plus `` (deleted)``, which keeps the prefix). Elsewhere the path is
    resolved again after the open, and counts only if it names the very file the descriptor
    holds (device and inode), so a swap between the open and the resolve is caught.
    """
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
    else:
        if real.startswith(os.sep):
            return real
    real = os.path.realpath(path)
    try:
        named = os.stat(real)
    except OSError:
        return None
    return real if (named.st_dev, named.st_ino) == (st.st_dev, st.st_ino) else None

"""A directory's files as the catalog remembers them, and which of them changed since.

A directory's *fingerprint* is a digest of its files' names, sizes, mtimes and which are
links; while it matches the stored one, nothing in the directory is looked at. When it does
not, the directory's stored *files record* says which files changed, so that only their
entries are grouped again. A files record (:func:`files_record`) is the digest of the names
followed by each file's size, ``st_mtime_ns`` and link flag as three 64-bit integers, in name
order: the very bytes the fingerprint hashed, so it costs almost nothing to make, and two
records of the same names compare 24 bytes a file (:func:`changed_files`). When the names
differ (a file added, removed or renamed), the directory's names, kept apart and compressed
(:func:`pack_names`, written only when they change), pair the files by name instead
(:func:`changed_names`): a preview or a sidecar added or removed still means a look at its
own entry alone. Nothing here knows what the files are.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from array import array
from typing import Protocol

# A file of a directory: (name, its DirEntry, whether it is a link, its stat or None if stat failed).
Listed = tuple[str, "os.DirEntry[str]", bool, "os.stat_result | None"]

_NAMES_DIGEST = 16  # bytes of the names' digest at the start of a files record
RECORD = 24  # bytes a file: size, mtime_ns, is_link as machine int64 (-1, -1 when stat failed)
_BLOCK = 16 * RECORD  # compared at once before looking at single files


def snapshot(seed: str, listing: list[Listed]) -> tuple[str, bytes, bytes]:
    """A directory's fingerprint, and its files' names and numbers as the fingerprint hashed them.

    Called for every directory of the library on every import, so the numbers go into an
    array of machine integers rather than through string formatting.
    """
    names = "\0".join([name for name, _, _, _ in listing]).encode("utf-8", "surrogateescape")
    values = [v for _, _, link, st in listing for v in ((st.st_size, st.st_mtime_ns, link) if st else (-1, -1, link))]
    try:
        numbers = array("q", values).tobytes()
    except OverflowError:  # a file dated after 2262: its mtime in ns is past 64 bits
        numbers = array("q", [int64(v) for v in values]).tobytes()
    digest = hashlib.blake2b(seed.encode("utf-8", "surrogateescape") + b"\0" + names, digest_size=16)
    digest.update(numbers)
    return digest.hexdigest(), names, numbers


def fingerprint(seed: str, listing: list[Listed]) -> str:
    """A digest of a directory's files: names, sizes, mtimes and which are links (``seed`` too)."""
    return snapshot(seed, listing)[0]


def files_record(names: bytes, numbers: bytes) -> bytes:
    """What the catalog keeps of a directory's files (see the module's docstring), from :func:`snapshot`."""
    return hashlib.blake2b(names, digest_size=_NAMES_DIGEST).digest() + numbers


class StoredFiles(Protocol):
    """What the catalog remembers of a directory's files at the last import (None: nothing)."""

    def record(self, directory: str) -> bytes | None: ...

    def names(self, directory: str) -> bytes | None: ...


def pack_names(names: bytes) -> bytes:
    """A directory's file names (as :func:`snapshot` gives them) as the catalog keeps them: a quarter of the size."""
    return zlib.compress(names, 1)


def changed_names(before: bytes, packed_names: bytes, now: bytes, names: bytes) -> set[str] | None:
    """The names of the files added, removed or changed between two records of different names.

    ``packed_names`` is what :func:`pack_names` made of ``before``'s names, ``names`` the names
    ``now`` was made of. None when the stored names are not those of ``before`` (or unreadable).
    """
    try:
        old = zlib.decompress(packed_names)
    except zlib.error:
        return None
    old_names, new_names = (old.split(b"\0") if old else []), (names.split(b"\0") if names else [])
    if files_record(old, b"") != before[:_NAMES_DIGEST] or len(before) != _NAMES_DIGEST + RECORD * len(old_names):
        return None
    was = {n: before[_NAMES_DIGEST + RECORD * i : _NAMES_DIGEST + RECORD * (i + 1)] for i, n in enumerate(old_names)}
    is_ = {n: now[_NAMES_DIGEST + RECORD * i : _NAMES_DIGEST + RECORD * (i + 1)] for i, n in enumerate(new_names)}
    changed = (was.keys() ^ is_.keys()) | {n for n in was.keys() & is_.keys() if was[n] != is_[n]}
    return {n.decode("utf-8", "surrogateescape") for n in changed}


def same_names(before: bytes, now: bytes) -> bool:
    """Whether two files records are of the same names (in the same order)."""
    return before[:_NAMES_DIGEST] == now[:_NAMES_DIGEST]


def changed_files(before: bytes, now: bytes) -> list[int] | None:
    """The positions (in name order) of the files whose size, mtime or link changed between two records.

    None when the records are not of the same names, or ``before`` is not a record: then they
    cannot tell, and the whole directory must be looked at. A directory where a few files
    changed differs in a few places: blocks of files are compared at once (C-level compares),
    and single files only inside a block that differs.
    """
    if len(before) != len(now) or (len(now) - _NAMES_DIGEST) % RECORD or before[:_NAMES_DIGEST] != now[:_NAMES_DIGEST]:
        return None
    changed: list[int] = []
    for start in range(_NAMES_DIGEST, len(now), _BLOCK):
        end = start + _BLOCK
        if before[start:end] == now[start:end]:
            continue
        for at in range(start, min(end, len(now)), RECORD):
            if before[at : at + RECORD] != now[at : at + RECORD]:
                changed.append((at - _NAMES_DIGEST) // RECORD)
    return changed


def int64(value: int) -> int:
    """``value`` wrapped into a signed 64-bit integer, as the catalog stores file times.

    ``st_mtime_ns`` passes 2**63 for a file dated after the year 2262 (a clock set wrong, a
    tool's placeholder date): wrapped, it still changes when the file does.
    """
    return value if -(2**63) <= value < 2**63 else (value + 2**63) % 2**64 - 2**63

"""A directory's files as the catalog remembers them, and which of them changed since.

A directory's *fingerprint* is a digest of its files' names, sizes, mtimes and which are
links; while it matches the stored one, nothing in the directory is looked at. When it does
not, the directory's stored *files record* says which files changed, so that only their
entries are grouped again. A files record (:func:`files_record`) is the digest of the names
followed by each file's size, ``st_mtime_ns`` and link flag as three 64-bit integers, in name
order: the very bytes the fingerprint hashed, so it costs almost nothing to make, and two
records of the same names compare 24 bytes a file. When the names differ (a file added,
removed or renamed) the records cannot tell which files changed, and the caller looks at
the whole directory. Nothing here knows what the files are.
"""

from __future__ import annotations

import hashlib
import os
from array import array

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

"""A directory's files as the catalog remembers them, and which of them changed since.

A directory's *fingerprint* is a digest of its files' names, sizes, mtimes and which are
links; while it matches the stored one, nothing in the directory is looked at. When it does
not, the directory's stored *files record* says which files changed, so that only their
entries are grouped again. A files record (:func:`files_record`) is a digest of the names (and
the ignore rules) followed by one 64-bit value a file, in name order: its mtime XORed with its
size and its link flag, each of those times a constant, so that a change of a few bits in one
cannot cancel the same bits changing in another. It is made out of the very numbers the
fingerprint hashed, whole arrays at once (a few microseconds a directory), and two records of
the same names compare 8 bytes a file (:func:`changed_files`). Eight bytes rather than the 24 of
the three numbers, because a re-import after scattered edits rewrites the record of every
directory where a file changed: at 24 bytes a file (with the names, since moved to a table of
their own), 1,000 edits in a 100,000-model library rewrote 1,106 pages of folder records out
of the 3,630 its commit wrote; 567 now. A change that leaves a file's value as it was is not
seen in the record, but the fingerprint, which hashes the numbers themselves, still differs:
a record in which no file differs makes the walk look at the whole directory. When the names
differ (a file added, removed or renamed), the directory's names, kept apart and compressed
(:func:`pack_names`, written only when they change), pair the files by name instead
(:func:`changed_names`): a preview or a sidecar added or removed still means a look at its
own entry alone. The catalog keeps a record in full apart, and in the directory's row only
what differs from it (:func:`patch_for`): the 566 folder pages of such a re-import were 147
after ten rounds of edits (71 of rows, 76 of records stored in full again, with the names
then). Nothing here knows what the files are.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from array import array
from typing import Protocol

# A file of a directory: (name, its DirEntry, whether it is a link, its stat or None if stat failed).
Listed = tuple[str, "os.DirEntry[str]", bool, "os.stat_result | None"]

_NAMES_DIGEST = 16  # bytes of the names' digest at the start of a files record
_NUMBERS = 3  # numbers a file in a snapshot: size, mtime_ns, is_link as machine int64 (-1, -1 when stat failed)
RECORD = 8  # bytes a file in a files record: those three mixed (see :func:`files_record`)
_SIZE_FACTOR = 0x9E3779B1  # odd: 2**32 / the golden ratio
_LINK_FACTOR = 0x5851F42D4C957F2D  # a link flag (0 or 1) as 63 bits that no nanosecond or few-byte change matches
_BLOCK = 16 * RECORD  # compared at once before looking at single files
# Files of a directory whose values may differ from its full record before the record is stored
# in full again (see :func:`patch_for`): a patch of 16 is 192 bytes.
PATCH_FILES = 16
_PATCH_ITEM = struct.Struct(f"<I{RECORD}s")  # a file's position in a patch, and its value


def snapshot(seed: str, listing: list[Listed]) -> tuple[str, bytes, bytes, bytes]:
    """A directory's fingerprint; its files' names and numbers as the fingerprint hashed them; and
    the digest of ``seed`` and the names alone (what a files record starts with).

    Called for every directory of the library on every import, so the numbers go into an
    array of machine integers rather than through string formatting, and the names are hashed
    once for both digests (the hash's state is copied before the numbers go in).
    """
    names = "\0".join([name for name, _, _, _ in listing]).encode("utf-8", "surrogateescape")
    values = [v for _, _, link, st in listing for v in ((st.st_size, st.st_mtime_ns, link) if st else (-1, -1, link))]
    try:
        numbers = array("q", values).tobytes()
    except OverflowError:  # a file dated after 2262: its mtime in ns is past 64 bits
        numbers = array("q", [int64(v) for v in values]).tobytes()
    named = _named(seed, names)
    digest = named.copy()
    digest.update(numbers)
    return digest.hexdigest(), names, numbers, named.digest()


def _named(seed: str, names: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(seed.encode("utf-8", "surrogateescape") + b"\0" + names, digest_size=_NAMES_DIGEST)


def names_digest(seed: str, names: bytes) -> bytes:
    """The digest a files record of these names starts with (:func:`snapshot` gives it too), ``seed`` included:
    new ignore rules make the records of every directory differ in their names, and so looked at in full."""
    return _named(seed, names).digest()


def fingerprint(seed: str, listing: list[Listed]) -> str:
    """A digest of a directory's files: names, sizes, mtimes and which are links (``seed`` too)."""
    return snapshot(seed, listing)[0]


def files_record(named: bytes, numbers: bytes) -> bytes:
    """What the catalog keeps of a directory's files (see the module's docstring), from :func:`snapshot`'s
    names digest and numbers.

    Each column of the numbers (every size, every mtime, every link flag) is read as one big
    integer: XORing them is XORing each file's values, without a Python step per file. The
    product of the sizes carries into the next file's value when a size is 4 GiB or more (or
    -1, a failed stat): the same carry every run, so at worst that file's neighbour is looked
    at again when it changes.
    """
    values = array("q")
    values.frombytes(numbers)
    length = len(values) // _NUMBERS * RECORD
    mixed = int.from_bytes(values[0::_NUMBERS], "little") * _SIZE_FACTOR
    mixed ^= int.from_bytes(values[1::_NUMBERS], "little")
    mixed ^= int.from_bytes(values[2::_NUMBERS], "little") * _LINK_FACTOR
    return named + mixed.to_bytes(length + RECORD, "little")[:length]


class StoredFiles(Protocol):
    """What the catalog remembers of a directory's files at the last import (None: nothing).

    ``stored`` gives ``(patch, base)``: the record the catalog keeps in full, and what the
    files record was at the last import as a patch of it (see :func:`patch_for`; ``b""``: the
    base itself; None: no record, the directory is looked at in full). :func:`compare` reads them.
    """

    def stored(self, directory: str) -> tuple[bytes | None, bytes | None]: ...

    def names(self, directory: str) -> bytes | None: ...


def compare(patch: bytes | None, base: bytes | None, now: bytes) -> tuple[bytes | None, list[int] | None, bytes | None]:
    """A changed directory's stored record against ``now``, from what :meth:`StoredFiles.stored` gives.

    Returns the record as the last import stored it (``base`` patched; None when there is
    none, or it is malformed), the positions of the files whose values differ from it (as
    :func:`changed_files` gives them; None when the names differ or it cannot tell), and
    ``now`` as a patch of ``base`` (:func:`patch_for`). One comparison with ``base`` answers
    both of the last: where the stored record was a patch, only the patched files are
    compared again (a second comparison of the whole record, for each of the ~650 folders a
    re-import after 1,100 edits of 100,000 models finds changed, cost ~10 us each).
    """
    if base is None:
        return None, None, None
    places = changed_files(base, now)
    new_patch = _patch_of(places, now)
    if patch is None:
        return None, None, new_patch
    before = patched(base, patch)
    if before is None or places is None:
        return before, None, new_patch
    if not patch:  # the record in full
        return before, places, new_patch
    at = dict(_PATCH_ITEM.iter_unpack(patch))  # a position patched twice: the last value, as in ``patched``
    # A patched file differs from ``now`` as its patched value does; any other, as its base value does.
    changed = [i for i in places if i not in at]
    changed += [i for i, value in at.items() if _value(now, i) != value]
    changed.sort()
    return before, changed, new_patch


def patch_for(base: bytes | None, now: bytes) -> bytes | None:
    """``now`` as the few files whose values differ from ``base`` (a record of the same names), or None.

    The catalog keeps a directory's files record in full only now and then: a re-import after
    scattered edits changes one file in most directories, and rewriting each one's record
    (8 bytes a file) made the directory rows a sixth of the pages a 1,000-edit re-import of a
    100,000-model library wrote (566 of 3,099). A patch (4 bytes of position and the 8-byte value a file)
    keeps the row small. None, and the record is kept in full again, when there is no base of
    the same names, or more than :data:`PATCH_FILES` files differ from it.
    """
    return None if base is None else _patch_of(changed_files(base, now), now)


def _patch_of(places: list[int] | None, now: bytes) -> bytes | None:
    """The patch of ``now`` at ``places`` (where it differs from the base); None past :data:`PATCH_FILES`."""
    if places is None or len(places) > PATCH_FILES:
        return None
    return b"".join(_PATCH_ITEM.pack(i, _value(now, i)) for i in places)


def _value(record: bytes, i: int) -> bytes:
    """The value of the ``i``-th file of a files record."""
    return record[_NAMES_DIGEST + RECORD * i : _NAMES_DIGEST + RECORD * (i + 1)]


def patched(base: bytes | None, patch: bytes) -> bytes | None:
    """``base`` with ``patch`` (from :func:`patch_for`) applied; None when either is not what it should be."""
    if base is None or (len(base) - _NAMES_DIGEST) % RECORD or len(patch) % _PATCH_ITEM.size:
        return None
    record = bytearray(base)
    for i, value in _PATCH_ITEM.iter_unpack(patch):
        start = _NAMES_DIGEST + RECORD * i
        if start + RECORD > len(record):
            return None
        record[start : start + RECORD] = value
    return bytes(record)


def pack_names(names: bytes) -> bytes:
    """A directory's file names (as :func:`snapshot` gives them) as the catalog keeps them: a quarter of the size."""
    return zlib.compress(names, 1)


def changed_names(before: bytes, packed_names: bytes, now: bytes, names: bytes, seed: str) -> set[str] | None:
    """The names of the files added, removed or changed between two records of different names.

    ``packed_names`` is what :func:`pack_names` made of ``before``'s names, ``names`` the names
    ``now`` was made of, with ``seed``. None when the stored names are not those of ``before``
    (or unreadable), or ``before`` was made with another seed.
    """
    try:
        old = zlib.decompress(packed_names)
    except zlib.error:
        return None
    old_names, new_names = (old.split(b"\0") if old else []), (names.split(b"\0") if names else [])
    if names_digest(seed, old) != before[:_NAMES_DIGEST] or len(before) != _NAMES_DIGEST + RECORD * len(old_names):
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

    An empty list when no file's value differs: the caller, who compares records only when
    the fingerprints differ, must then look at the whole directory (see the module's
    docstring). None when the records are not of the same names, or ``before`` is not a record: then they
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

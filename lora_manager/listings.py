"""A directory's files as the catalog stores them, and which of them changed between two such listings.

A directory's *fingerprint* (:func:`fingerprint`) is a digest of its files' names, sizes and
mtimes. A *listing* is the JSON text ``[[name, size, mtime_ns, is_link], ...]`` of its files,
sorted by name (:func:`listing_of` writes it). When a directory's fingerprint changes,
its stored listing and the new one say which files changed, so that only their entries are
looked at again. Nothing here knows what the files are.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from array import array

import orjson

# A file of a directory: (name, its DirEntry, whether it is a link, its stat or None if stat failed).
Listed = tuple[str, "os.DirEntry[str]", bool, "os.stat_result | None"]


def fingerprint(seed: str, listing: list[Listed]) -> str:
    """A digest of a directory's files: names, sizes, mtimes and which are links.

    Called for every directory of the library on every import, so the numbers go into an
    array of machine integers rather than through string formatting.
    """
    names = "\0".join([name for name, _, _, _ in listing])
    numbers = array(
        "q", [v for _, _, link, st in listing for v in ((st.st_size, st.st_mtime_ns, link) if st else (-1, -1, link))]
    )
    digest = hashlib.blake2b((seed + "\0" + names).encode("utf-8", "surrogateescape"), digest_size=16)
    digest.update(numbers.tobytes())
    return digest.hexdigest()


def listing_of(listing: list[Listed]) -> str:
    """A directory's files as the catalog stores them: JSON text of ``[[name, size, mtime_ns, is_link], ...]``."""
    rows = [[name, st.st_size, st.st_mtime_ns, link] if st else [name, -1, -1, link] for name, _, link, st in listing]
    return orjson.dumps(rows).decode()


def changed_names(before: str, now: str) -> set[str] | None:
    """The names of the files added, removed or changed between two listings; None if they cannot tell.

    Both texts come from :func:`listing_of`, so an unchanged file is the same run of text
    in both: the rows are compared as text split at ``],[``, and only the rows that differ are
    decoded. A name that itself holds ``],[`` splits into pieces that are never a whole row
    (each has an unterminated string, or no string at all): such a piece that differs gives
    None, as does anything else unexpected, and the caller looks at the whole directory.
    """
    if before == now:
        return set()
    names: set[str] = set()
    for piece in _rows(*_middles(before, now)):
        try:
            row = orjson.loads("[" + piece + "]")
        except orjson.JSONDecodeError:
            return None
        if len(row) != 4 or not isinstance(row[0], str):
            return None
        names.add(row[0])
    return names


def pack(listing: str) -> bytes:
    """A listing held until the end of a run, in a quarter of the memory (see :func:`listing_text`)."""
    return zlib.compress(listing.encode("utf-8", "surrogateescape"), 1)


_SEP = "],["  # between two rows of a listing_of text
_BLOCK = 512


def _middles(before: str, now: str) -> tuple[str, str]:
    """The parts of two listing texts that differ, widened to whole rows (the rest is the same rows).

    A directory where one file changed differs in one short stretch: comparing blocks from
    either end (C-level compares) spares splitting and hashing every unchanged row. Both
    cuts fall on a separator inside text that is identical in both, and a separator is
    always a split point (it cannot overlap itself), so the middles split into exactly the
    rows the whole texts would split into, less the identical rows on either side.
    """
    if not (before.startswith("[[") and before.endswith("]]") and now.startswith("[[") and now.endswith("]]")):
        return before, now
    shortest = min(len(before), len(now))
    head = 0
    while head + _BLOCK <= shortest and before[head : head + _BLOCK] == now[head : head + _BLOCK]:
        head += _BLOCK
    tail = 0
    while (
        tail + _BLOCK <= shortest - head
        and before[-tail - _BLOCK : len(before) - tail] == now[-tail - _BLOCK : len(now) - tail]
    ):
        tail += _BLOCK
    cut = before.rfind(_SEP, 0, head)
    start = cut + len(_SEP) if cut >= 0 else 2
    end_before = before.find(_SEP, len(before) - tail) if tail else -1
    end_now = end_before - len(before) + len(now) if end_before >= 0 else -1
    if end_before < start or end_now < start:
        end_before, end_now = len(before) - 2, len(now) - 2
    return "[[" + before[start:end_before] + "]]", "[[" + now[start:end_now] + "]]"


def _rows(before: str, now: str) -> set[str]:
    """The rows in one :func:`listing_of` text or the other but not both (see :func:`changed_names`)."""
    return _split_rows(before) ^ _split_rows(now)


def _split_rows(text: str) -> set[str]:
    if not (text.startswith("[[") and text.endswith("]]")):
        return {text} if text != "[]" else set()  # empty, or not ours: a piece that never decodes as a row
    return set(text[2:-2].split(_SEP))


def listing_text(listing: str | bytes) -> str:
    """A listing as the text the catalog stores, whether held as text or :func:`pack`-ed."""
    return listing if isinstance(listing, str) else zlib.decompress(listing).decode("utf-8", "surrogateescape")

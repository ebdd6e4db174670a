"""The walk over a library: which files belong together (see ``entries``), and which paths are safe to read.

The walk is sorted (so runs are deterministic), never follows a link out of the root, and
never enters a directory twice (so symlink loops cannot hang it).
"""

from __future__ import annotations

import bisect
import operator
import os
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from lora_manager.entries import LINKED_OUT, Entry, FileStat, Neighbours, classify, entry_stem
from lora_manager.errors import FailureKind
from lora_manager.ignore import IgnoreRules
from lora_manager.listings import (
    Listed,
    StoredFiles,
    changed_names,
    compare,
    files_record,
    fingerprint,
    int64,
    pack_names,
    same_names,
    snapshot,
)
from lora_manager.paths import LINK_OUT, directory_is_inside, is_inside, is_utf8, printable


@dataclass(slots=True)
class WalkResult:
    """Everything one walk of one root found."""

    root: str
    entries: list[Entry]  # the entries of every directory not in ``clean``
    # Directories or files the walk could not read, with the reason (reported, never fatal).
    problems: list[tuple[str, FailureKind, str]]
    files_seen: int
    fingerprints: dict[str, str]  # every directory walked -> its fingerprint
    clean: list[str]  # directories whose fingerprint matched the one given: not grouped
    # Directories looked at only in part -> the stems whose files changed (their entries alone are in ``entries``).
    partial: dict[str, set[str]] = field(default_factory=dict)
    # Every directory not clean -> its files record, as the catalog stores it (see ``listings``);
    # and the directories whose names must be stored anew (new, or files added, removed, renamed).
    files: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, bytes] = field(default_factory=dict)
    # Directories whose files record may be stored as a patch of the full one kept (see ``listings.patch_for``).
    patches: dict[str, bytes] = field(default_factory=dict)
    # New directories left ungrouped (``defer_new``) -> how many entries they hold; see :func:`regroup`.
    deferred: dict[str, int] = field(default_factory=dict)
    # Directories that could not be listed (their problems say why): what is in them, and
    # below them, is unknown this run, not gone.
    unlisted: list[str] = field(default_factory=list)
    # Directories whose grouping found a problem with one of their files (one that cannot be
    # stat'ed, such as a link that loops). Listing a directory finds its own problems on every
    # walk; these only a grouping finds, so the importer has them looked at again next time.
    file_problems: set[str] = field(default_factory=set)


def walk(
    root: str,
    ignore: IgnoreRules | None = None,
    known: Mapping[str, str] | None = None,
    previous: StoredFiles | None = None,
    defer_new: bool = False,
    on_partial: Callable[[list[Entry]], None] | None = None,
    defer_clean: bool = False,
) -> WalkResult:
    """Group the files under ``root`` (a :func:`resolve_root` result) into entries, sorted by key.

    With ``known`` (directory -> fingerprint from the last run), a directory whose files all
    have the names, sizes and mtimes they had is listed in ``clean`` and not grouped at all:
    that is what makes a re-import of an unchanged library cost little more than a stat of
    each file; the ignore rules go into every fingerprint. For a known directory that did
    change, ``previous`` may give its stored files record and names (see ``listings``): then
    only the stems whose files changed, were added or removed are grouped (unless a model
    file is among them: a sidecar may name any of them). Each
    directory is done with before the next is listed: holding several directories' files
    for one batched query measured slower than the queries it saved.

    With ``defer_new``, a directory absent from ``known`` is not grouped but counted into
    ``deferred``: every entry of a new directory must be read anyway, and grouping all of
    them up front held about 1 KB per model until it was read (110 MB at 100,000 models).
    The caller groups such a directory again when its entries' turn comes (:func:`regroup`).
    With ``defer_clean`` too (``--force``: every entry is read), a directory whose fingerprint
    matched is deferred the same way instead of listed in ``clean``.

    ``on_partial`` is given the entries of each directory looked at in part as soon as they
    are grouped: they almost surely changed, so the importer starts reading them while the
    walk goes on.
    """
    result = WalkResult(root, [], [], 0, {}, [])
    rules = ignore or IgnoreRules()
    for directory, listing in _directories(root, rules.match, result.problems, result.unlisted):
        result.files_seen += len(listing)
        fp, names, numbers, named = snapshot(rules.text, listing)
        result.fingerprints[directory] = fp
        clean = known is not None and known.get(directory) == fp
        if clean and not defer_clean:
            result.clean.append(directory)
            continue
        now = result.files[directory] = files_record(named, numbers)
        stored = previous if previous is not None and known is not None and directory in known else None
        before = places = None
        if stored is not None:
            before, places, patch = compare(*stored.stored(directory), now)
            if patch is not None:
                result.patches[directory] = patch
        if before is None or not same_names(before, now):
            result.names[directory] = pack_names(names)
        if defer_new and known is not None and (clean or directory not in known) and all(item[3] for item in listing):
            count = _count_entries(listing)
            if count:
                result.deferred[directory] = count
                continue
        stems = None
        if stored and before:
            stems = _changed_stems(directory, stored, before, places, now, names, listing, rules.text)
        _look_at(result, directory, listing, stems, on_partial)
    result.entries.sort(key=lambda e: e.key)
    return result


def _look_at(
    result: WalkResult,
    directory: str,
    listing: list[Listed],
    stems: set[str] | None,
    on_partial: Callable[[list[Entry]], None] | None,
) -> None:
    """Group a changed directory: only ``stems`` when the stored files told which changed, else all of it."""
    if stems is not None:
        subset = _files_of(listing, stems)
        found: list[tuple[str, FailureKind, str]] = []
        entries = _group(directory, result.root, subset, found)
        if any(e.sidecars and not e.models for e in entries):
            # A sidecar without its model may name a sidecar-less model file of another stem:
            # its neighbours are those of the whole directory, as a full look would give them.
            lonely = _lonely(_group(directory, result.root, listing, []))
            for e in entries:
                if e.sidecars and not e.models:
                    e.neighbours = lonely
        result.partial[directory] = stems
        result.problems.extend(found)
        if found:
            result.file_problems.add(directory)
        result.entries.extend(entries)
        if on_partial is not None and entries:
            on_partial(entries)
        return
    before = len(result.problems)
    result.entries.extend(_group(directory, result.root, listing, result.problems))
    if len(result.problems) > before:
        result.file_problems.add(directory)


def _files_of(listing: list[Listed], stems: set[str]) -> list[Listed]:
    """The files of ``listing`` (sorted by name) that belong to one of ``stems``.

    Every file of a stem starts with it, and names starting alike sit together in a sorted
    listing: a binary search per stem instead of a look at every file.
    """
    picked: set[int] = set()
    for stem in stems:
        i = bisect.bisect_left(listing, stem, key=_name_of)
        while i < len(listing) and listing[i][0].startswith(stem):
            if _stem_in(listing, listing[i][0]) == stem:
                picked.add(i)
            i += 1
    return [listing[i] for i in sorted(picked)]


def _stem_in(listing: list[Listed], name: str) -> str | None:
    """The stem of the entry ``name`` belongs to in ``listing`` (see :func:`~lora_manager.entries.entry_stem`)."""
    kind_stem = classify(name)
    if kind_stem is None:
        return None
    return entry_stem(name, *kind_stem, lambda stem: _has_model(listing, stem))


def _has_model(listing: list[Listed], stem: str) -> bool:
    """Whether a model file of ``stem`` is in ``listing`` (sorted by name)."""
    i = bisect.bisect_left(listing, stem, key=_name_of)
    while i < len(listing) and listing[i][0].startswith(stem):
        if classify(listing[i][0]) == ("model", stem):
            return True
        i += 1
    return False


def _name_of(item: Listed) -> str:
    return item[0]


def _changed_stems(
    directory: str,
    stored: StoredFiles,
    before: bytes,
    places: list[int] | None,
    now: bytes,
    names: bytes,
    listing: list[Listed],
    seed: str,
) -> set[str] | None:
    """The stems of the files that changed, were added or removed; None when a model file is
    among them (a sidecar may name any model file of the directory), or when what is stored
    cannot tell (also when it shows no file changed: the fingerprint says one did).

    ``places``: the files whose values differ between ``before`` and ``now`` (:func:`~lora_manager.listings.compare`).
    """
    changed: list[str] | set[str] | None
    if same_names(before, now):  # compared in place
        # No file's value differs while the fingerprint does: a change the record cannot see (or new ignore rules).
        changed = [listing[i][0] for i in places] if places else None
    else:
        packed = stored.names(directory)
        changed = None if packed is None else changed_names(before, packed, now, names, seed)
    if changed is None:
        return None
    stems: set[str] = set()
    sidecar_stems: set[str] = set()
    for name in changed:
        kind_stem = classify(name)
        if kind_stem is None:
            continue
        if kind_stem[0] == "model":
            return None
        # The stem it belongs to, and the one its name says (it may have belonged there before).
        owner = entry_stem(name, *kind_stem, lambda stem: _has_model(listing, stem))
        stems.update((kind_stem[1], owner))
        if kind_stem[0] == "sidecar":
            sidecar_stems.update((kind_stem[1], owner))
    if sidecar_stems and not same_names(before, now) and _neighbours_may_change(sidecar_stems, listing):
        return None
    return stems


def _neighbours_may_change(stems: set[str], listing: list[Listed]) -> bool:
    """Whether sidecars added to or removed from ``stems`` may change another entry's neighbours.

    A model file without a sidecar is a neighbour of every model-less sidecar of its directory
    (which may name it): the first sidecar added to a model's stem, or the last one removed,
    changes those entries too, so the directory is looked at in full.
    """
    models: set[str] = set()
    sidecars: set[str] = set()
    for name, _, _, _ in listing:
        kind_stem = classify(name)
        if kind_stem is not None and kind_stem[0] != "preview":
            (models if kind_stem[0] == "model" else sidecars).add(kind_stem[1])
    return bool(stems & models) and bool(sidecars - models)


def _count_entries(listing: list[Listed]) -> int:
    """How many entries a directory's files make (the stems of its model files and sidecars, as :func:`_group`
    assigns them)."""
    kinds = [(item[0], c) for item in listing if (c := classify(item[0])) is not None and c[0] != "preview"]
    models = {c[1] for _, c in kinds if c[0] == "model"}
    return len({entry_stem(name, kind, stem, models.__contains__) for name, (kind, stem) in kinds})


def regroup(root: str, directory: str, ignore: IgnoreRules | None = None) -> tuple[list[Entry], str]:
    """A directory's entries (sorted by key) as it is now, and its fingerprint now (no recursion).

    A fingerprint that differs from the walk's means the directory changed in between: the
    caller has it looked at in full next time.
    """
    if not directory_is_inside(directory, root):  # replaced by a link out of the library since the walk
        return [], ""
    rules = ignore or IgnoreRules()
    problems: list[tuple[str, FailureKind, str]] = []
    listed = _list(directory, root, rules.match, problems)
    if listed is None:  # unreadable since the walk: looked at in full next time
        return [], ""
    entries = sorted(_group(directory, root, listed[0], problems), key=lambda e: e.key)
    return entries, fingerprint(rules.text, listed[0])


def walk_directory(root: str, directory: str, ignore: IgnoreRules | None = None) -> list[Entry]:
    """The entries of one directory of the library (no recursion), for a re-read of a clean one."""
    return regroup(root, directory, ignore)[0]


def _directories(
    root: str,
    match: Callable[[str], bool] | None,
    problems: list[tuple[str, FailureKind, str]],
    unlisted: list[str],
) -> Iterator[tuple[str, list[Listed]]]:
    """Yield each directory once with its files, depth-first in sorted order.

    A directory that cannot be listed is not yielded but added to ``unlisted`` (and to
    ``problems``): an empty listing would pass for a folder whose files are all gone.
    """
    stack = [root]
    visited: set[tuple[int, int]] = set()
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
        except OSError as exc:
            problems.append((directory, FailureKind.UNREADABLE, f"cannot list directory: {exc.strerror}"))
            unlisted.append(directory)
            continue
        if (st.st_dev, st.st_ino) in visited:
            continue  # a link back to a directory already walked: a loop or a second path
        visited.add((st.st_dev, st.st_ino))
        listed = _list(directory, root, match, problems)
        if listed is None:
            unlisted.append(directory)
            continue
        stack.extend(reversed(listed[1]))
        yield directory, listed[0]


def _list(
    directory: str, root: str, match: Callable[[str], bool] | None, problems: list[tuple[str, FailureKind, str]]
) -> tuple[list[Listed], list[str]] | None:
    """The files (each stat'ed once) and the subdirectories of one directory, sorted by name; None
    (and a problem) when it cannot be listed.

    Runs once per file of the library on every import: names are checked for UTF-8 all at
    once (one at a time only in a directory where one fails), and the loop does no more
    than it must.
    """
    cut = len(root.rstrip(os.sep)) + 1
    try:
        with os.scandir(directory) as it:
            items = sorted(it, key=_entry_name)
    except OSError as exc:
        problems.append((directory, FailureKind.UNREADABLE, f"cannot list directory: {exc.strerror}"))
        return None
    all_utf8 = is_utf8("".join([item.name for item in items]))
    listing: list[Listed] = []
    subdirs: list[str] = []
    append = listing.append
    for item in items:
        name = item.name
        if not all_utf8 and not is_utf8(name):
            problems.append(
                (printable(item.path), FailureKind.UNSAFE_PATH, "name is not valid UTF-8: rename it to import it")
            )
            continue
        try:
            is_dir = item.is_dir()
        except OSError:
            is_dir = False
        if match is not None and match(item.path[cut:] + "/" if is_dir else item.path[cut:]):
            continue
        if is_dir:
            if item.is_symlink() and not is_inside(item.path, root):
                problems.append((item.path, FailureKind.UNSAFE_PATH, LINK_OUT))
                continue
            subdirs.append(item.path)
            continue
        try:
            st: os.stat_result | None = item.stat()
        except OSError:
            st = None
        append((name, item, item.is_symlink(), st))
    return listing, subdirs


_entry_name = operator.attrgetter("name")


def _group(
    directory: str, root: str, listing: list[Listed], problems: list[tuple[str, FailureKind, str]]
) -> list[Entry]:
    """The entries of one directory."""
    kinds = [classify(item[0]) for item in listing]
    model_stems = {k[1] for k in kinds if k is not None and k[0] == "model"}
    by_stem: dict[str, Entry] = {}
    for (name, item, link, st), kind_stem in zip(listing, kinds, strict=True):
        if kind_stem is None:
            continue
        kind, stem = kind_stem
        stem = entry_stem(name, kind, stem, model_stems.__contains__)
        entry = by_stem.get(stem)
        if entry is None:
            entry = by_stem[stem] = Entry(directory, stem)
        if link and not is_inside(item.path, root):
            entry.unsafe.append((name, LINKED_OUT))
            continue
        if kind == "preview":
            entry.previews.append(name)
            continue
        if st is None:
            problems.append((item.path, FailureKind.UNREADABLE, f"cannot stat the file{_why_not(item.path)}"))
            continue
        if not statmod.S_ISREG(st.st_mode):
            continue
        (entry.models if kind == "model" else entry.sidecars).append(FileStat(name, st.st_size, int64(st.st_mtime_ns)))
    lonely = _lonely(by_stem.values())
    result = []
    for entry in by_stem.values():
        if entry.models or entry.sidecars or entry.unsafe:
            if not entry.models and entry.sidecars:
                entry.neighbours = lonely
            result.append(entry)
    return result


def _why_not(path: str) -> str:
    """Why ``path`` cannot be stat'ed (a link to itself, to nothing...), asked again only on that rare failure."""
    try:
        os.stat(path)
    except OSError as exc:
        return f": {exc.strerror}" if exc.strerror else ""
    return ""


def _lonely(entries: Iterable[Entry]) -> Neighbours:
    """The sidecar-less model files among a directory's entries: what a sidecar without its model may name."""
    return Neighbours(tuple(m for e in entries if not e.sidecars and (m := e.model) is not None))

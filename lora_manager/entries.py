"""What the walk groups a library's files into: entries, and the file names it recognises.

A library is read as *entries*: one model file and the sidecars and previews that share its
stem (``foo.v2.safetensors`` has stem ``foo.v2``; ``foo.v2.civitai.info`` belongs to it). An
entry's *signature* is the names, sizes and ``st_mtime_ns`` of its files: when it equals the
stored one, nothing in the entry is opened again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import takewhile

MODEL_EXTENSIONS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# Longest first: ``foo.metadata.json`` is a Lora-Manager sidecar of ``foo``, not a ``.json`` of ``foo.metadata``.
# ``.api_info.json`` is civitai-browser-plus's copy of Civitai's response, ``.civitai.json``
# SignalFlagZ's civitai browser's.
SIDECAR_SUFFIXES = (".metadata.json", ".api_info.json", ".civitai.info", ".civitai.json", ".cm-info.json", ".json")
PREVIEW_SUFFIXES = tuple(
    f"{prefix}.{ext}" for prefix in (".preview", "") for ext in ("png", "jpg", "jpeg", "webp", "gif", "mp4", "webm")
)


# Why a file of an entry is in :attr:`Entry.unsafe`.
LINKED_OUT = "link leads out of the library"


@dataclass(slots=True, frozen=True)
class FileStat:
    """A file of an entry as the walk saw it."""

    name: str
    size: int
    mtime_ns: int

    def __reduce__(self) -> tuple[type[FileStat], tuple[str, int, int]]:
        # Entries go to the reader process pickled: the dataclass's own state methods look up
        # its fields on every call, and set each one through ``object.__setattr__`` (frozen).
        return FileStat, (self.name, self.size, self.mtime_ns)


# A model-less entry's signature lists its neighbours one by one up to this many; past it, one
# digest of them all stands for the list. Listed in full, a folder of 8,000 sidecars without
# their models beside 8,000 models without sidecars stored 64 million names (a 3 GB catalog).
MAX_LISTED_NEIGHBOURS = 32


class Neighbours:
    """The sidecar-less model files of one directory: what a sidecar without its model may name.

    One object per directory, shared by its model-less entries, so that what each of them
    needs (its signature's part, a lookup by name, the recent mtimes) is worked out once for
    the directory rather than once per entry: per entry it cost the directory's size.
    """

    __slots__ = ("_by_name", "_newest_first", "_part", "files")

    def __init__(self, files: tuple[FileStat, ...] = ()) -> None:
        self.files = files
        self._part: str | None = None
        self._by_name: dict[str, FileStat] | None = None
        self._newest_first: tuple[int, ...] | None = None

    def __iter__(self) -> Iterator[FileStat]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def signature_part(self) -> str:
        """``n:name:size:mtime`` for each, joined by ``|``; past :data:`MAX_LISTED_NEIGHBOURS`,
        ``N:digest:count`` instead (any change to any of them still changes it)."""
        if self._part is None:
            listed = [f"n:{f.name}:{f.size}:{f.mtime_ns}" for f in self.files]
            if len(listed) <= MAX_LISTED_NEIGHBOURS:
                self._part = "|".join(listed)
            else:
                text = "\0".join(listed).encode("utf-8", "surrogateescape")
                self._part = f"N:{hashlib.blake2b(text, digest_size=16).hexdigest()}:{len(listed)}"
        return self._part

    def by_name(self) -> dict[str, FileStat]:
        """The files by lower-cased name."""
        if self._by_name is None:
            self._by_name = {f.name.lower(): f for f in self.files}
        return self._by_name

    def mtimes_since(self, since_ns: int) -> Iterator[int]:
        """The mtimes later than ``since_ns``, newest first (usually none: files written long ago)."""
        if self._newest_first is None:
            self._newest_first = tuple(sorted((f.mtime_ns for f in self.files), reverse=True))
        return takewhile(lambda m: m > since_ns, self._newest_first)


NO_NEIGHBOURS = Neighbours()


class Entry:
    """One model file (or the hope of one) and everything beside it with the same stem.

    A plain slotted class rather than a dataclass: the walk makes one per model, and at
    100,000 models the constructor's cost shows.
    """

    __slots__ = ("directory", "key", "models", "neighbours", "previews", "sidecars", "stem", "unsafe")

    def __init__(self, directory: str, stem: str) -> None:
        self.directory = directory
        self.stem = stem
        self.key = directory + os.sep + stem  # the entry's identity in the catalog
        self.models: list[FileStat] = []
        self.sidecars: list[FileStat] = []
        self.previews: list[str] = []
        # Files of this entry that may not be read (a link out of the root), with the reason (``LINKED_OUT``).
        self.unsafe: list[tuple[str, str]] = []
        # Sidecar-less model files in the same directory: a sidecar may name one of them.
        self.neighbours: Neighbours = NO_NEIGHBOURS

    @property
    def model(self) -> FileStat | None:
        """The model file, by extension preference when several share the stem."""
        if len(self.models) < 2:
            return self.models[0] if self.models else None
        return min(self.models, key=lambda f: _model_rank(f.name))

    @property
    def signature(self) -> str:
        """What must be unchanged for the stored record to be current (files arrive sorted by name)."""
        parts = [f"m:{f.name}:{f.size}:{f.mtime_ns}" for f in self.models]
        parts += [f"s:{f.name}:{f.size}:{f.mtime_ns}" for f in self.sidecars]
        parts += ["p:" + name for name in self.previews]
        parts += ["u:" + name for name, _ in self.unsafe]
        if not self.models and self.neighbours:
            parts.append(self.neighbours.signature_part())
        return "|".join(parts)

    def path(self, name: str) -> str:
        return self.directory + os.sep + name

    def __reduce__(self) -> tuple[Callable[..., Entry], tuple[object, ...]]:
        """Entries go to the reader process pickled: one call with the fields, not one ``setattr`` per slot."""
        state = (self.models, self.sidecars, self.previews, self.unsafe, self.neighbours)
        return _entry, (self.directory, self.stem, *state)


def _entry(
    directory: str,
    stem: str,
    models: list[FileStat],
    sidecars: list[FileStat],
    previews: list[str],
    unsafe: list[tuple[str, str]],
    neighbours: Neighbours,
) -> Entry:
    """An unpickled :class:`Entry` (see its ``__reduce__``)."""
    entry = Entry(directory, stem)
    entry.models, entry.sidecars, entry.previews, entry.unsafe, entry.neighbours = (
        models,
        sidecars,
        previews,
        unsafe,
        neighbours,
    )
    return entry


def signed_files(signature: str) -> Iterator[tuple[str, str, str, str]]:
    """The files a signature (see :attr:`Entry.signature`) names: ``(kind, name, size, mtime)``,
    as text; ``kind`` is ``m`` (model), ``s`` (sidecar) or ``n`` (a neighbouring model file).

    With :func:`signed_links_out`, the readers of that format for what the catalog stored (both
    split it with :func:`_signed_parts`). A name holding ``|`` can be read wrongly: callers check
    what it says against the entry or the disk before they trust it.
    """
    for kind, rest in _signed_parts(signature):
        if kind in ("m", "s", "n"):
            name, size, mtime = (rest.rsplit(":", 2) + ["", ""])[:3]
            yield kind, name, size, mtime


def signs_neighbour(signature: str, name: str) -> bool | None:
    """Whether a signature lists ``name`` among the entry's neighbours; None when it holds only
    their digest (see :class:`Neighbours`), which cannot tell."""
    if any(kind == "N" for kind, _ in _signed_parts(signature)):
        return None
    return any(kind == "n" and n == name for kind, n, _, _ in signed_files(signature))


def signed_links_out(signature: str) -> list[str]:
    """The names of the files a signature records as links out of the library (:attr:`Entry.unsafe`)."""
    return [rest for kind, rest in _signed_parts(signature) if kind == "u"]


def _signed_parts(signature: str) -> Iterator[tuple[str, str]]:
    """``(kind, rest)`` of each part of a signature: ``m:name:size:mtime``, ``p:name``, ``u:name``..."""
    for part in signature.split("|"):
        kind, _, rest = part.partition(":")
        yield kind, rest


_MODEL_EXTS = frozenset(MODEL_EXTENSIONS)
_SIDECAR_EXTS = frozenset(s[s.rfind(".") :] for s in SIDECAR_SUFFIXES)
_PREVIEW_EXTS = frozenset(s[s.rfind(".") :] for s in PREVIEW_SUFFIXES)


def classify(name: str) -> tuple[str, str] | None:
    """``(kind, stem)`` for a file name we care about, kind being model, sidecar or preview.

    Called for every file of the library, so it looks at the last extension first.
    """
    dot = name.rfind(".")
    if dot <= 0:
        return None
    ext = name[dot:].lower()
    if ext in _MODEL_EXTS:
        return "model", name[:dot]
    suffixes: tuple[str, ...]
    if ext in _SIDECAR_EXTS:
        suffixes = SIDECAR_SUFFIXES
    elif ext in _PREVIEW_EXTS:
        suffixes = PREVIEW_SUFFIXES
    else:
        return None
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return ("sidecar" if suffixes is SIDECAR_SUFFIXES else "preview"), name[: -len(suffix)]
    return None


def entry_stem(name: str, kind: str, stem: str, has_model: Callable[[str], bool]) -> str:
    """The stem of the entry a file belongs to in its directory, ``kind`` and ``stem`` being
    what :func:`classify` says of ``name``; ``has_model`` says whether a model file of a stem is there.

    A sidecar with a longer suffix (``weird.civitai.json``: stem ``weird``) goes to a model file
    of its plain ``.json`` stem when there is one (``weird.civitai.safetensors``): the longer
    suffix is the tool's naming only when nothing else explains the name.
    """
    if kind == "sidecar" and len(name) - len(stem) > 5 and name[-5:].lower() == ".json":
        plain = name[:-5]
        if has_model(plain):
            return plain
    return stem


def _model_rank(name: str) -> int:
    lower = name.lower()
    return next((i for i, ext in enumerate(MODEL_EXTENSIONS) if lower.endswith(ext)), len(MODEL_EXTENSIONS))

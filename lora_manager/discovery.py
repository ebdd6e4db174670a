"""The walk over a library: which files belong together, and which paths are safe to read.

A library is read as *entries*: one model file and the sidecars and previews that share its
stem (``foo.v2.safetensors`` has stem ``foo.v2``; ``foo.v2.civitai.info`` belongs to it). An
entry's *signature* is the names, sizes and ``st_mtime_ns`` of its files: when it equals the
stored one, nothing in the entry is opened again.

The walk is sorted (so runs are deterministic), never follows a link out of the root, and
never enters a directory twice (so symlink loops cannot hang it).
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lora_manager.errors import FailureKind, LoraError

MODEL_EXTENSIONS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
# Longest first: ``foo.metadata.json`` is a Lora-Manager sidecar of ``foo``, not a ``.json`` of ``foo.metadata``.
SIDECAR_SUFFIXES = (".civitai.info", ".metadata.json", ".cm-info.json", ".json")
PREVIEW_SUFFIXES = tuple(
    f"{prefix}.{ext}" for prefix in (".preview", "") for ext in ("png", "jpg", "jpeg", "webp", "gif", "mp4", "webm")
)
IGNORE_FILE = ".loraignore"


@dataclass(slots=True, frozen=True)
class FileStat:
    """A file of an entry as the walk saw it."""

    name: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Entry:
    """One model file (or the hope of one) and everything beside it with the same stem."""

    directory: str
    stem: str
    models: list[FileStat] = field(default_factory=list)
    sidecars: list[FileStat] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    # Files of this entry that may not be read (a link out of the root), with the reason.
    unsafe: list[tuple[str, str]] = field(default_factory=list)
    # Sidecar-less model files in the same directory: a sidecar may name one of them.
    neighbours: tuple[FileStat, ...] = ()

    @property
    def key(self) -> str:
        return os.path.join(self.directory, self.stem)

    @property
    def model(self) -> FileStat | None:
        """The model file, by extension preference when several share the stem."""
        if not self.models:
            return None
        return min(self.models, key=lambda f: _model_rank(f.name))

    @property
    def signature(self) -> str:
        """What must be unchanged for the stored record to be current."""
        parts = [f"m:{f.name}:{f.size}:{f.mtime_ns}" for f in sorted(self.models, key=lambda f: f.name)]
        parts += [f"s:{f.name}:{f.size}:{f.mtime_ns}" for f in self.sidecars]
        parts += [f"p:{name}" for name in sorted(self.previews)]
        parts += [f"u:{name}" for name, _ in self.unsafe]
        if not self.models:
            parts += [f"n:{f.name}:{f.size}:{f.mtime_ns}" for f in self.neighbours]
        return "|".join(parts)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)


@dataclass(slots=True)
class WalkResult:
    """Everything one walk of one root found."""

    root: str
    entries: list[Entry]
    # Directories or files the walk could not read, with the reason (reported, never fatal).
    problems: list[tuple[str, FailureKind, str]]
    files_seen: int


def classify(name: str) -> tuple[str, str] | None:
    """``(kind, stem)`` for a file name we care about, kind being model, sidecar or preview."""
    lower = name.lower()
    for ext in MODEL_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            return "model", name[: -len(ext)]
    for suffix in SIDECAR_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return "sidecar", name[: -len(suffix)]
    for suffix in PREVIEW_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return "preview", name[: -len(suffix)]
    return None


def _model_rank(name: str) -> int:
    lower = name.lower()
    return next((i for i, ext in enumerate(MODEL_EXTENSIONS) if lower.endswith(ext)), len(MODEL_EXTENSIONS))


def resolve_root(path: str | os.PathLike[str]) -> str:
    """The absolute, link-resolved root, or a usage error naming what is wrong."""
    root = Path(path).expanduser()
    if not root.exists():
        raise LoraError(f"{root}: no such directory (is the drive mounted?)")
    if not root.is_dir():
        raise LoraError(f"{root}: not a directory")
    return os.path.realpath(root)


def load_ignore(root: str, patterns: Iterable[str] = ()) -> object | None:
    """A gitignore-style matcher from ``patterns`` and the root's ``.loraignore``; None if neither."""
    lines = list(patterns)
    ignore_file = os.path.join(root, IGNORE_FILE)
    if os.path.isfile(ignore_file):
        try:
            with open(ignore_file, encoding="utf-8", errors="replace") as f:
                lines += f.read(1_000_000).splitlines()
        except OSError as exc:
            raise LoraError(f"{ignore_file}: cannot read: {exc.strerror}") from None
    if not lines:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def is_inside(path: str, root: str) -> bool:
    """True when the real path of ``path`` lies under ``root`` (itself a real path)."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def walk(root: str, ignore: object | None = None) -> WalkResult:
    """Group the files under ``root`` (a :func:`resolve_root` result) into entries, sorted by key."""
    entries: list[Entry] = []
    problems: list[tuple[str, FailureKind, str]] = []
    visited: set[tuple[int, int]] = set()
    files_seen = 0
    for directory, files in _directories(root, ignore, visited, problems):
        files_seen += len(files)
        entries.extend(_group(directory, root, files, problems))
    entries.sort(key=lambda e: e.key)
    return WalkResult(root, entries, problems, files_seen)


def _directories(
    root: str, ignore: object | None, visited: set[tuple[int, int]], problems: list[tuple[str, FailureKind, str]]
) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """Yield each directory once with its files of interest, depth-first in sorted order."""
    stack = [root]
    match = getattr(ignore, "match_file", None)
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in visited:
                continue  # a link back to a directory already walked: a loop or a second path
            visited.add((st.st_dev, st.st_ino))
            with os.scandir(directory) as it:
                items = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            problems.append((directory, FailureKind.UNREADABLE, f"cannot list directory: {exc.strerror}"))
            continue
        files: list[os.DirEntry[str]] = []
        subdirs: list[str] = []
        for item in items:
            rel = os.path.relpath(item.path, root)
            try:
                is_dir = item.is_dir()
            except OSError:
                is_dir = False
            if match is not None and match(rel + "/" if is_dir else rel):
                continue
            if is_dir:
                if item.is_symlink() and not is_inside(item.path, root):
                    problems.append((item.path, FailureKind.UNSAFE_PATH, "link leads out of the library; not followed"))
                    continue
                subdirs.append(item.path)
            elif classify(item.name) is not None:
                files.append(item)
        stack.extend(reversed(subdirs))
        yield directory, files


def _group(
    directory: str, root: str, files: list[os.DirEntry[str]], problems: list[tuple[str, FailureKind, str]]
) -> list[Entry]:
    """The entries of one directory."""
    by_stem: dict[str, Entry] = {}
    for item in files:
        kind, stem = classify(item.name) or ("", "")
        entry = by_stem.get(stem)
        if entry is None:
            entry = by_stem[stem] = Entry(directory, stem)
        if item.is_symlink() and not is_inside(item.path, root):
            entry.unsafe.append((item.name, "link leads out of the library"))
            continue
        if kind == "preview":
            entry.previews.append(item.name)
            continue
        try:
            st = item.stat()
        except OSError as exc:
            problems.append((item.path, FailureKind.UNREADABLE, f"cannot stat: {exc.strerror}"))
            continue
        if not statmod.S_ISREG(st.st_mode):
            continue
        target = entry.models if kind == "model" else entry.sidecars
        target.append(FileStat(item.name, st.st_size, st.st_mtime_ns))
    lonely = tuple(e.model for e in by_stem.values() if e.model and not e.sidecars)
    result = []
    for entry in by_stem.values():
        if entry.models or entry.sidecars or entry.unsafe:
            if not entry.models and entry.sidecars:
                entry.neighbours = lonely  # type: ignore[assignment]
            result.append(entry)
    return result

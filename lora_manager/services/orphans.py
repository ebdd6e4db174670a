"""Orphans: model files with no metadata sidecar, and sidecars whose model file is missing.

Reads the library, never writes it. The catalog serves as a cache: an entry whose stored
signature still matches is classified by what the last import found, without opening it;
other entries are read as an import would read them (sidecars only, and the header of an
orphan model file to say what it is).
"""

from __future__ import annotations

import os
import stat as statmod
from dataclasses import dataclass

from sqlalchemy import Engine

from lora_manager.db import directories
from lora_manager.db import repository as repo
from lora_manager.discovery import walk, walk_directory
from lora_manager.entries import Entry, signed_files
from lora_manager.errors import FailureKind, SidecarError
from lora_manager.ignore import load_ignore
from lora_manager.paths import resolve_root
from lora_manager.safetensors import read_header, top_tags
from lora_manager.services.reading import read_entry


@dataclass
class Orphan:
    """One finding: ``kind`` is ``model`` (no sidecar) or ``sidecar`` (no model file)."""

    kind: str
    path: str
    size: int | None = None
    output_name: str | None = None
    base_model: str | None = None
    tags: list[str] | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def find_orphans(
    engine: Engine | None,
    roots: list[str],
    ignore: list[str] | None = None,
    problems: list[tuple[str, str, str]] | None = None,
) -> list[Orphan]:
    """Every orphan under ``roots``, in path order; what the walk could not look at goes to
    ``problems`` as ``(path, kind, message)`` (a folder that cannot be listed hides its orphans).

    A folder whose fingerprint is the one the last import stored is not grouped at all: its
    orphans are the entries that import found orphaned or without a model, taken from the
    catalog (each path is checked on disk, and a folder where one does not match is looked
    at in full). Other folders are grouped and compared entry by entry, as before.
    """
    found: list[Orphan] = []
    for root in map(resolve_root, roots):
        rules = load_ignore(root, ignore or [])
        if engine is None:
            result = walk(root, rules)
            _note(result.problems, problems)
            found += _from_entries(root, result.entries, {})
            continue
        with engine.connect() as conn:
            known = {path: fp for path, (fp, _) in directories.load_directories(conn, root).items() if fp}
            result = walk(root, rules, known)
            _note(result.problems, problems)
            stored = repo.load_entries_by_key(conn, [e.key for e in result.entries])
            clean = set(result.clean)
            flagged = [s for s in repo.load_entries_with_status(conn, root, FLAGGED) if os.path.dirname(s.key) in clean]
            recheck: set[str] = set()
            for s in flagged:
                from_catalog = _from_stored(s, root)
                if from_catalog is None:
                    recheck.add(os.path.dirname(s.key))
                else:
                    found += from_catalog
            if recheck:  # a folder where the catalog could not be trusted is looked at itself
                entries = [e for d in sorted(recheck) for e in walk_directory(root, d, rules)]
                found = [o for o in found if os.path.dirname(o.path) not in recheck]
                found += _from_entries(root, entries, repo.load_entries_by_key(conn, [e.key for e in entries]))
            borrowed = repo.borrowed_model_files(conn, root)
        found += _from_entries(root, result.entries, stored)
        if borrowed:  # named by another stem's sidecar: a record stands on it, so it is no orphan
            found = [o for o in found if not (o.kind == "model" and o.path in borrowed)]
    found.sort(key=lambda o: o.path)
    return found


def _note(found: list[tuple[str, FailureKind, str]], problems: list[tuple[str, str, str]] | None) -> None:
    if problems is not None:
        problems.extend((path, kind.value, message) for path, kind, message in found)


FLAGGED = ("orphan", "failed")  # the statuses an orphan entry is stored with


def _from_entries(root: str, entries: list[Entry], stored: dict[str, repo.StoredEntry]) -> list[Orphan]:
    """The orphans among grouped entries: a stored status is used while the entry's files are unchanged."""
    found: list[Orphan] = []
    for entry in entries:
        known = stored.get(entry.key)
        status = known.status if known and known.signature == entry.signature else None
        missing_model = False
        if status is None:
            result = read_entry(entry, root)
            status = result.status
            missing_model = any(p.kind == FailureKind.MODEL_MISSING.value for p in result.problems)
        elif status == "failed":
            missing_model = entry.model is None
        model = entry.model
        if status == "orphan" and model is not None:
            found.append(_model_orphan(entry.path(model.name), model.size, root))
        elif missing_model:
            found += [_sidecar_orphan(entry.path(f.name), f.size, entry.stem) for f in entry.sidecars]
    return found


def _from_stored(s: repo.StoredEntry, root: str) -> list[Orphan] | None:
    """The orphans of an unchanged entry, from what the catalog stored; None if that cannot be trusted.

    The files are read back from the stored signature (``m:name:size:mtime|s:...``). A name
    holding ``|`` could make it read wrongly, so every file it names must be on disk with
    that size, or the caller looks at the folder itself.
    """
    directory, _, stem = s.key.rpartition(os.sep)
    files: dict[str, list[tuple[str, int]]] = {"m": [], "s": []}
    for kind, name, size_text, mtime_text in signed_files(s.signature):
        if kind not in files:
            continue
        if not (size_text.isdigit() and mtime_text.lstrip("-").isdigit()):
            return None
        files[kind].append((name, int(size_text)))
    if s.status == "orphan":
        model = next(((n, size) for n, size in files["m"] if s.model_path == directory + os.sep + n), None)
        if s.model_path is None or model is None or not _on_disk(s.model_path, model[1]):
            return None
        return [_model_orphan(s.model_path, model[1], root)]
    if files["m"]:
        return []  # failed for another reason than a missing model
    sidecars = [(directory + os.sep + n, size) for n, size in files["s"]]
    if not all(_on_disk(path, size) for path, size in sidecars):
        return None
    return [_sidecar_orphan(path, size, stem) for path, size in sidecars]


def _on_disk(path: str, size: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return statmod.S_ISREG(st.st_mode) and st.st_size == size


def _sidecar_orphan(path: str, size: int, stem: str) -> Orphan:
    return Orphan("sidecar", path, size, detail=f"no model file named {stem}.* beside it")


def _model_orphan(path: str, size: int, root: str) -> Orphan:
    """A model file without metadata, with what its own header says about it (read only inside ``root``)."""
    orphan = Orphan("model", path, size, detail="no metadata sidecar")
    if path.lower().endswith(".safetensors"):
        try:
            header = read_header(path, size, inside=root)
        except SidecarError as exc:
            orphan.detail += f"; {exc.message}"
        else:
            orphan.output_name = header.output_name or header.title
            orphan.base_model = header.base_model
            try:
                orphan.tags = top_tags(header.metadata.get("ss_tag_frequency")) or None
            except Exception as exc:  # one odd tag list must not end the listing of every orphan
                orphan.detail += f"; its training tags could not be read ({type(exc).__name__})"
    else:
        orphan.detail += f"; {os.path.splitext(path)[1]} files are never opened (pickles)"
    return orphan

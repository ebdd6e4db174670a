"""Orphans: model files with no metadata sidecar, and sidecars whose model file is missing.

Reads the library, never writes it. The catalog serves as a cache: an entry whose stored
signature still matches is classified by what the last import found, without opening it;
other entries are read as an import would read them (sidecars only, and the header of an
orphan model file to say what it is).
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from lora_manager.db import directories
from lora_manager.db import repository as repo
from lora_manager.discovery import walk, walk_directory
from lora_manager.entries import LINKED_OUT, Entry, classify, signed_files, signed_links_out
from lora_manager.errors import FailureKind, SidecarError
from lora_manager.ignore import load_ignore
from lora_manager.paths import is_inside, resolve_root
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


Problem = tuple[str, str, str]  # (path, category, message), as ``lora errors`` shows one


def find_orphans(
    engine: Engine | None,
    roots: list[str],
    ignore: list[str] | None = None,
    problems: list[Problem] | None = None,
) -> list[Orphan]:
    """Every orphan under ``roots``, in path order; what could not be looked at goes to
    ``problems`` as ``(path, kind, message)``: what the walk could not list (a folder that cannot
    be listed hides its orphans), then each file refused as a link out of the library (a
    sidecar refused so may leave its model file an orphan).

    A folder whose fingerprint is the one the last import stored is not grouped at all: its
    orphans are the entries that import found orphaned or without a model, and its links out
    those of the entries whose signature records one, taken from the catalog (each path is
    checked on disk, and a folder where one does not match is looked at in full). Other
    folders are grouped and compared entry by entry, as before.
    """
    found: list[Orphan] = []
    for root in map(resolve_root, roots):
        rules = load_ignore(root, ignore or [])
        links: list[Problem] = []
        if engine is None:
            result = walk(root, rules)
            _note(result.problems, problems)
            found += _from_entries(root, result.entries, {}, links)
            _note_links(links, problems)
            continue
        with engine.connect() as conn:
            known = {path: fp for path, (fp, _) in directories.load_directories(conn, root).items() if fp}
            result = walk(root, rules, known)
            _note(result.problems, problems)
            stored = repo.load_entries_by_key(conn, [e.key for e in result.entries])
            clean = set(result.clean)
            flagged = [
                s
                for s in repo.load_entries_with_status(conn, root, FLAGGED, links_out=True)
                if os.path.dirname(s.key) in clean
            ]
            recheck: set[str] = set()
            for s in flagged:
                from_catalog = _from_stored(s, root)
                if from_catalog is None:
                    recheck.add(os.path.dirname(s.key))
                else:
                    found += from_catalog[0]
                    links += from_catalog[1]
            if recheck:  # a folder where the catalog could not be trusted is looked at itself
                entries = [e for d in sorted(recheck) for e in walk_directory(root, d, rules)]
                found = [o for o in found if os.path.dirname(o.path) not in recheck]
                links = [p for p in links if os.path.dirname(p[0]) not in recheck]
                stored_there = repo.load_entries_by_key(conn, [e.key for e in entries])
                found += _from_entries(root, entries, stored_there, links)
            borrowed = repo.borrowed_model_files(conn, root)
        found += _from_entries(root, result.entries, stored, links)
        _note_links(links, problems)
        if borrowed:  # named by another stem's sidecar: a record stands on it, so it is no orphan
            found = [o for o in found if not (o.kind == "model" and o.path in borrowed)]
    found.sort(key=lambda o: o.path)
    return found


def _note(found: list[tuple[str, FailureKind, str]], problems: list[Problem] | None) -> None:
    if problems is not None:
        problems.extend((path, kind.value, message) for path, kind, message in found)


def _note_links(links: list[Problem], problems: list[Problem] | None) -> None:
    if problems is not None:
        problems.extend(sorted(set(links)))


FLAGGED = ("orphan", "failed")  # the statuses an orphan entry is stored with
_UNSAFE = FailureKind.UNSAFE_PATH.value


def _from_entries(
    root: str, entries: list[Entry], stored: dict[str, repo.StoredEntry], links: list[Problem]
) -> list[Orphan]:
    """The orphans among grouped entries: a stored status is used while the entry's files are unchanged.

    Each file refused as a link out of the library goes to ``links``: the walk's, and one that
    reading found swapped for such a link since.
    """
    found: list[Orphan] = []
    for entry in entries:
        links += [(entry.path(name), _UNSAFE, message) for name, message in entry.unsafe]
        known = stored.get(entry.key)
        status = known.status if known and known.signature == entry.signature else None
        missing_model = False
        if status is None:
            result = read_entry(entry, root)
            status = result.status
            missing_model = any(p.kind == FailureKind.MODEL_MISSING.value for p in result.problems)
            links += [(p.path, p.kind, LINKED_OUT) for p in result.problems if p.kind == _UNSAFE]
        elif status == "failed":
            missing_model = entry.model is None
        model = entry.model
        if status == "orphan" and model is not None:
            refused = [name for name, _ in entry.unsafe]
            found.append(_model_orphan(entry.path(model.name), model.size, root, refused))
        elif missing_model:
            found += [_sidecar_orphan(entry.path(f.name), f.size, entry.stem) for f in entry.sidecars]
    return found


def _from_stored(s: repo.StoredEntry, root: str) -> tuple[list[Orphan], list[Problem]] | None:
    """The orphans and the links out of the library of an unchanged entry, from what the catalog
    stored; None if that cannot be trusted.

    The files are read back from the stored signature (``m:name:size:mtime|s:...|u:name``). A
    name holding ``|`` could make it read wrongly, so every file it names must be on disk with
    that size (a link out: still a link out), or the caller looks at the folder itself.
    """
    directory, _, stem = s.key.rpartition(os.sep)
    refused = signed_links_out(s.signature)
    links = [(directory + os.sep + name, _UNSAFE, LINKED_OUT) for name in refused]
    if not all(os.path.islink(path) and not is_inside(path, root) for path, _, _ in links):
        return None
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
        return [_model_orphan(s.model_path, model[1], root, refused)], links
    if s.status != "failed" or files["m"]:
        return [], links  # no orphan: failed for another reason than a missing model, or not failed
    sidecars = [(directory + os.sep + n, size) for n, size in files["s"]]
    if not all(_on_disk(path, size) for path, size in sidecars):
        return None
    return [_sidecar_orphan(path, size, stem) for path, size in sidecars], links


def _on_disk(path: str, size: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return statmod.S_ISREG(st.st_mode) and st.st_size == size


def _sidecar_orphan(path: str, size: int, stem: str) -> Orphan:
    return Orphan("sidecar", path, size, detail=f"no model file named {stem}.* beside it")


def _model_orphan(path: str, size: int, root: str, refused: Sequence[str] = ()) -> Orphan:
    """A model file without metadata, with what its own header says about it (read only inside ``root``),
    and its sidecars among ``refused`` (its entry's files refused as links out of the library)."""
    orphan = Orphan("model", path, size, detail="no metadata sidecar")
    for name in refused:
        if (classify(name) or ("",))[0] == "sidecar":
            orphan.detail += f"; {name} is a link leading out of the library, not followed"
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

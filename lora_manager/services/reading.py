"""Read one library entry: its sidecars, its model file's header, merged into a record.

This is the per-entry work of an import, free of the database so that it can run in a
worker process. Every failure becomes a :class:`FileProblem`; nothing here raises.
"""

from __future__ import annotations

import os
from itertools import chain

from lora_manager.db.rows import fields_row
from lora_manager.entries import Entry, FileStat
from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import FileProblem, HeaderInfo, SidecarInfo, SidecarRef
from lora_manager.mtimes import settled_before, wait_until_settled
from lora_manager.parsing.base import ParseContext, safe_file_name
from lora_manager.parsing.merge import merged_fields
from lora_manager.parsing.registry import parse_sidecar
from lora_manager.paths import LINK_OUT, LeadsOut, is_inside, open_regular
from lora_manager.safetensors import read_header
from lora_manager.services.import_report import DEFAULT_MAX_SIDECAR_BYTES
from lora_manager.services.results import EntryResult

__all__ = ["EntryResult", "read_entry"]

# A Civitai response's pick of its file by SHA256 needs the other sidecars' claims first: a
# version file's, those of the sidecars that hashed the file here; then a model response's,
# those and the version file's. (dialect, the dialects whose claims do not guide it)
_CLAIMS_FOR = (("civitai_version", ("civitai_version", "civitai_model")), ("civitai_model", ("civitai_model",)))


def read_entry(entry: Entry, root: str, max_sidecar_bytes: int = DEFAULT_MAX_SIDECAR_BYTES) -> EntryResult:
    """Parse and merge ``entry``; problems are collected, never raised.

    Whatever a file holds, an error it causes costs that entry alone: anything unforeseen
    (a bug meeting a file nobody imagined) becomes a failure that names the entry's files.
    """
    try:
        return _read_entry(entry, root, max_sidecar_bytes)
    except Exception as exc:
        result = EntryResult(entry.key, entry.signature, "failed")
        _note_model(result, entry, entry.model)
        files = [f.name for f in (*entry.sidecars, *entry.models)] or [entry.stem]
        message = f"could not be read ({type(exc).__name__}: {str(exc)[:200]}); please report this file"
        result.problems = [
            FileProblem(path=entry.path(files[0]), kind=FailureKind.INVALID_METADATA.value, message=message)
        ]
        return result


def _read_entry(entry: Entry, root: str, max_sidecar_bytes: int) -> EntryResult:
    # The walk took the signature already: a file written again in the tick of its mtime
    # (which keeps it) is read as it is after that write (see ``mtimes``).
    recent = entry.neighbours.mtimes_since(settled_before())
    wait_until_settled(chain((f.mtime_ns for f in (*entry.sidecars, *entry.models)), recent))
    result = EntryResult(entry.key, entry.signature, "failed")
    _note_model(result, entry, entry.model)
    result.problems = [
        FileProblem(path=entry.path(n), kind=FailureKind.UNSAFE_PATH.value, message=m) for n, m in entry.unsafe
    ]
    model = entry.model
    if not entry.sidecars:
        result.status = "orphan" if model else "failed"
        return result
    parsed, refs = _parse_sidecars(entry, model.name if model else None, max_sidecar_bytes, result.problems, root)
    if not parsed:
        noise_only = all(p.kind == FailureKind.NOT_METADATA.value for p in result.problems)
        result.status = ("orphan" if model else "skipped") if noise_only else "failed"
        return result
    if model is None:
        model = _model_named_by(entry, parsed, root)
        _note_model(result, entry, model)
    if model is None:
        named = {s.primary_file_name for s in parsed if s.primary_file_name}
        names = ", ".join([entry.stem + ".*", *sorted(n for n in named if os.path.splitext(n)[0] != entry.stem)])
        result.problems.append(
            FileProblem(
                path=refs[0].path,
                kind=FailureKind.MODEL_MISSING.value,
                message=f"no model file beside it (looked for {names} in {entry.directory})",
            )
        )
        return result
    model_path = entry.path(model.name)
    header = _header(model_path, model.size, result.problems, root)
    preview = min(entry.previews, key=lambda n: (".preview." not in n.lower(), n)) if entry.previews else None
    result.row = fields_row(
        merged_fields(parsed, refs, model_path, entry.stem, header, entry.path(preview) if preview else None)
    )
    result.status = "ok"
    return result


def _note_model(result: EntryResult, entry: Entry, model: FileStat | None) -> None:
    if model is not None:
        result.model_path = entry.path(model.name)
        result.model_size, result.model_mtime_ns = model.size, model.mtime_ns


def _parse_sidecars(
    entry: Entry, model_name: str | None, max_bytes: int, problems: list[FileProblem], root: str
) -> tuple[list[SidecarInfo], list[SidecarRef]]:
    """Every usable sidecar of ``entry``, parsed; the others become problems."""
    raw_by_name: list[tuple[str, bytes, int, int]] = []
    for f in entry.sidecars:
        path = entry.path(f.name)
        if f.size > max_bytes:
            problems.append(
                FileProblem(
                    path=path,
                    kind=FailureKind.TOO_LARGE.value,
                    message=f"{f.size} bytes is over the sidecar limit of {max_bytes}",
                )
            )
            continue
        try:
            with open_regular(path, inside=root) as fh:
                # Asked for its size as the walk saw it (and a byte more): asked for the limit, the read
                # allocated a buffer of the limit (32 MiB by default, an mmap and munmap a sidecar).
                raw = fh.read(f.size + 1)
                if len(raw) > f.size:  # it grew since the walk: read on, up to the limit
                    raw += fh.read(max_bytes + 1 - len(raw))
        except LeadsOut:  # swapped for a link out of the library since the walk
            problems.append(FileProblem(path=path, kind=FailureKind.UNSAFE_PATH.value, message=LINK_OUT))
            continue
        except OSError as exc:
            problems.append(
                FileProblem(path=path, kind=FailureKind.UNREADABLE.value, message=f"cannot read: {exc.strerror}")
            )
            continue
        if len(raw) > max_bytes:  # it grew since the walk
            problems.append(
                FileProblem(
                    path=path, kind=FailureKind.TOO_LARGE.value, message=f"over the sidecar limit of {max_bytes} bytes"
                )
            )
            continue
        raw_by_name.append((f.name, raw, f.size, f.mtime_ns))
    parsed: list[SidecarInfo] = []
    refs: list[SidecarRef] = []
    for name, raw, size, mtime_ns in raw_by_name:
        info = _parse_one(entry.path(name), entry.stem, name, raw, model_name, frozenset(), problems)
        if info is not None:
            parsed.append(info)
            refs.append(SidecarRef(path=entry.path(name), dialect=info.dialect, size=size, mtime_ns=mtime_ns))
    # A Civitai response picks its file by file name, else by a SHA256 another sidecar claims
    # (a model response its version, then by a version id another sidecar names): parse it
    # again, with those claims, when its first pick disagrees with them.
    for dialect, unguided in _CLAIMS_FOR:
        guides = [s for s in parsed if s.dialect not in unguided]
        claims = frozenset(s.hashes["sha256"] for s in guides if "sha256" in s.hashes)
        ids = (
            frozenset(s.civitai_version_id for s in guides if s.civitai_version_id is not None)
            if dialect == "civitai_model"  # a version response is one version: no id to pick by
            else frozenset()
        )
        for i, info in enumerate(parsed):
            if info.dialect != dialect:
                continue
            if (claims and info.hashes.get("sha256") not in claims) or (ids and info.civitai_version_id not in ids):
                raw = next(r for n, r, _, _ in raw_by_name if entry.path(n) == info.path)
                again = _parse_one(info.path, entry.stem, "", raw, model_name, claims, [], ids)
                parsed[i] = again or info
    refs.sort(key=lambda r: r.path)
    return parsed, refs


def _parse_one(
    path: str,
    stem: str,
    name: str,
    raw: bytes,
    model_name: str | None,
    claims: frozenset[str],
    problems: list[FileProblem],
    version_ids: frozenset[int] = frozenset(),
) -> SidecarInfo | None:
    """Parse one sidecar; a failure becomes a problem."""
    ctx = ParseContext(
        path=path, stem=stem, model_file_name=model_name, known_sha256=claims, known_version_ids=version_ids
    )
    try:
        return parse_sidecar(raw, name or os.path.basename(path), ctx)
    except SidecarError as exc:
        problems.append(FileProblem(path=path, kind=exc.kind.value, message=exc.message))
        return None


def _model_named_by(entry: Entry, parsed: list[SidecarInfo], root: str) -> FileStat | None:
    """A sidecar-less model file in the same directory that a sidecar names as its file."""
    by_name = entry.neighbours.by_name()
    for info in parsed:
        name = safe_file_name(info.primary_file_name)
        if name and name.lower() in by_name and is_inside(entry.path(name), root):
            return by_name[name.lower()]
    return None


def _header(model_path: str, size: int, problems: list[FileProblem], root: str) -> HeaderInfo | None:
    """The safetensors header, or None for other formats (pickles are never opened)."""
    if not model_path.lower().endswith(".safetensors"):
        return None
    try:
        return read_header(model_path, size, inside=root)
    except SidecarError as exc:
        problems.append(FileProblem(path=model_path, kind=exc.kind.value, message=exc.message))
        return None

"""Orphans: model files with no metadata sidecar, and sidecars whose model file is missing.

Reads the library, never writes it. The catalog serves as a cache: an entry whose stored
signature still matches is classified by what the last import found, without opening it;
other entries are read as an import would read them (sidecars only, and the header of an
orphan model file to say what it is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine

from lora_manager.db import repository as repo
from lora_manager.discovery import load_ignore, resolve_root, walk
from lora_manager.errors import FailureKind, SidecarError
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


def find_orphans(engine: Engine | None, roots: list[str], ignore: list[str] | None = None) -> list[Orphan]:
    """Every orphan under ``roots``, in path order."""
    found: list[Orphan] = []
    for root in map(resolve_root, roots):
        stored: dict[str, repo.StoredEntry] = {}
        if engine is not None:
            with engine.connect() as conn:
                stored = repo.load_entries(conn, root)
        for entry in walk(root, load_ignore(root, ignore or [])).entries:
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
                found.append(_model_orphan(entry.path(model.name), model.size))
            elif missing_model:
                for sidecar in entry.sidecars:
                    found.append(
                        Orphan(
                            "sidecar",
                            entry.path(sidecar.name),
                            sidecar.size,
                            detail=f"no model file named {entry.stem}.* beside it",
                        )
                    )
    found.sort(key=lambda o: o.path)
    return found


def _model_orphan(path: str, size: int) -> Orphan:
    """A model file without metadata, with what its own header says about it."""
    orphan = Orphan("model", path, size, detail="no metadata sidecar")
    if path.lower().endswith(".safetensors"):
        try:
            header = read_header(path, size)
        except SidecarError as exc:
            orphan.detail += f"; {exc.message}"
        else:
            orphan.output_name = header.output_name or header.title
            orphan.base_model = header.base_model
            orphan.tags = top_tags(header.metadata.get("ss_tag_frequency")) or None
    else:
        orphan.detail += f"; {os.path.splitext(path)[1]} files are never opened (pickles)"
    return orphan

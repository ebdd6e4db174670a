"""Builders that write real library files: safetensors models and sidecars of every dialect."""

from __future__ import annotations

import json
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

# What can stand at a model file's path without being a file the walk pairs (``discovery._group``
# takes regular files only). A device node needs root (CAP_MKNOD): its tests skip without it.
NOT_REGULAR = ("fifo", "char-device", "folder")


def write_safetensors(path: Path, metadata: dict[str, str] | None = None, tensor_bytes: int = 64) -> Path:
    """A valid safetensors file: u64 header length, JSON header (8-byte aligned), tensor data."""
    header: dict[str, Any] = {
        "lora_down.weight": {"dtype": "F16", "shape": [tensor_bytes // 2], "data_offsets": [0, tensor_bytes]}
    }
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        struct.pack("<Q", len(raw)) + raw + bytes(range(256)) * (tensor_bytes // 256) + bytes(tensor_bytes % 256)
    )
    return path


def civitai_model(
    name: str,
    version: str = "v1.0",
    file_name: str | None = None,
    tags: list[str] | None = None,
    author: str = "stargazer",
    sha256: str | None = None,
    trained_words: list[str] | None = None,
    base_model: str = "SDXL 1.0",
    extra_versions: list[str] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A Civitai ``/api/v1/models/{id}`` response describing one local file."""

    def version_obj(vname: str, fname: str | None, digest: str | None) -> dict[str, Any]:
        files = [
            {
                "name": fname,
                "sizeKB": 1.5,
                "primary": True,
                "type": "Model",
                "hashes": {"SHA256": digest.upper()} if digest else {},
                "downloadUrl": f"https://civitai.example/api/download/models/{zlib.crc32(vname.encode()) % 10000}",
            }
        ]
        return {
            "id": zlib.crc32(f"{name}/{vname}".encode()) % 100000,
            "name": vname,
            "publishedAt": "2024-05-01T12:00:00Z",
            "baseModel": base_model,
            "trainedWords": trained_words or [],
            "files": files if fname else [],
        }

    versions = [version_obj(version, file_name, sha256)]
    for other in extra_versions or []:
        versions.append(version_obj(other, f"{other}.safetensors", None))
    return {
        "id": 1234,
        "name": name,
        "description": f"<p>{name}</p>",
        "type": "LORA",
        "tags": tags or [],
        "creator": {"username": author},
        "modelVersions": versions,
        "stats": {"downloadCount": 10},
        **top,
    }


def civitai_version(
    model_name: str,
    version: str = "v1.0",
    file_name: str | None = None,
    sha256: str | None = None,
    trained_words: list[str] | None = None,
    base_model: str = "SD 1.5",
) -> dict[str, Any]:
    """A Civitai ``/api/v1/model-versions/{id}`` response, as Civitai Helper saves it."""
    return {
        "id": 5678,
        "modelId": 1234,
        "name": version,
        "baseModel": base_model,
        "trainedWords": trained_words or [],
        "model": {"name": model_name, "type": "LORA"},
        "files": [{"name": file_name, "primary": True, "hashes": {"SHA256": sha256.upper()} if sha256 else {}}]
        if file_name
        else [],
    }


def a1111(activation_text: str = "", weight: float = 0, notes: str = "", description: str = "") -> dict[str, Any]:
    """A1111's extra-networks user metadata."""
    return {
        "description": description,
        "sd version": "SDXL",
        "activation text": activation_text,
        "preferred weight": weight,
        "negative text": "",
        "notes": notes,
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_model(
    folder: Path,
    stem: str,
    sidecar: dict[str, Any] | None = None,
    suffix: str = ".json",
    metadata: dict[str, str] | None = None,
) -> Path:
    """A model file ``stem.safetensors`` and, optionally, one sidecar beside it; returns the model path."""
    model = write_safetensors(
        folder / f"{stem}.safetensors",
        metadata if metadata is not None else {"ss_output_name": stem, "ss_base_model_version": "sdxl_base_v1-0"},
    )
    if sidecar is not None:
        write_json(folder / f"{stem}{suffix}", sidecar)
    return model


def replace_with_not_regular(path: Path, kind: str) -> Path:
    """Put a FIFO, a character device (``/dev/null``'s numbers) or a folder where the file ``path`` was."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "char-device":
        try:
            os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("a device node needs root (CAP_MKNOD)")
    else:
        path.mkdir()
    return path

"""Read a safetensors file's header, and only its header.

The format is an 8-byte little-endian length, then that many bytes of JSON, then tensor
data. We read the length and the JSON, bounded, and never touch the tensors; ``.pt``,
``.ckpt`` and ``.bin`` files are pickles and are never opened at all.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import HeaderInfo
from lora_manager.parsing.base import TooManyValues, as_float, decode_json
from lora_manager.parsing.base_models import OTHER, from_header
from lora_manager.paths import LINK_OUT, LeadsOut, open_regular

MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_VALUE_CHARS = 64 * 1024  # longer metadata values (embedded images, huge tag lists) are dropped
DROPPED_KEYS = frozenset({"ssmd_cover_images", "modelspec.thumbnail"})
EMPTY_AUTOV3 = "e3b0c44298fc"  # the SHA256 of nothing: a placeholder some trainers write


def read_header(path: str, file_size: int | None = None, *, inside: str | None = None) -> HeaderInfo:
    """The header of the safetensors file at ``path``; raises :class:`SidecarError` if it is not one.

    With ``inside`` (the library's real root), a file that is really elsewhere (a link out,
    swapped in since the walk) is refused unread, as ``unsafe_path``.
    """
    try:
        with open_regular(path, inside=inside) as f:
            head = f.read(65536)
            if len(head) < 8:
                raise SidecarError(FailureKind.BAD_HEADER, "safetensors file shorter than its 8-byte header length")
            (length,) = struct.unpack("<Q", head[:8])
            size = file_size if file_size is not None else f.seek(0, 2)
            if length > MAX_HEADER_BYTES:
                raise SidecarError(
                    FailureKind.TOO_LARGE, f"safetensors header claims {length} bytes (limit {MAX_HEADER_BYTES})"
                )
            if length + 8 > size:
                raise SidecarError(FailureKind.BAD_HEADER, f"header length {length} exceeds the file size {size}")
            raw: bytes | bytearray = head[8 : 8 + length]
            if len(raw) < length:  # one buffer of the header's size, filled in place: never two copies
                start, raw = len(raw), bytearray(length)
                raw[:start] = head[8:]
                f.seek(8 + start)
                got = start
                while got < length and (n := f.readinto(memoryview(raw)[got:])):
                    got += n
                del raw[got:]
    except LeadsOut:
        raise SidecarError(FailureKind.UNSAFE_PATH, LINK_OUT) from None
    except OSError as exc:
        raise SidecarError(FailureKind.UNREADABLE, f"cannot read model file: {exc.strerror}") from None
    return parse_header(raw, 8 + length)


def parse_header(raw: bytes | bytearray, tensor_data_offset: int) -> HeaderInfo:
    """Interpret the header's JSON bytes; raises only :class:`SidecarError`.

    Whatever a header holds costs that file alone: anything unforeseen is a bad header, never
    the end of an ``orphans`` or ``hash`` run over the whole library.
    """
    try:
        return _parse_header(raw, tensor_data_offset)
    except SidecarError:
        raise
    except Exception as exc:
        raise SidecarError(
            FailureKind.BAD_HEADER,
            f"safetensors header could not be read ({type(exc).__name__}); please report this file",
        ) from None


def _parse_header(raw: bytes | bytearray, tensor_data_offset: int) -> HeaderInfo:
    try:
        header = decode_json(raw, lambda b: b.decode("utf-8", errors="replace"))
    except TooManyValues as exc:
        raise SidecarError(FailureKind.TOO_LARGE, f"safetensors header {exc}") from None
    except RecursionError:
        raise SidecarError(FailureKind.BAD_HEADER, "safetensors header is nested too deeply") from None
    except ValueError:
        raise SidecarError(FailureKind.BAD_HEADER, "safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise SidecarError(FailureKind.BAD_HEADER, "safetensors header is not a JSON object")
    metadata = _clean_metadata(header.get("__metadata__"))
    return HeaderInfo(
        metadata=metadata,
        title=metadata.get("modelspec.title") or None,
        output_name=metadata.get("ss_output_name") or None,
        base_model=base_model_of(metadata),
        autov3=_autov3(metadata),
        tensor_data_offset=tensor_data_offset,
    )


def _clean_metadata(value: Any) -> dict[str, str]:
    """String metadata without embedded images or runaway values (the spec says strings; some write others)."""
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        key = str(key)
        if key in DROPPED_KEYS:
            continue
        if isinstance(item, str):
            text = item
        else:
            try:
                text = json.dumps(item, ensure_ascii=False, default=str)
            except (RecursionError, ValueError):  # nested past the encoder's depth: dropped like a runaway value
                continue
        if len(text) <= MAX_VALUE_CHARS:
            out[key] = text.replace("\x00", "")
    return out


def base_model_of(metadata: dict[str, str]) -> str | None:
    """Civitai's name for the base model the trainer recorded, if any.

    ModelSpec's architecture first: kohya writes ``ss_base_model_version`` ``"flux1"`` for Flux.1
    dev and schnell alike (and its SD3 model type bare, ``"5-large"``), the architecture tells them apart.
    """
    for key in ("modelspec.architecture", "ss_base_model_version"):
        value = metadata.get(key)
        name = from_header(value) if value else None
        if name is not None and name != OTHER:
            return name
    if metadata.get("ss_v2") == "True":
        return "SD 2.1"
    return None


def top_tags(tag_frequency: str | None, limit: int = 10) -> list[str]:
    """The most frequent training tags from kohya's ``ss_tag_frequency`` (a JSON string)."""
    if not tag_frequency:
        return []
    try:
        data = json.loads(tag_frequency)
    except (ValueError, RecursionError):
        return []
    counts: dict[str, float] = {}
    for folder in data.values() if isinstance(data, dict) else ():
        if isinstance(folder, dict):
            for tag, count in folder.items():
                # A number, finite as a float (a count past a float's range is none).
                number = as_float(count) if isinstance(count, (int, float)) else None
                if number is not None and str(tag).strip():
                    counts[str(tag).strip()] = counts.get(str(tag).strip(), 0.0) + number
    return [tag for tag, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _autov3(metadata: dict[str, str]) -> str | None:
    """Civitai's AutoV3 (first 12 hex of the tensor-data SHA256) when the header records it."""
    for key in ("sshs_model_hash", "modelspec.hash_sha256"):
        value = metadata.get(key, "").strip().lower().removeprefix("0x")
        if len(value) >= 12 and all(c in "0123456789abcdef" for c in value[:12]) and value[:12] != EMPTY_AUTOV3:
            return value[:12]
    return None

"""Which dialect a sidecar is written in, and the one entry point that parses any of them.

Detection looks at content first: a ``NAME.json`` may be Civitai's model response, A1111's
user metadata, or somebody's diffusers ``config.json``. Dialects are tried in an order
where the most specific shapes come first.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import SidecarInfo
from lora_manager.parsing.a1111 import A1111
from lora_manager.parsing.base import (
    MAX_JSON_VALUES,
    Dialect,
    ParseContext,
    int_or_digits,
    too_many_values,
    without_surrogates,
)
from lora_manager.parsing.civitai_model import CivitaiModel
from lora_manager.parsing.civitai_version import CivitaiVersion
from lora_manager.parsing.lora_manager import LoraManager
from lora_manager.parsing.stability_matrix import StabilityMatrix

DIALECTS: tuple[Dialect, ...] = (LoraManager(), StabilityMatrix(), CivitaiModel(), CivitaiVersion(), A1111())
DIALECT_NAMES = tuple(d.name for d in DIALECTS)


def load_json(raw: bytes) -> Any:
    """Decode a sidecar's bytes: UTF-8 (a BOM allowed), else UTF-16 with a BOM, else Latin-1.

    orjson is fast and strict; Python's decoder is the fallback for what real tools write
    that orjson refuses (NaN, Infinity). Nesting too deep for either is invalid JSON; a file
    of more values than :data:`MAX_JSON_VALUES` is refused before it is decoded.
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if too_many_values(raw):
        raise SidecarError(
            FailureKind.TOO_LARGE, f"holds more than {MAX_JSON_VALUES:,} JSON values (too many to decode safely)"
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    text: str
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = raw.decode("utf-16", errors="replace")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    try:
        return without_surrogates(json.loads(text, parse_int=int_or_digits))
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SidecarError(FailureKind.INVALID_JSON, f"not valid JSON: {reason}{where}") from None


def identify(data: Any, file_name: str) -> Dialect | None:
    """The dialect ``data`` is written in, or None for JSON that is no LoRA metadata."""
    for dialect in DIALECTS:
        if dialect.detect(data, file_name):
            return dialect
    return None


def parse_sidecar(raw: bytes, file_name: str, ctx: ParseContext) -> SidecarInfo:
    """Parse one sidecar's bytes; raises only :class:`SidecarError`, with a category."""
    data = load_json(raw)
    try:
        dialect = identify(data, file_name)
    except Exception as exc:  # a detector bug must cost one file, never the run
        raise SidecarError(FailureKind.INVALID_METADATA, f"cannot tell the dialect: {type(exc).__name__}") from None
    if dialect is None:
        shape = (
            type(data).__name__
            if not isinstance(data, dict)
            else "object with keys " + ", ".join(sorted(map(str, data))[:5])
        )
        raise SidecarError(FailureKind.NOT_METADATA, f"JSON is no LoRA metadata ({shape})")
    try:
        return dialect.parse(data, ctx)
    except SidecarError:
        raise
    except Exception as exc:  # a dialect bug must cost one file, never the run
        raise SidecarError(
            FailureKind.INVALID_METADATA, f"{dialect.name} sidecar has unusable values: {type(exc).__name__}: {exc}"
        ) from None

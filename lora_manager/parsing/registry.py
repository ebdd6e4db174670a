"""Which dialect a sidecar is written in, and the one entry point that parses any of them.

Detection looks at content first: a ``NAME.json`` may be Civitai's model response, A1111's
user metadata, or somebody's diffusers ``config.json``. Dialects are tried in an order
where the most specific shapes come first.
"""

from __future__ import annotations

import json
from typing import Any

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import SidecarInfo
from lora_manager.parsing.a1111 import A1111
from lora_manager.parsing.base import Dialect, ParseContext, TooManyValues, decode_json
from lora_manager.parsing.civitai_model import CivitaiModel
from lora_manager.parsing.civitai_version import CivitaiVersion
from lora_manager.parsing.lora_manager import LoraManager
from lora_manager.parsing.stability_matrix import StabilityMatrix

DIALECTS: tuple[Dialect, ...] = (LoraManager(), StabilityMatrix(), CivitaiModel(), CivitaiVersion(), A1111())
DIALECT_NAMES = tuple(d.name for d in DIALECTS)


def load_json(raw: bytes) -> Any:
    """Decode a sidecar's bytes (:func:`~lora_manager.parsing.base.decode_json`): UTF-8 (a BOM
    allowed), else UTF-16 with a BOM, else Windows-1252. Nesting too deep is invalid JSON; a file
    of more values than :data:`MAX_JSON_VALUES` is refused before it is decoded."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return decode_json(raw, _sidecar_text)
    except TooManyValues as exc:
        raise SidecarError(FailureKind.TOO_LARGE, f"{exc} (too many to decode safely)") from None
    except (ValueError, RecursionError) as exc:
        # The json module's messages may end in " at" ("Invalid control character at"): the place follows.
        reason = exc.msg.removesuffix(" at") if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise SidecarError(FailureKind.INVALID_JSON, f"not valid JSON: {reason}{where}") from None


def _shape(data: Any) -> str:
    """What a JSON document that is no metadata holds, for its message: a few of its keys, each cut short."""
    if not isinstance(data, dict):
        return type(data).__name__
    if not data:
        return "an empty object"
    keys = sorted(map(str, data))
    shown = ", ".join(k if len(k) <= 40 else k[:40] + "…" for k in keys[:5])
    return f"object with keys {shown}" + (f" and {len(keys) - 5:,} more" if len(keys) > 5 else "")


def _cp1252_over_latin1() -> dict[int, str]:
    """What Windows-1252 makes of the bytes 0x80-0x9F, which Latin-1 decodes as C1 controls.

    Five of them (0x81, 0x8D, 0x8F, 0x90, 0x9D) are undefined in Windows-1252: they stay
    Latin-1's, so no byte fails the file.
    """
    high = range(0x80, 0xA0)
    chars = bytes(high).decode("cp1252", errors="replace")  # one character per byte: a 1-byte codec
    return {byte: char for byte, char in zip(high, chars, strict=True) if char != "\ufffd"}


# A sidecar that is not UTF-8 is most likely one a Windows user edited and saved as "ANSI"
# (Windows-1252): its curly quotes, dashes and euro sign must not become control characters.
_CP1252 = _cp1252_over_latin1()


def _sidecar_text(raw: bytes | bytearray) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps each byte to the code point of its value; the table then turns the
        # 0x80-0x9F controls into Windows-1252's characters (both steps in C: no per-byte loop).
        return raw.decode("latin-1").translate(_CP1252)


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
        raise SidecarError(FailureKind.NOT_METADATA, f"JSON is no LoRA metadata ({_shape(data)})")
    try:
        return dialect.parse(data, ctx)
    except SidecarError:
        raise
    except Exception as exc:  # a dialect bug must cost one file, never the run
        raise SidecarError(
            FailureKind.INVALID_METADATA, f"{dialect.name} sidecar has unusable values: {type(exc).__name__}: {exc}"
        ) from None

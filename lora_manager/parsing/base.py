"""The interface every sidecar dialect implements, and the value coercions they share.

Real sidecars are messy: numbers arrive as strings, lists as comma-separated text, ids as
``"Model not found"``. Dialects read values through these helpers, which return ``None``
for anything unusable instead of raising, so one odd field never loses the whole file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from lora_manager.models import SidecarInfo

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_TEXT = 1_000_000  # characters kept of one text field; longer text is cut, not refused
# JSON values one file may hold (see ``too_many_values``): real sidecars hold thousands, a
# safetensors header with a large training-tag list some hundred thousand.
MAX_JSON_VALUES = 1_000_000


@dataclass(frozen=True)
class ParseContext:
    """What a dialect may know about the sidecar's surroundings (never read from disk here)."""

    path: str = ""
    stem: str = ""
    model_file_name: str | None = None
    # SHA256 values that other sidecars of the same model claim, lowercase (to pick a version).
    known_sha256: frozenset[str] = field(default_factory=frozenset)
    # Civitai version ids that other sidecars of the same model name (to pick a model response's version).
    known_version_ids: frozenset[int] = field(default_factory=frozenset)


class Dialect(Protocol):
    """One sidecar format. ``detect`` looks at content (and the file name as a hint)."""

    name: str

    def detect(self, data: Any, file_name: str) -> bool: ...

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo: ...


def without_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings replaced by U+FFFD.

    Python's JSON decoder accepts escapes such as ``"\\ud800"`` that no database can store;
    an iterative walk, so that deep nesting cannot exhaust the stack.
    """

    def fix(text: str) -> str:
        return _SURROGATE.sub("\ufffd", text)

    if isinstance(value, str):
        return fix(value)
    if not isinstance(value, (dict, list)):
        return value
    root: list[Any] = [value]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):  # items replaced in place: no copy of a long list
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = fix(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
            continue
        for key, item in list(node.items()):
            if isinstance(item, str):
                node[key] = fix(item)
            elif isinstance(item, (dict, list)):
                stack.append(item)
            if isinstance(key, str) and fix(key) != key:
                node[fix(key)] = node.pop(key)
    return root[0]


class TooManyValues(ValueError):
    """JSON with more values than :data:`MAX_JSON_VALUES`: refused before it is decoded."""


def decode_json(raw: bytes | bytearray, as_text: Callable[[bytes | bytearray], str]) -> Any:
    """Sidecar or header JSON: orjson (fast, strict), else Python's decoder on ``as_text(raw)``
    for what real tools write that orjson refuses (NaN, Infinity).

    Raises :class:`TooManyValues` before decoding a file of too many values, ``ValueError``
    for what is no JSON, ``RecursionError`` for nesting too deep for either decoder. Lone
    surrogates become U+FFFD; an integer past Python's digit limit stays its digits.
    """
    if too_many_values(raw):
        raise TooManyValues(f"holds more than {MAX_JSON_VALUES:,} JSON values")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    return without_surrogates(json.loads(as_text(raw), parse_int=_int_or_digits))


def _int_or_digits(digits: str) -> int | str:
    """``parse_int`` for Python's JSON decoder: an integer, or its digits as text past Python's
    limit on converting them (4,300 digits by default), which would otherwise fail the file."""
    try:
        return int(digits)
    except ValueError:
        return digits


def too_many_values(raw: bytes | bytearray, limit: int = MAX_JSON_VALUES) -> bool:
    """Whether the JSON in ``raw`` may hold more than ``limit`` values.

    Decoded, a value costs 50-100 bytes however few bytes it took in the file (``{}``,
    ``1``): a 32 MiB file of them would take gigabytes. Every value past a container's first
    follows a comma and every container opens with a bracket, so their count bounds the values
    (commas inside strings count too: the bound errs on the safe side). A file of fewer than
    ``limit`` bytes holds fewer values than that, so it is not even counted.
    """
    if len(raw) <= limit:
        return False
    return raw.count(b",") + raw.count(b"{") + raw.count(b"[") >= limit


def as_str(value: Any) -> str | None:
    """A non-empty stripped string, or None. Numbers become their text."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return str(value)
    if isinstance(value, str):
        text = value.strip().replace("\x00", "")
        return text[:MAX_TEXT] if text else None
    return None


_INT_TEXT = re.compile(r"-?[0-9]{1,19}", re.ASCII)  # "--7", "7-", "٣" and 10**30 are no ints


def as_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return as_int(int(value))
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return as_int(int(value.strip()))
    return None


def as_id(value: Any) -> int | None:
    """A Civitai id: a positive int, else None (``0``, ``""`` and ``"Model not found"`` are no ids)."""
    number = as_int(value)
    return number if number is not None and number > 0 else None


def as_float(value: Any) -> float | None:
    """A finite float from a number or numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def as_bool(value: Any) -> bool | None:
    """A bool from a bool, 0/1 or "true"/"false"; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_str_list(value: Any, split_commas: bool = False) -> list[str] | None:
    """A list of non-empty strings, de-duplicated in order.

    Accepts a list of strings, a list of ``{"name": ...}`` objects (older Civitai tags) or,
    with ``split_commas``, one comma-separated string. None when the value is absent or
    of no usable shape.
    """
    if value is None:
        return None
    if isinstance(value, str):
        items: list[Any] = value.split(",") if split_commas else [value]
    elif isinstance(value, list):
        items = value
    else:
        return None
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            item = item.get("name")
        text = as_str(item)
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def as_datetime(value: Any) -> datetime | None:
    """An aware datetime (in UTC) from ISO-8601 text (``Z`` allowed) or a Unix timestamp; else None.

    A time that has no UTC equivalent (``0001-01-01T00:00+05:00`` is in year 0 there) is None:
    the catalog stores times in UTC.
    """
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (ValueError, OverflowError):
            return None
    number = as_float(value) if not isinstance(value, str) else None
    if number is not None and 0 < number < 32503680000:  # before year 3000
        return datetime.fromtimestamp(number, tz=UTC)
    return None


def from_mtime_ns(mtime_ns: int) -> datetime | None:
    """A file's mtime as a UTC datetime; None for one no datetime can hold (a file dated year 40,000)."""
    try:
        return datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def as_hash(value: Any, lengths: tuple[int, ...] = (64,)) -> str | None:
    """A lowercase hex digest of one of the given lengths; else None."""
    text = as_str(value)
    if text and len(text) in lengths and _HEX.match(text):
        return text.lower()
    return None


def safe_file_name(value: Any) -> str | None:
    """A bare file name taken from JSON, or None if it could point anywhere else.

    Names with a path separator, ``..``, a drive or NUL are refused: a sidecar's claim is
    never trusted as a path.
    """
    text = as_str(value)
    if not text or text in (".", "..") or len(text) > 255:
        return None
    if "/" in text or "\\" in text or "\x00" in text or ":" in text:
        return None
    return text


def hashes_from(mapping: Any) -> dict[str, str]:
    """Lowercase hashes from a Civitai-style ``hashes`` object (any key case)."""
    lengths = {"sha256": (64,), "autov2": (10,), "autov3": (12,), "autov1": (8,), "blake3": (64,), "crc32": (8,)}
    out: dict[str, str] = {}
    for key, value in as_dict(mapping).items():
        kind = str(key).lower()
        if kind in lengths:
            digest = as_hash(value, lengths[kind])
            if digest:
                out[kind] = digest
    return out


def pick_unmapped(data: dict[str, Any], mapped: frozenset[str] | set[str]) -> dict[str, Any]:
    """The keys of ``data`` that no column holds, for the record's ``extra``."""
    return {k: v for k, v in data.items() if k not in mapped}

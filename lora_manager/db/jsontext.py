"""JSON column values serialised ahead of time, by the importer's reader processes.

A cold import's writing process is its bottleneck, and serialising the JSON columns of every
row was a twentieth of its work. Readers wrap a value with :func:`json_text`; the engine's
serializer (``db.engine``) passes a :class:`JsonText` through untouched, so the stored text
is byte for byte what serialising in the writer gave.

Sidecars are written by anyone: a value that no catalog can store (an integer past 64 bits,
nesting deeper than the serialiser goes, a NUL character, which PostgreSQL refuses in text)
is made storable (:func:`storable`) rather than failing the row, and only then, so the
common case pays one check of the text.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

# Containers nested deeper than this are stored as null (orjson refuses to write past 254).
MAX_DEPTH = 64
_INT64 = (-(2**63), 2**63 - 1)


class JsonText(str):
    """A JSON column's value, already serialised."""

    __slots__ = ()


def dumps(value: Any) -> str:
    """The text a JSON column stores for ``value`` (``None`` is JSON ``null``, as SQLAlchemy stores it)."""
    if type(value) is JsonText:
        return str(value)
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError too: an integer past 64 bits, nesting too deep
        return orjson.dumps(storable(value), option=orjson.OPT_NON_STR_KEYS).decode()
    if "\\u0000" in text:
        return orjson.dumps(storable(value), option=orjson.OPT_NON_STR_KEYS).decode()
    return text


def json_text(value: Any) -> JsonText:
    return JsonText(dumps(value))


def storable(value: Any, depth: int = 0) -> Any:
    """``value`` (decoded JSON) as every catalog can store it.

    Integers past 64 bits become their digits as text, non-finite floats null, NUL characters
    are dropped from strings and keys, and containers deeper than :data:`MAX_DEPTH` become null.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            return None
        if isinstance(value, dict):
            return {storable(k, depth + 1): storable(v, depth + 1) for k, v in value.items()}
        return [storable(v, depth + 1) for v in value]
    return value

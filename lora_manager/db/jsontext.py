"""JSON column values serialised ahead of time, by the importer's reader processes.

A cold import's writing process is its bottleneck, and serialising the JSON columns of every
row was a twentieth of its work. Readers wrap a value with :func:`json_text`; the engine's
serializer (``db.engine``) passes a :class:`JsonText` through untouched, so the stored text
is byte for byte what serialising in the writer gave.
"""

from __future__ import annotations

from typing import Any

import orjson


class JsonText(str):
    """A JSON column's value, already serialised."""

    __slots__ = ()


def dumps(value: Any) -> str:
    """The text a JSON column stores for ``value`` (``None`` is JSON ``null``, as SQLAlchemy stores it)."""
    if type(value) is JsonText:
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def json_text(value: Any) -> JsonText:
    return JsonText(dumps(value))

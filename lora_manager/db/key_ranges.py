"""Keys in statements: lists sent in chunks, and the index range of the paths under a folder."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_

CHUNK = 500  # keys a statement: below every driver's parameter limit
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def under(column: Any, root: str) -> Any:
    """Rows whose path-like ``column`` lies under ``root``: an index range, not a LIKE scan."""
    low, high = path_range(root)
    return and_(column >= low, column < high)


def path_range(root: str) -> tuple[str, str]:
    """The bounds of the paths under ``root``: ``low <= path < high``."""
    prefix = root.rstrip(os.sep) + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)

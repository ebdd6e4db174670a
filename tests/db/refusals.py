"""What a batch the database refuses raises, for comparing the fast paths with SQLAlchemy's own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import StatementError

Refusal = tuple[type[BaseException], str]


def refusals(
    engine: Engine, batches: Iterable[Sequence[Any]], write: Callable[[Connection, Sequence[Any]], None]
) -> list[Refusal]:
    """Each batch written in a transaction of its own, which must fail: its error's type and first line."""
    seen: list[Refusal] = []
    for rows in batches:
        with pytest.raises(StatementError) as caught, engine.begin() as conn:
            write(conn, rows)
        seen.append((caught.type, str(caught.value).splitlines()[0]))
    return seen

"""One ``INSERT ... ON CONFLICT DO UPDATE`` for SQLite and PostgreSQL alike.

Only the columns named in ``update`` are refreshed on conflict: never "all non-key
columns", which would overwrite the user's state. ``set_`` does not fire ``onupdate``, so
callers put ``updated_at`` in the rows themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.sql.elements import ColumnElement


def _insert_for(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"no upsert for {conn.dialect.name}")  # pragma: no cover - the engine guards


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    update: Sequence[str],
    computed: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows``, updating ``update`` columns (plus ``computed`` expressions) on a key conflict.

    Rows are de-duplicated by key, last one winning: PostgreSQL refuses a statement that
    updates one row twice.
    """
    if not rows:
        return
    unique = list({tuple(r[k] for k in key): r for r in rows}.values())
    stmt = _insert_for(conn, table)
    set_: dict[str, ColumnElement[Any] | Any] = {c: stmt.excluded[c] for c in update}
    if computed:
        set_.update({c: (fn(stmt.excluded) if callable(fn) else fn) for c, fn in computed.items()})
    stmt = (
        stmt.on_conflict_do_update(index_elements=list(key), set_=set_)
        if set_
        else (stmt.on_conflict_do_nothing(index_elements=list(key)))
    )
    conn.execute(stmt, unique)

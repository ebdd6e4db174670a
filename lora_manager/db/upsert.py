"""One ``INSERT ... ON CONFLICT DO UPDATE`` for SQLite and PostgreSQL alike.

Only the columns named in ``update`` are refreshed on conflict: never "all non-key
columns", which would overwrite the user's state. ``set_`` does not fire ``onupdate``, so
callers put ``updated_at`` in the rows themselves.

On SQLite the rows skip SQLAlchemy's per-row parameter handling (see ``db.sqlite_plans``);
PostgreSQL always takes SQLAlchemy's path.

SQLite also rewrites every index whose column is in the ``DO UPDATE SET`` list, whether or not
the value changed (its change analysis is by SET list, not by value): a re-import that refreshed
descriptions rewrote the sha256, entry-key and author indexes of every row it touched, 40% of
the pages its commit wrote. So there the indexed columns leave the SET list: their stored values
are read first, and only those that change are written, by an ``UPDATE`` per set of changed columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Connection, Dialect, PrimaryKeyConstraint, Table, UniqueConstraint, insert
from sqlalchemy.sql import visitors
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from lora_manager.db import sqlite_plans


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
    all_new: bool = False,
    known: Mapping[tuple[Any, ...], Mapping[str, Any]] | None = None,
) -> None:
    """Insert ``rows``, updating ``update`` columns (plus ``computed`` expressions) on a key conflict.

    Rows are de-duplicated by key, last one winning: PostgreSQL refuses a statement that
    updates one row twice. ``all_new`` says the caller expects no row to exist (a first
    import): then no stored value is read, and the full SET list is sent, so a row that
    exists after all is still updated in full. ``known``: stored values the caller read in
    this transaction, by key tuple (SQLite reads the indexed columns it lacks; see below).
    Only an existing row belongs there, with its values exactly as the driver gave them.
    """
    if not rows:
        return
    row_key = itemgetter(*key)
    unique = list({row_key(r): r for r in rows}.values())
    if sqlite_plans.applies(conn) and not all_new:
        deferred = _deferrable(table, tuple(key), tuple(update), frozenset(computed or ()))
        if deferred and _upsert_deferring(conn, table, unique, key, update, computed, deferred, known or {}):
            return
    _execute_many(conn, _statement(conn, table, key, update, computed), unique)


def _statement(
    conn: Connection, table: Table, key: Sequence[str], update: Sequence[str], computed: Mapping[str, Any] | None
) -> Insert:
    stmt = _insert_for(conn, table)
    set_: dict[str, ColumnElement[Any] | Any] = {c: stmt.excluded[c] for c in update}
    if computed:
        set_.update({c: (fn(stmt.excluded) if callable(fn) else fn) for c, fn in computed.items()})
    index_elements = list(key)
    done: Insert = (
        stmt.on_conflict_do_update(index_elements=index_elements, set_=set_)
        if set_
        else stmt.on_conflict_do_nothing(index_elements=index_elements)
    )
    return done


def insert_many(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """A plain ``INSERT`` of ``rows`` (no conflict handling), on SQLite by the fast path of :func:`upsert`."""
    if rows:
        _execute_many(conn, insert(table), rows)


def _execute_many(conn: Connection, stmt: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    if sqlite_plans.applies(conn):
        plan = sqlite_plans.plan_for(conn, stmt, rows[0])
        if plan is not None:
            try:
                parameters = sqlite_plans.parameters(plan, rows)
            except Exception:
                # A row lacks a column, a processor refuses a value: nothing was sent, and SQLAlchemy's
                # path raises its own error for it (a StatementError), as callers expect.
                pass
            else:
                conn.exec_driver_sql(plan.sql, parameters)
                return
    conn.execute(stmt, list(rows))


# Indexed columns out of the SET list (SQLite).


@lru_cache(maxsize=64)
def _deferrable(
    table: Table, key: tuple[str, ...], update: tuple[str, ...], computed: frozenset[str]
) -> tuple[str, ...]:
    """The ``update`` columns SQLite would rewrite an index for: in a (partial) index's columns or condition.

    Never a key column, a ``computed`` one (its expression stays in the SET list), or one in a
    unique index: an ``UPDATE`` after the upsert would check uniqueness in another order.
    """

    def columns(element: Any) -> set[str]:
        return {c.key for c in visitors.iterate(element) if isinstance(c, Column) and c.table is table}

    indexed: set[str] = set()
    unique: set[str] = set()
    for index in table.indexes:
        found = set().union(*(columns(e) for e in index.expressions))
        where = index.dialect_options["sqlite"]["where"]
        if where is not None:
            found |= columns(where)
        (unique if index.unique else indexed).update(found)
    for constraint in table.constraints:  # a UNIQUE or PRIMARY KEY constraint is a unique index too
        if isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint):
            unique.update(c.key for c in constraint.columns)
    skip = unique | set(key) | computed
    return tuple(c for c in dict.fromkeys(update) if c in indexed and c not in skip)


@lru_cache(maxsize=64)
def _key_types(dialect: Dialect, table: Table, key: tuple[str, ...]) -> tuple[type, ...] | None:
    """The one Python type per key column whose values SQLite stores as given (None: not so simple).

    A batch's rows are told apart in Python by their keys, and matched to the stored rows by the
    database; the two agree only when no conversion can make two keys one: ``str`` in a TEXT
    column of the binary collation, ``int`` in an INTEGER one (SQLite's affinity rules, applied to
    the declared type).
    """
    types: list[type] = []
    for name in key:
        declared = dialect.type_compiler_instance.process(table.c[name].type).upper()
        if "COLLATE" in declared:
            return None
        if "INT" in declared:
            types.append(int)
        elif any(word in declared for word in ("CHAR", "CLOB", "TEXT")):
            types.append(str)
        else:
            return None
    return tuple(types)


def _upsert_deferring(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    update: Sequence[str],
    computed: Mapping[str, Any] | None,
    deferred: tuple[str, ...],
    known: Mapping[tuple[Any, ...], Mapping[str, Any]],
) -> bool:
    """The upsert without the ``deferred`` columns in its SET list, then an ``UPDATE`` of those that change.

    Reads the stored values of the rows that exist (a new row is inserted whole), runs the upsert,
    then writes each changed value, so the rows end as the full upsert would leave them. False,
    with nothing sent, when the batch is not one the fast path models. A row whose values the
    caller already read (``known``) is not read again: a re-import after edits knows them all.
    """
    stmt = _statement(conn, table, key, [c for c in update if c not in deferred], computed)
    plan = sqlite_plans.plan_for(conn, stmt, rows[0])
    types = _key_types(conn.dialect, table, tuple(key))
    if plan is None or types is None or not all(c in plan.values for c in (*key, *deferred)):
        return False  # a column left to the database's default: its value is not in the parameters
    try:
        parameters = sqlite_plans.parameters(plan, rows)
    except Exception:
        return False  # SQLAlchemy's path raises its own error for it
    keys = list(zip(*([p[plan.values[c]] for p in parameters] for c in key), strict=True))
    for column, kind in enumerate(types):
        if not all(type(k[column]) is kind for k in keys):
            return False
    new_at = [plan.values[c] for c in deferred]
    stored: dict[int, tuple[Any, ...]] = {}
    ask: list[int] = []
    for i, k in enumerate(keys):
        have = known.get(k)
        if have is not None and all(c in have for c in deferred):
            stored[i] = tuple(have[c] for c in deferred)
        else:
            ask.append(i)
    if ask:
        found = _stored(conn, table, key, deferred, [keys[i] for i in ask])
        stored.update((ask[j], values) for j, values in found.items())
    conn.exec_driver_sql(plan.sql, parameters)
    changes: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
    for row, old in stored.items():
        new = parameters[row]
        changed = tuple(i for i, (at, was) in enumerate(zip(new_at, old, strict=True)) if not _same(new[at], was))
        if changed:
            changes.setdefault(changed, []).append((*(new[new_at[i]] for i in changed), *keys[row]))
    quote = conn.dialect.identifier_preparer.quote
    where = " AND ".join(f"{quote(table.c[c].name)} = ?" for c in key)
    for changed, params in changes.items():
        assign = ", ".join(f"{quote(table.c[deferred[i]].name)} = ?" for i in changed)
        conn.exec_driver_sql(f"UPDATE {_table_name(conn, table)} SET {assign} WHERE {where}", params)
    return True


def _same(new: Any, stored: Any) -> bool:
    """Whether binding ``new`` would store exactly ``stored`` (a value read back from the driver).

    In Python, not SQL: NULL equals nothing there. Only the plain types whose stored form is the
    value itself count; anything else is taken as changed, which costs an ``UPDATE``, never a wrong value.
    """
    if new is None or stored is None:
        return new is stored
    return type(new) is type(stored) and type(new) in _PLAIN and bool(new == stored)


_PLAIN = frozenset({str, int, float, bytes})


def _stored(
    conn: Connection, table: Table, key: Sequence[str], columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> dict[int, tuple[Any, ...]]:
    """The stored ``columns`` of the rows with these ``keys``, by index into ``keys`` (absent: no such row).

    One query per chunk, a ``VALUES`` list joined on the key's index (a row-value ``IN`` would scan
    the table), chunked under the driver's limit of parameters.
    """
    quote = conn.dialect.identifier_preparer.quote
    width = len(key) + 1
    names = ", ".join(f"k{i}" for i in range(len(key)))
    select = ", ".join(f"t.{quote(table.c[c].name)}" for c in columns)
    on = " AND ".join(f"t.{quote(table.c[c].name)} = b.k{i}" for i, c in enumerate(key))
    size = max(1, min(_MAX_VALUES_ROWS, _variable_limit(conn) // width))
    row = "(" + ", ".join("?" * width) + ")"
    found: dict[int, tuple[Any, ...]] = {}
    for start in range(0, len(keys), size):
        part = keys[start : start + size]
        sql = (
            f"WITH b(i, {names}) AS (VALUES {', '.join([row] * len(part))}) "
            f"SELECT b.i, {select} FROM b CROSS JOIN {_table_name(conn, table)} AS t ON {on}"
        )
        params = tuple(v for i, k in enumerate(part, start) for v in (i, *k))
        found.update((r[0], tuple(r[1:])) for r in conn.exec_driver_sql(sql, params))
    return found


_MAX_VALUES_ROWS = 500


def _variable_limit(conn: Connection) -> int:
    """How many parameters one statement may have (999 before SQLite 3.32, 32766 since)."""
    import sqlite3

    try:
        return int(conn.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    except (AttributeError, sqlite3.Error):  # pragma: no cover - another driver
        return 999


def _table_name(conn: Connection, table: Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)

"""Upserts on SQLite without SQLAlchemy's per-row parameter handling (see ``db.upsert``).

SQLAlchemy's per-row parameter handling (``construct_params``, defaults, bind processors,
one dict per row) cost more than SQLite's own work on an import. So a statement is compiled
once per shape and column set into a :class:`Plan`, each row becomes a tuple built the way
SQLAlchemy builds it (the compiled statement's own bind processors, the columns' Python
defaults, the literal values of the ``computed`` expressions), and the tuples go to the
driver's ``executemany`` through :meth:`Connection.exec_driver_sql`: same SQL, same stored
values, same transaction, and errors still wrapped as ``DBAPIError`` (which the retry logic
reads). :func:`plan_for` answers None for anything this does not model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, NamedTuple

from sqlalchemy import JSON, Connection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

Processor = Callable[[Any], Any]


class _FromRow(NamedTuple):
    """A parameter taken from each row's ``key``."""

    key: str
    process: Processor | None


class _Constant(NamedTuple):
    """A parameter with the same (already processed) value in every row: a scalar default, a literal."""

    value: Any


class _Called(NamedTuple):
    """A column absent from the rows whose default is a function: called once per row, as SQLAlchemy does."""

    make: Callable[[], Any]
    process: Processor | None


_Source = _FromRow | _Constant | _Called


class Plan(NamedTuple):
    """A compiled statement and how to fill its positional parameters from a row."""

    sql: str
    sources: tuple[_Source, ...]  # one per distinct parameter name
    order: tuple[int, ...]  # the statement's parameters in order, as indexes into ``sources``
    values: Mapping[str, int]  # column key -> where its inserted value is in a row's parameters


# (dialect, statement cache key, its literal values, columns) -> plan, or None when the
# statement needs SQLAlchemy's path. The dialect is part of the key because the processors
# are its own (JSON goes through the engine's json_serializer). Bounded: a process opens few
# engines, a test run many.
_PLANS: dict[Hashable, Plan | None] = {}
_MAX_PLANS = 64


def applies(conn: Connection) -> bool:
    """Whether ``conn`` takes this path: SQLite, without a schema translation to apply."""
    return conn.dialect.name == "sqlite" and not conn.get_execution_options().get("schema_translate_map")


def plan_for(conn: Connection, stmt: Insert, first: Mapping[str, Any]) -> Plan | None:
    """The cached plan for ``stmt`` with the columns of ``first`` (compiled on first use)."""
    columns = tuple(sorted(first))  # the column keys SQLAlchemy compiles an executemany for
    cache_key = stmt._generate_cache_key()
    if cache_key is None:  # pragma: no cover - our statements are all cacheable
        return _compile_plan(conn, stmt, columns)
    # The structural key leaves out literal values (``weight_source == 'user'``): they are part of the plan.
    key = (conn.dialect, cache_key.key, tuple(b.effective_value for b in cache_key.bindparams), columns)
    try:
        return _PLANS[key]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - an unhashable literal (a list): compile it each time
        return _compile_plan(conn, stmt, columns)
    plan = _compile_plan(conn, stmt, columns)
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _compile_plan(conn: Connection, stmt: Insert, columns: tuple[str, ...]) -> Plan | None:
    """Compile ``stmt`` as SQLAlchemy does for an executemany, and say where each parameter comes from.

    Mirrors ``SQLCompiler.construct_params`` and ``DefaultExecutionContext._process_execute_defaults``;
    returns None (SQLAlchemy's path) for what they do that is not modelled here.
    """
    compiled = stmt.compile(dialect=conn.dialect, column_keys=list(columns), for_executemany=True)
    if (
        not isinstance(compiled, SQLCompiler)
        or not compiled.positional
        or compiled.positiontup is None
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.update_prefetch
    ):
        return None  # pragma: no cover - not so on SQLite for our statements
    try:
        processors = compiled._bind_processors
        param_key = compiled._within_exec_param_key_getter
    except AttributeError:  # pragma: no cover - SQLAlchemy's internals moved: stay correct, if slower
        return None
    defaults = {param_key(c): c.default for c in compiled.insert_prefetch}
    row_keys = set(columns)
    sources: list[_Source] = []
    index: dict[str, int] = {}
    values: dict[str, int] = {}
    for position, name in enumerate(compiled.positiontup):
        bind = compiled.binds[name]
        if getattr(bind, "_is_crud", False):  # a column's inserted value (ON CONFLICT's SET has none)
            values.setdefault(bind.key, position)
        if name in index:
            continue
        found = processors.get(name)
        if found is not None and not callable(found):
            return None  # pragma: no cover - a tuple type's processors
        process: Processor | None = found
        if process is not None and bind.type._type_affinity is JSON:
            process = _serialised_as_is(process)
        source: _Source
        if name in defaults:
            default = defaults[name]
            if default is None or default.is_sentinel:
                return None  # pragma: no cover
            if default.is_scalar:
                value = default.arg  # type: ignore[attr-defined]
                source = _Constant(process(value) if process else value)
            elif default.is_callable:
                # SQLAlchemy wraps a function taking no context as ``lambda ctx: fn()``; one that
                # takes the context (current parameters) is left to SQLAlchemy.
                fn = getattr(default, "_fn", None)
                if fn is None or fn is default.arg:  # type: ignore[attr-defined]
                    return None
                source = _Called(fn, process)
            else:
                return None  # pragma: no cover - a Sequence, a server-side default
        else:
            if bind.key in row_keys:
                source = _FromRow(bind.key, process)
            elif name in row_keys:
                source = _FromRow(name, process)
            elif bind.required:
                return None  # SQLAlchemy raises its "a value is required" error
            else:
                value = bind.effective_value
                source = _Constant(process(value) if process else value)
        index[name] = len(sources)
        sources.append(source)
    order = tuple(index[name] for name in compiled.positiontup)
    return Plan(compiled.string, tuple(sources), order, values)


def _serialised_as_is(process: Processor) -> Processor:
    """A JSON column's processor that passes a value the reader serialised already (``db.jsontext``) as it is.

    It is the text the engine's serializer would return for it; the processor's checks and call
    chain cost a re-import's writes about two thirds of what the executemany of its adapter rows
    does (19 against 28 ms for 1,100 rows, profiled).
    """
    from lora_manager.db.jsontext import JsonText  # loads orjson: only once a plan writes JSON

    def process_json(value: Any) -> Any:
        return value if type(value) is JsonText else process(value)

    return process_json


def parameters(plan: Plan, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """One tuple per row, built column by column (``map`` keeps the per-value loop in C)."""
    count = len(rows)
    values: list[list[Any]] = []
    for source in plan.sources:
        if isinstance(source, _Constant):
            values.append([source.value] * count)
            continue
        if isinstance(source, _FromRow):
            raw = list(map(itemgetter(source.key), rows))
        else:
            raw = [source.make() for _ in range(count)]
        if source.process is None:
            values.append(raw)
        elif all(map(is_, raw, repeat(raw[0]))):
            # One object in every row (a batch's ``now``, None): processed once, as SQLAlchemy
            # would have processed it each time (bind processors are pure).
            values.append([source.process(raw[0])] * count)
        else:
            values.append(list(map(source.process, raw)))
    return list(zip(*(values[i] for i in plan.order), strict=True))

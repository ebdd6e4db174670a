"""Reads and writes of the import's state, dialect-agnostic (SQLAlchemy Core on a Connection).

Every function takes an open connection; the importer owns the transactions. Lists of keys
are sent in chunks so no statement exceeds a driver's parameter limit.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Dialect,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from lora_manager.db import sqlite_plans
from lora_manager.db.directories import stale_directories
from lora_manager.db.key_ranges import chunks, under
from lora_manager.db.schema import adapter, adapter_tag, entry, import_failure, import_run, model_file
from lora_manager.db.upsert import insert_many, upsert
from lora_manager.models import AdapterRecord, FileProblem

# The metadata columns an import refreshes; everything else on a row is the user's or ours.
METADATA_COLUMNS = tuple(
    c for c in AdapterRecord.model_fields if c not in ("name", "version", "weight", "weight_source")
) + ("version", "search_text", "entry_key", "missing_since", "last_ingested_at", "updated_at")


class StoredEntry(NamedTuple):
    key: str
    signature: str
    status: str
    name: str | None
    version_key: str | None
    adapter_id: int | None
    model_path: str | None


class Owner(NamedTuple):
    adapter_id: int
    entry_key: str | None
    missing: bool
    json_file_path: str | None = None
    # The row's indexed columns as stored, when read with it (see ``upsert``'s ``known``).
    indexed: dict[str, Any] | None = None
    # The row's ``tags`` as stored (a list), when read with it: ``adapter_tag`` holds them lowercased.
    tags: list[Any] | None = None


Identity = tuple[str, str]
_OWNER_COLUMNS = (
    adapter.c.name,
    adapter.c.version_key,
    adapter.c.id,
    adapter.c.entry_key,
    adapter.c.missing_since.is_not(None),  # not the date: parsing it cost more than the query
    adapter.c.json_file_path,
)
# Read with an owner, so that updating its row need not read them again (see ``upsert``).
_OWNER_INDEXED = (adapter.c.author_username, adapter.c.primary_file_sha256, adapter.c.base_model)
# Read with an owner, so that rewriting its row need not read its ``adapter_tag`` rows when the tags stay.
_OWNER_TAGS = adapter.c.tags


_ENTRY_COLUMNS = (
    entry.c.key,
    entry.c.signature,
    entry.c.status,
    entry.c.name,
    entry.c.version_key,
    entry.c.adapter_id,
    entry.c.model_path,
)


def load_signatures(conn: Connection, root: str, dirs: set[str]) -> dict[str, tuple[str, str]]:
    """``key -> (signature, status)`` of the stored entries directly in ``dirs`` (all under ``root``).

    Up to a few hundred directories are read by key range each; more, by one pass over the root's entries.
    """
    columns = (entry.c.key, entry.c.signature, entry.c.status)
    out: dict[str, tuple[str, str]] = {}
    if not dirs:
        return out
    ranges = [under(entry.c.key, d) for d in dirs] if len(dirs) <= 200 else [under(entry.c.key, root)]
    for condition in ranges:
        for key, signature, status in conn.execute(select(*columns).where(condition)):
            if os.path.dirname(key) in dirs:
                out[key] = (signature, status)
    return out


def holds_entries(conn: Connection, root: str) -> bool:
    """Whether any entry lies under ``root`` (one step of the key index)."""
    return conn.execute(select(entry.c.key).where(under(entry.c.key, root)).limit(1)).first() is not None


def load_entries_by_key(conn: Connection, keys: Sequence[str]) -> dict[str, StoredEntry]:
    out: dict[str, StoredEntry] = {}
    for part in chunks(sorted(keys)):
        out.update((r[0], StoredEntry(*r)) for r in _rows_where_in(conn, _ENTRY_COLUMNS, entry.c.key, part))
    return out


def _rows_where_in(
    conn: Connection,
    columns: tuple[ColumnElement[Any], ...],
    key: Column[Any],
    values: Sequence[Any],
    also: ColumnElement[bool] | None = None,
) -> Sequence[Sequence[Any]]:
    """``SELECT columns WHERE key IN values`` (``AND also``, a condition without parameters), for
    columns of ``key``'s table whose values need no conversion when read (text, integers; a
    boolean comes as 0 or 1 on SQLite).

    On SQLite straight to the driver: a re-import after edits asks for a thousand keys at a
    time, and SQLAlchemy's rows and its compiling of the ``IN`` list cost as much as the query.
    """
    if sqlite_plans.applies(conn):
        sql = _select_where_in(conn.dialect, columns, key, also).format(marks=", ".join("?" * len(values)))
        rows: list[tuple[Any, ...]] = conn.connection.driver_connection.execute(sql, tuple(values)).fetchall()  # type: ignore[union-attr]
        return rows
    stmt = select(*columns).where(key.in_(values))
    return conn.execute(stmt if also is None else stmt.where(also)).all()


@functools.lru_cache(maxsize=16)
def _select_where_in(
    dialect: Dialect, columns: tuple[ColumnElement[Any], ...], key: Column[Any], also: ColumnElement[bool] | None
) -> str:
    """The SQL of :func:`_rows_where_in`, with ``{marks}`` for its parameters (compiled once a process)."""
    table = dialect.identifier_preparer.format_table(key.table)
    # A plain column of the table is named as the compiler would name it, without compiling it
    # (a re-import of edits compiled a dozen of them, a tenth of a millisecond each).
    names = ", ".join(
        f"{table}.{dialect.identifier_preparer.quote(c.name)}"
        if isinstance(c, Column) and c.table is key.table
        else str(c.compile(dialect=dialect))
        for c in columns
    )
    where = f"{dialect.identifier_preparer.quote(key.name)} IN ({{marks}})"
    if also is not None:
        condition = str(also.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        where += " AND " + condition.replace("{", "{{").replace("}", "}}")
    return f"SELECT {names} FROM {table} WHERE {where}"


def waiting_duplicates(conn: Connection, identities: Iterable[Identity]) -> list[str]:
    """Keys of duplicate entries that claim one of ``identities``: they may take it over now."""
    wanted = set(identities)
    keys: list[str] = []
    # ``name IN (...)`` on the partial index of duplicates (a row-value IN would scan the table).
    for part in chunks(sorted({name for name, _ in wanted})):
        rows = _rows_where_in(conn, _DUPLICATE_COLUMNS, entry.c.name, part, _IS_DUPLICATE)
        keys += [key for key, name, version_key in rows if (name, version_key or "") in wanted]
    return keys


_DUPLICATE_COLUMNS = (entry.c.key, entry.c.name, entry.c.version_key)
_IS_DUPLICATE = entry.c.status == "duplicate"


def stranded_duplicates(conn: Connection, root: str) -> list[str]:
    """Keys of duplicate entries under ``root`` whose identity no live row holds (gone, or marked missing)."""
    # Through the partial index of duplicates (few), not the key range (every entry of the root):
    # this runs on every import, a no-op one included, so it is plain SQL (no statement to compile).
    prefix = root.rstrip(os.sep) + os.sep
    return [key for (key,) in conn.execute(_STRANDED) if key.startswith(prefix)]


_STRANDED = text(
    "SELECT e.key FROM entry AS e WHERE e.status = 'duplicate' AND NOT EXISTS (SELECT 1 FROM adapter AS a"
    " WHERE a.name = e.name AND a.version_key = COALESCE(e.version_key, '') AND a.missing_since IS NULL)"
)


def load_entries_with_status(
    conn: Connection, root: str, statuses: Sequence[str], links_out: bool = False
) -> list[StoredEntry]:
    """The stored entries under ``root`` with one of ``statuses`` (``lora orphans`` asks for the orphaned ones);
    with ``links_out``, those of any status with a file refused as a link out of the library too.

    Such a file is a ``u:`` part of the signature (see ``entries.signed_links_out``); a file name
    holding ``|u:`` may match as well, so the caller checks on disk.
    """
    wanted = [entry.c.status.in_(statuses)]
    if links_out:
        wanted += [entry.c.signature.like("u:%"), entry.c.signature.like("%|u:%")]
    rows = conn.execute(select(*_ENTRY_COLUMNS).where(under(entry.c.key, root), or_(*wanted)))
    return [StoredEntry(*r) for r in rows]


def borrowed_model_files(conn: Connection, root: str) -> set[str]:
    """Model files under ``root`` that a catalogued entry of another stem uses (a sidecar naming them).

    Such a file has no sidecar of its own, yet it is no orphan: a record stands on it.
    """
    own = entry.c.key + "."  # an entry's own model file is its key plus an extension
    rows = conn.execute(
        select(entry.c.model_path).where(
            under(entry.c.key, root),
            entry.c.status == "ok",
            entry.c.model_path.is_not(None),
            func.substr(entry.c.model_path, 1, func.length(own)) != own,
        )
    )
    return {path for (path,) in rows}


def owners(conn: Connection, identities: Iterable[Identity]) -> dict[Identity, Owner]:
    """Which row holds each ``(name, version_key)`` now, with its indexed columns."""
    found: dict[Identity, Owner] = {}
    indexed = ("entry_key", *(c.key for c in _OWNER_INDEXED))
    columns = (*_OWNER_COLUMNS, _OWNER_TAGS, *_OWNER_INDEXED)
    for name, version_key, adapter_id, entry_key, missing, json_path, tags, *values in _rows_of(
        conn, identities, columns
    ):
        stored = dict(zip(indexed, (entry_key, *values), strict=True))
        found[(name, version_key)] = Owner(adapter_id, entry_key, bool(missing), json_path, stored, _stored_list(tags))
    return found


def _rows_of(
    conn: Connection, identities: Iterable[Identity], columns: tuple[ColumnElement[Any], ...]
) -> Iterator[Sequence[Any]]:
    """The ``adapter`` rows holding these identities: ``columns``, whose first two are ``name`` and ``version_key``."""
    wanted = set(identities)
    # ``name IN (...)`` walks the unique index's leading column; a row-value IN may not.
    for part in chunks(sorted({name for name, _ in wanted})):
        for row in _rows_where_in(conn, columns, adapter.c.name, part):
            if (row[0], row[1]) in wanted:
                yield row


def _stored_list(value: Any) -> list[Any] | None:
    """A JSON list column as read: text straight from the SQLite driver, already decoded elsewhere."""
    if isinstance(value, str):
        import orjson

        try:
            value = orjson.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None


def all_owners(conn: Connection) -> dict[Identity, Owner]:
    """Every row's identity and holder, in one query (for imports that touch much of the catalog)."""
    rows = conn.execute(
        select(adapter.c.name, adapter.c.version_key, adapter.c.id, adapter.c.entry_key, adapter.c.missing_since)
    )
    return {(n, v): Owner(i, k, m is not None) for n, v, i, k, m in rows}


def upsert_adapters(
    conn: Connection,
    rows: list[dict[str, Any]],
    all_new: bool = False,
    held: Mapping[Identity, Owner] | None = None,
) -> dict[str, int]:
    """Upsert adapter rows (from :func:`adapter_row`); returns their ids by entry key.

    A user-set weight survives: the weight columns are refreshed only while the weight
    still comes from a sidecar or the default. ``all_new``: see :func:`~lora_manager.db.upsert.upsert`.
    The ids are found by identity: an entry that moved to another identity may still name
    the row it left (marked missing, kept for its return), so its key finds two rows.
    ``held``: the row that holds each identity the rows upsert, as this transaction found
    it (:func:`owners`, less renamed rows); those rows are neither read nor looked up again.
    """
    held = held or {}
    user_set = adapter.c.weight_source == "user"
    upsert(
        conn,
        adapter,
        rows,
        key=("name", "version_key"),
        update=METADATA_COLUMNS,
        computed={
            "weight": lambda ex: case((user_set, adapter.c.weight), else_=ex.weight),
            "weight_source": lambda ex: case((user_set, adapter.c.weight_source), else_=ex.weight_source),
        },
        all_new=all_new,
        known={ident: owner.indexed for ident, owner in held.items() if owner.indexed is not None},
    )
    idents = {(r["name"], r["version_key"]) for r in rows}
    ids = {ident: owner.adapter_id for ident in idents if (owner := held.get(ident)) is not None}
    if len(ids) < len(idents):  # new rows
        ids.update(_ids_of(conn, idents - ids.keys()))
    return {r["entry_key"]: ids[(r["name"], r["version_key"])] for r in rows}


def _ids_of(conn: Connection, identities: Iterable[Identity]) -> dict[Identity, int]:
    """The id of the row that holds each ``(name, version_key)``: all a new row's caller needs of it.

    :func:`owners` would read each row's tags and indexed columns too, and decode the tags: a
    cold import asks this of every row it inserts (at 10,000 models, 0.29 s of its writer's
    time under the profiler went to that call).
    """
    return {(name, version): adapter_id for name, version, adapter_id in _rows_of(conn, identities, _ID_COLUMNS)}


_ID_COLUMNS = (adapter.c.name, adapter.c.version_key, adapter.c.id)


def replace_tags(conn: Connection, tags_by_id: dict[int, list[str]], fresh: Collection[int] = ()) -> None:
    """Make ``adapter_tag`` hold exactly these (lowercased) tags for these adapters.

    Only the differences are written: a re-import after a description was edited would
    otherwise delete and insert every tag again, a sixth of the pages its commit flushes.
    ``fresh`` adapters were inserted in this transaction and have no tags to compare with.
    (An adapter whose stored ``tags`` stay as they are need not be given: ``adapter_tag``
    holds them already, both being written together, here and nowhere else.)
    """
    wanted = {i: {t.lower() for t in tags} for i, tags in tags_by_id.items()}
    known = [i for i in wanted if i not in fresh]
    have: dict[int, set[str]] = {}
    for part in chunks(known):
        stmt = select(adapter_tag.c.adapter_id, adapter_tag.c.tag).where(adapter_tag.c.adapter_id.in_(part))
        for adapter_id, tag in conn.execute(stmt):
            have.setdefault(adapter_id, set()).add(tag)
    gone = [{"i": i, "t": t} for i, tags in have.items() for t in tags - wanted[i]]
    if gone:
        conn.execute(
            delete(adapter_tag).where(adapter_tag.c.adapter_id == bindparam("i"), adapter_tag.c.tag == bindparam("t")),
            gone,
        )
    rows = [{"adapter_id": i, "tag": t} for i, tags in wanted.items() for t in sorted(tags - have.get(i, set()))]
    for rows_part in chunks(rows, 5000):  # DO NOTHING on a pair already there: never fail a batch over a tag
        upsert(conn, adapter_tag, rows_part, key=("adapter_id", "tag"), update=())


def rename_adapter(conn: Connection, adapter_id: int, name: str, version: str | None) -> None:
    """Move a row to a new identity, keeping its id and the user's state on it."""
    conn.execute(
        update(adapter).where(adapter.c.id == adapter_id).values(name=name, version=version, version_key=version or "")
    )


def mark_missing(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    """Flag rows whose files are gone; never deletes (``--prune`` does that)."""
    count = 0
    for part in chunks(ids):
        count += conn.execute(
            update(adapter).where(adapter.c.id.in_(part), adapter.c.missing_since.is_(None)).values(missing_since=now)
        ).rowcount
    return count


def rows_still_held(conn: Connection, held: Sequence[tuple[int, str]]) -> list[int]:
    """The ids of ``(id, entry key)`` pairs whose row that entry still holds.

    An entry remembers its row; another entry may have taken that row over since (the first
    lost its sidecar and the row was left missing, then a copy elsewhere claimed the identity).
    """
    wanted = dict(held)
    out: list[int] = []
    for part in chunks(list(wanted)):
        rows = conn.execute(select(adapter.c.id, adapter.c.entry_key).where(adapter.c.id.in_(part)))
        out.extend(row_id for row_id, key in rows if key == wanted[row_id])
    return out


def prune_missing(conn: Connection, root: str) -> int:
    """Delete the rows under ``root`` marked missing."""
    result = conn.execute(
        delete(adapter).where(
            adapter.c.missing_since.is_not(None),
            or_(under(adapter.c.entry_key, root), under(adapter.c.file_path, root)),
        )
    )
    return result.rowcount


def save_entries(
    conn: Connection, rows: list[dict[str, Any]], all_new: bool = False, stored: Mapping[str, StoredEntry] | None = None
) -> None:
    """Upsert entry rows; ``all_new``: see :func:`~lora_manager.db.upsert.upsert`.

    ``stored``: entries as this run loaded them, which no one else wrote since: their indexed
    columns are not read again.
    """
    known = {
        (key,): {"status": s.status, "name": s.name, "version_key": s.version_key, "adapter_id": s.adapter_id}
        for row in rows
        if not all_new and (s := (stored or {}).get(key := row["key"])) is not None
    }
    update = [c for c in rows[0] if c != "key"] if rows else []
    upsert(conn, entry, rows, key=("key",), update=update, all_new=all_new, known=known)


def delete_entries(conn: Connection, keys: Sequence[str]) -> None:
    for part in chunks(keys):
        conn.execute(delete(entry).where(entry.c.key.in_(part)))


def forget_entries(conn: Connection, keys: Sequence[str], when: datetime) -> None:
    """Entries whose files are gone from a folder this run did not walk: their model files go missing."""
    for part in chunks(keys):
        paths = [p for (p,) in conn.execute(select(entry.c.model_path).where(entry.c.key.in_(part))) if p]
        conn.execute(delete(entry).where(entry.c.key.in_(part)))
        mark_model_files_missing(conn, paths, when, unless_held=True)
    stale_directories(conn, {os.path.dirname(k) for k in keys})  # if they come back, they are looked at in full


def demote_to_duplicate(conn: Connection, problems: dict[str, list[dict[str, Any]]]) -> None:
    """Entries that lost their identity to an entry earlier in path order (their directories' counts go stale).

    Their other problems (a broken second sidecar) stay, as a fresh import would record them.
    """
    had: dict[str, Any] = {}
    for part in chunks(list(problems)):
        had.update(
            (key, value)
            for key, value in conn.execute(select(entry.c.key, entry.c.problems).where(entry.c.key.in_(part)))
        )
    for key, entry_problems in problems.items():
        kept = [p for p in had.get(key) or [] if isinstance(p, dict) and p.get("kind") != "duplicate"]
        conn.execute(
            update(entry)
            .where(entry.c.key == key)
            .values(status="duplicate", adapter_id=None, problems=kept + entry_problems)
        )
    stale_directories(conn, (os.path.dirname(k) for k in problems))


def let_go_of_records(conn: Connection, keys: Sequence[str]) -> None:
    """Failed entries whose last good record another entry took over: they hold no record, and no
    identity, now (their status and problems stay; so do their directories' counts)."""
    for part in chunks(keys):
        conn.execute(update(entry).where(entry.c.key.in_(part)).values(adapter_id=None, name=None, version_key=None))


def save_model_files(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Track model files; a file whose size or mtime moved loses the hashes computed for it."""

    def kept(column: str) -> Any:
        return lambda ex: case(
            (
                and_(ex.size == model_file.c.hashed_size, ex.mtime_ns == model_file.c.hashed_mtime_ns),
                model_file.c[column],
            ),
            else_=None,
        )

    upsert(
        conn,
        model_file,
        rows,
        key=("path",),
        update=("size", "mtime_ns", "missing_since"),
        computed={c: kept(c) for c in ("sha256", "tensor_sha256", "autov3", "autov3_source", "hashed_at")},
    )


def mark_model_files_missing(conn: Connection, paths: Sequence[str], now: datetime, unless_held: bool = False) -> None:
    """Flag model files as gone; with ``unless_held``, not one that an entry in the catalog has as its
    model (a file that passed from a vanished entry to another, e.g. when a sidecar naming it was
    renamed to its stem: that entry may be unchanged, and would not say the file is there)."""
    held: set[str] = set()
    if unless_held:
        for part in chunks(paths):
            held.update(p for (p,) in conn.execute(select(entry.c.model_path).where(entry.c.model_path.in_(part))))
        paths = [p for p in paths if p not in held]
    for part in chunks(paths):
        conn.execute(
            update(model_file)
            .where(model_file.c.path.in_(part), model_file.c.missing_since.is_(None))
            .values(missing_since=now)
        )


def start_run(conn: Connection, roots: list[str], dry_run: bool, now: datetime) -> int:
    """Record a new run, and mark interrupted any run still marked running.

    The caller holds the import lock, so such a run died with its process (killed, power cut):
    its batches are kept, and its ``finished_at`` stays empty (nobody saw it end).
    """
    conn.execute(update(import_run).where(import_run.c.status == "running").values(status="interrupted"))
    result = conn.execute(
        insert(import_run).values(started_at=now, roots=roots, dry_run=dry_run, status="running", counts={})
    )
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - both dialects return it
        raise RuntimeError("the database gave no id for the new import run")
    return int(key[0])


def finish_run(conn: Connection, run_id: int, status: str, counts: dict[str, int], now: datetime) -> None:
    conn.execute(
        update(import_run).where(import_run.c.id == run_id).values(finished_at=now, status=status, counts=counts)
    )


def record_failures(conn: Connection, run_id: int, problems: Sequence[FileProblem]) -> None:
    rows = [{"run_id": run_id, "path": p.path, "category": p.kind, "message": p.message} for p in problems]
    for part in chunks(rows, 5000):
        insert_many(conn, import_failure, part)

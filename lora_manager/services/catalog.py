"""Queries over the catalog: list, show, errors, status, and the user's own settings.

Records come back as plain dicts keyed by the ``adapter`` column names (our output
contract), JSON-ready.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from lora_manager.db.directories import stale_directories
from lora_manager.db.key_ranges import under
from lora_manager.db.schema import adapter, adapter_tag, entry, import_failure, import_run
from lora_manager.errors import FailureKind, LoraError
from lora_manager.paths import lies_under
from lora_manager.services.import_report import COUNT_KEYS

HIDDEN = frozenset({"search_text", "version_key"})
# Characters of a ``--search`` text: SQLite refuses a LIKE pattern past 50,000 bytes.
MAX_SEARCH = 10_000
SORTABLE = (
    "name",
    "version",
    "author_username",
    "base_model",
    "published_at",
    "created_at",
    "updated_at",
    "weight",
    "ordinal",
    "nsfw_level",
    "file_path",
)


@dataclass
class ListQuery:
    tags: list[str] = field(default_factory=list)
    base_model: str | None = None
    author: str | None = None
    search: str | None = None
    sort: str = "name"
    limit: int | None = None
    missing: bool | None = None  # True: only missing rows; False: only present ones; None: all
    active: bool | None = None


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _record(row: Any) -> dict[str, Any]:
    return {k: _json_ready(v) for k, v in row._mapping.items() if k not in HIDDEN}


def list_adapters(engine: Engine, query: ListQuery) -> list[dict[str, Any]]:
    """Records matching every filter, sorted (``-field`` for descending)."""
    return list(iter_adapters(engine, query))


def iter_adapters(engine: Engine, query: ListQuery, fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The records of :func:`list_adapters` one at a time, with only ``fields`` when given.

    Fetched in batches while the caller prints them, so that listing a 70,000-model catalog
    holds a batch of records, not all of them (every column of 20,000 records took 700 MB).
    The query is checked before the first record is asked for: a bad ``--sort`` is refused
    before anything is printed.
    """
    stmt = _list_statement(query, fields)
    return _rows(engine, stmt)


def _rows(engine: Engine, stmt: Any) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=500).execute(stmt):
            yield _record(row)


def _list_statement(query: ListQuery, fields: Sequence[str] | None) -> Any:
    wanted = set(fields) if fields is not None else None
    stmt = select(*(c for c in adapter.c if c.name not in HIDDEN and (wanted is None or c.name in wanted)))
    for tag in query.tags:
        stmt = stmt.where(adapter.c.id.in_(select(adapter_tag.c.adapter_id).where(adapter_tag.c.tag == tag.lower())))
    if query.base_model:
        stmt = stmt.where(func.lower(adapter.c.base_model) == query.base_model.lower())
    if query.author:
        stmt = stmt.where(func.lower(adapter.c.author_username) == query.author.lower())
    if query.search:
        if len(query.search) > MAX_SEARCH:
            raise LoraError(f"--search: at most {MAX_SEARCH:,} characters (this one has {len(query.search):,})")
        needle = query.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(adapter.c.search_text.like(f"%{needle}%", escape="\\"))
    if query.missing is not None:
        stmt = stmt.where(adapter.c.missing_since.is_not(None) if query.missing else adapter.c.missing_since.is_(None))
    if query.active is not None:
        stmt = stmt.where(adapter.c.active.is_(query.active))
    field_name = query.sort[1:] if query.sort.startswith("-") else query.sort
    if field_name not in SORTABLE:
        raise LoraError(f"--sort {query.sort!r}: choose one of {', '.join(SORTABLE)} (prefix - to reverse)")
    column = adapter.c[field_name]
    order = column.desc() if query.sort.startswith("-") else column.asc()
    # Empty values last; on a NOT NULL column no such term, so that ``ORDER BY name, version_key``
    # walks the unique index and a ``--limit`` stops early instead of sorting the whole catalog.
    keys = [order.nulls_last()] if column.nullable else [order]
    stmt = stmt.order_by(*keys, *(c for c in (adapter.c.name, adapter.c.version_key) if c is not column))
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return stmt


def find_adapter(engine: Engine, name: str, version: str | None = None) -> dict[str, Any]:
    """One record by name (exact, then case-insensitive); the newest version unless one is given.

    Raises :class:`LoraError` naming close matches when nothing fits.
    """
    columns = [c for c in adapter.c if c.name not in HIDDEN]

    def newest(conn: Any, wanted: list[str]) -> dict[str, Any] | None:
        stmt = select(*columns).where(adapter.c.name.in_(wanted))
        if version is not None:
            stmt = stmt.where(adapter.c.version_key == version)
        newest_first = (adapter.c.published_at.desc().nulls_last(), adapter.c.version_key.desc())
        rows = conn.execute(stmt.order_by(*newest_first)).all()
        if not rows:
            return None
        record = _record(rows[0])
        record["other_versions"] = [r.version for r in rows[1:]]
        return record

    with engine.connect() as conn:
        # The case-insensitive match is looked for among names only (the name index covers it):
        # asking for whole rows by lower(name) read the whole wide table.
        folded = select(adapter.c.name).where(func.lower(adapter.c.name) == name.lower()).distinct()
        for exact in (True, False):
            wanted = [name] if exact else list(conn.execute(folded).scalars())
            if wanted and (record := newest(conn, wanted)) is not None:
                return record
        # SQLite's lower() folds ASCII letters only: 'łora' and 'Łora' meet among the names here.
        names = sorted(conn.execute(select(adapter.c.name).distinct()).scalars())
        key = name.casefold()
        wanted = [n for n in names if n.casefold() == key]
        if wanted and (record := newest(conn, wanted)) is not None:
            return record
        if version is not None and wanted:  # the name is there, the version is not: say which are
            stmt = select(adapter.c.version).where(adapter.c.name.in_(wanted)).order_by(adapter.c.version_key)
            versions = [v if v is not None else "(no version)" for v in conn.execute(stmt).scalars()]
            raise LoraError(
                f"no version {version!r} of {wanted[0]!r} in the catalog; its versions: {', '.join(versions)}"
            )
        suggestions = suggest(conn, name, names=names)
    what = f"{name!r} version {version!r}" if version is not None else repr(name)
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise LoraError(f"no LoRA named {what} in the catalog{hint}")


def suggest(conn: Any, name: str, limit: int = 5, names: list[str] | None = None) -> list[str]:
    """Names close to ``name``: names containing it first, then similar spellings.

    The catalog's names come from the name index alone (a few MB at 100,000 LoRAs, where a
    search of the wide table read hundreds), unless the caller read them already (``names``,
    sorted); similar spellings are looked for among the names that share its longest word,
    not compared with every name.
    """
    if names is None:
        names = sorted(conn.execute(select(adapter.c.name).distinct()).scalars())
    lowered = [n.lower() for n in names]

    def containing(text: str, most: int) -> list[str]:
        return [n for n, low in zip(names, lowered, strict=True) if text in low][:most]

    needle = name.lower().strip()
    found = containing(needle, limit) if needle else []
    words = sorted(needle.split(), key=len, reverse=True)
    if len(found) < limit and words:
        candidates = containing(words[0], 20_000)
        found += [n for n in difflib.get_close_matches(name, candidates, n=limit, cutoff=0.6) if n not in found]
    return found[:limit]


def known_problems(engine: Engine, path: str | None = None) -> list[dict[str, Any]]:
    """The problems of the library as last seen: each entry's unresolved failures and duplicates,
    and the problems of the last import's walk.

    An entry of any status may hold problems: an ``orphan`` one a sidecar refused as a link out
    of the library, an ``ok`` one a broken second sidecar. Only ``not_metadata`` (noise JSON,
    skipped, as a ``skipped`` entry's are) is no problem of the catalog's.
    """
    stmt = select(entry.c.key, entry.c.status, entry.c.problems)
    prefix = path.rstrip(os.sep) + os.sep if path else ""
    if path:
        stmt = stmt.where(under(entry.c.key, path))  # an index range, as the importer's own queries
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for key, status, problems in conn.execute(stmt.order_by(entry.c.key)):
            for p in problems or []:
                if p.get("kind") == FailureKind.NOT_METADATA.value:
                    continue
                out.append(
                    {
                        "path": p.get("path", key),
                        "category": p.get("kind"),
                        "message": p.get("message"),
                        "entry_status": status,
                    }
                )
        # Problems of the walk itself (a folder link out of the library, an unreadable folder, a
        # name that is not UTF-8) belong to no entry; every run of a library finds them again, so
        # for each library (root) the last run that walked it holds them.
        seen = {p["path"] for p in out}
        walk_kinds = ("unsafe_path", "unreadable")
        for run_id, roots, newer in _last_run_of_each_root(conn):
            stmt2 = select(import_failure.c.path, import_failure.c.category, import_failure.c.message).where(
                import_failure.c.run_id == run_id, import_failure.c.category.in_(walk_kinds)
            )
            for fpath, category, message in conn.execute(stmt2.order_by(import_failure.c.path)):
                if fpath in seen or not fpath.startswith(prefix) or not any(lies_under(fpath, r) for r in roots):
                    continue
                if any(lies_under(fpath, r) for r in newer):  # a later run of a folder inside saw it as it is now
                    continue
                seen.add(fpath)
                out.append({"path": fpath, "category": category, "message": message, "entry_status": None})
    return out


def _last_run_of_each_root(conn: Any) -> list[tuple[int, list[str], list[str]]]:
    """``(run id, roots, newer)``: for every library ever imported, the last finished run that walked
    it; ``newer`` are the roots later runs walked (a folder inside one of the roots included)."""
    runs = conn.execute(
        select(import_run.c.id, import_run.c.roots)
        .where(import_run.c.status != "running")
        .order_by(import_run.c.id.desc())
    )
    covered: list[str] = []
    picked: list[tuple[int, list[str], list[str]]] = []
    for run_id, roots in runs:
        fresh = [r for r in roots or [] if isinstance(r, str) and not any(lies_under(r, c) for c in covered)]
        if fresh:
            picked.append((run_id, fresh, list(covered)))
            covered += fresh
    return picked


def run_failures(engine: Engine, run_id: int | None = None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One import run (the last one by default) and the files that failed in it."""
    with engine.connect() as conn:
        stmt = select(import_run).order_by(import_run.c.id.desc()).limit(1)
        if run_id is not None:
            stmt = select(import_run).where(import_run.c.id == run_id)
        run = conn.execute(stmt).first()
        if run is None:
            return None, []
        rows = conn.execute(
            select(import_failure.c.path, import_failure.c.category, import_failure.c.message)
            .where(import_failure.c.run_id == run.id)
            .order_by(import_failure.c.id)
        ).all()
    return _runs_as_shown(engine, [_record(run)])[0], [dict(r._mapping) for r in rows]


def status(engine: Engine, runs: int = 5) -> dict[str, Any]:
    """Counts of what the catalog holds and the last few runs."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(adapter)).scalar_one()
        missing = conn.execute(
            select(func.count()).select_from(adapter).where(adapter.c.missing_since.is_not(None))
        ).scalar_one()
        by_status: dict[str, int] = dict(
            conn.execute(select(entry.c.status, func.count()).group_by(entry.c.status)).all()
        )
        last_records = [
            _record(r) for r in conn.execute(select(import_run).order_by(import_run.c.id.desc()).limit(runs))
        ]
    return {"adapters": total, "missing": missing, "entries": by_status, "runs": _runs_as_shown(engine, last_records)}


def _runs_as_shown(engine: Engine, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Import runs as ``status`` and ``errors --last-run`` both show them: every count, zero or not (a
    run stores those it met; a killed run none), and a run killed before it could say so as ``interrupted``."""
    for r in records:
        counts = r.get("counts") or {}
        r["counts"] = {**{k: 0 for k in COUNT_KEYS}, **counts}
    if any(r["status"] == "running" for r in records):
        from lora_manager.db.lock import import_running

        if not import_running(engine):  # killed before it could say so (the next import records it too)
            for r in records:
                if r["status"] == "running":
                    r["status"] = "interrupted"
    return records


def set_user_state(engine: Engine, name: str, version: str | None, values: dict[str, Any]) -> dict[str, Any]:
    """Change the user's own columns of one record; imports never overwrite them."""
    record = find_adapter(engine, name, version)
    reread = False
    if "weight" in values:
        if values["weight"] is not None:
            values["weight_source"] = "user"
        else:  # back to what the sidecars say, read from them now
            sidecar = _sidecar_weight(engine, record["entry_key"], record["name"], record["version"])
            reread = sidecar is None
            values["weight"], values["weight_source"] = sidecar or (1.0, "default")
    values["updated_at"] = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(adapter).where(adapter.c.id == record["id"]).values(**values))
        if reread and record["entry_key"]:
            # Not readable now: forget the entry's signature so the next import restores the sidecar's weight.
            conn.execute(update(entry).where(entry.c.key == record["entry_key"]).values(signature=""))
            stale_directories(conn, [os.path.dirname(record["entry_key"])])
    return find_adapter(engine, record["name"], record["version"] or "")


def _sidecar_weight(engine: Engine, key: str | None, name: str, version: str | None) -> tuple[float, str] | None:
    """``(weight, weight_source)`` as reading the record's entry now gives them, or None if it cannot be read.

    The entry is read as an import would read it (read-only, inside the library it was imported
    from); a result for another identity (the sidecar changed since) is no answer either.
    """
    if not key:
        return None
    from lora_manager.db.hashes import library_roots
    from lora_manager.discovery import walk_directory
    from lora_manager.paths import library_of
    from lora_manager.services.reading import read_entry

    with engine.connect() as conn:
        root = library_of(key, library_roots(conn))
    if root is None:
        return None
    try:
        entries = walk_directory(root, os.path.dirname(key))
    except (OSError, LoraError):
        return None
    found = next((e for e in entries if e.key == key), None)
    row = read_entry(found, root).row if found is not None else None
    if row is None or (row["name"], row["version"]) != (name, version):
        return None
    return float(row["weight"]), str(row["weight_source"])

"""Reads and writes of the import's state, dialect-agnostic (SQLAlchemy Core on a Connection).

Every function takes an open connection; the importer owns the transactions. Lists of keys
are sent in chunks so no statement exceeds a driver's parameter limit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, and_, case, delete, insert, or_, select, tuple_, update

from lora_manager.db.schema import adapter, adapter_tag, entry, import_failure, import_run, model_file
from lora_manager.db.upsert import upsert
from lora_manager.models import AdapterRecord, FileProblem

CHUNK = 500
T = TypeVar("T")

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


Identity = tuple[str, str]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _under(column: Any, root: str) -> Any:
    """Rows whose path-like ``column`` lies under ``root``: an index range, not a LIKE scan."""
    prefix = root.rstrip(os.sep) + os.sep
    return and_(column >= prefix, column < prefix[:-1] + chr(ord(os.sep) + 1))


def load_entries(conn: Connection, root: str) -> dict[str, StoredEntry]:
    """Every stored entry under ``root``, in one query: the whole of change detection's reads."""
    rows = conn.execute(
        select(
            entry.c.key,
            entry.c.signature,
            entry.c.status,
            entry.c.name,
            entry.c.version_key,
            entry.c.adapter_id,
            entry.c.model_path,
        ).where(_under(entry.c.key, root))
    )
    return {r[0]: StoredEntry(*r) for r in rows}


def owners(conn: Connection, identities: Iterable[Identity]) -> dict[Identity, Owner]:
    """Which row holds each ``(name, version_key)`` now."""
    wanted = sorted(set(identities))
    found: dict[Identity, Owner] = {}
    for part in chunks(wanted):
        rows = conn.execute(
            select(
                adapter.c.name, adapter.c.version_key, adapter.c.id, adapter.c.entry_key, adapter.c.missing_since
            ).where(tuple_(adapter.c.name, adapter.c.version_key).in_(part))
        )
        for name, version_key, adapter_id, entry_key, missing_since in rows:
            found[(name, version_key)] = Owner(adapter_id, entry_key, missing_since is not None)
    return found


def search_text(record: AdapterRecord) -> str:
    """The lowercased text ``--search`` matches against."""
    words = [
        record.name,
        record.version or "",
        record.author_username or "",
        os.path.basename(record.file_path),
        *record.tags,
        *record.trained_words,
        record.activation_text or "",
    ]
    return " ".join(w for w in words if w).lower()


def adapter_row(record: AdapterRecord, entry_key: str, now: datetime) -> dict[str, Any]:
    row = record.model_dump()
    row.update(
        version_key=record.version or "",
        search_text=search_text(record),
        entry_key=entry_key,
        missing_since=None,
        last_ingested_at=now,
        created_at=now,
        updated_at=now,
    )
    return row


def upsert_adapters(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Upsert adapter rows (from :func:`adapter_row`); returns their ids by entry key.

    A user-set weight survives: the weight columns are refreshed only while the weight
    still comes from a sidecar or the default.
    """
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
    )
    ids: dict[str, int] = {}
    for part in chunks([r["entry_key"] for r in rows]):
        ids.update(conn.execute(select(adapter.c.entry_key, adapter.c.id).where(adapter.c.entry_key.in_(part))).all())
    return ids


def replace_tags(conn: Connection, tags_by_id: dict[int, list[str]]) -> None:
    """Make ``adapter_tag`` hold exactly these (lowercased) tags for these adapters."""
    ids = list(tags_by_id)
    for part in chunks(ids):
        conn.execute(delete(adapter_tag).where(adapter_tag.c.adapter_id.in_(part)))
    rows = [{"adapter_id": i, "tag": t} for i, tags in tags_by_id.items() for t in {t.lower() for t in tags}]
    for part in chunks(rows, 5000):
        conn.execute(insert(adapter_tag), list(part))


def rename_adapter(conn: Connection, adapter_id: int, name: str, version: str | None) -> None:
    """Move a row to a new identity, keeping its id and the user's state on it."""
    conn.execute(
        update(adapter).where(adapter.c.id == adapter_id).values(name=name, version=version, version_key=version or "")
    )


def delete_adapters(conn: Connection, ids: Sequence[int]) -> None:
    for part in chunks(ids):
        conn.execute(delete(adapter).where(adapter.c.id.in_(part)))


def mark_missing(conn: Connection, ids: Sequence[int], now: datetime) -> int:
    """Flag rows whose files are gone; never deletes (``--prune`` does that)."""
    count = 0
    for part in chunks(ids):
        count += conn.execute(
            update(adapter).where(adapter.c.id.in_(part), adapter.c.missing_since.is_(None)).values(missing_since=now)
        ).rowcount
    return count


def prune_missing(conn: Connection, root: str) -> int:
    """Delete the rows under ``root`` marked missing."""
    result = conn.execute(
        delete(adapter).where(
            adapter.c.missing_since.is_not(None),
            or_(_under(adapter.c.entry_key, root), _under(adapter.c.file_path, root)),
        )
    )
    return result.rowcount


def save_entries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    upsert(conn, entry, rows, key=("key",), update=[c for c in rows[0] if c != "key"] if rows else [])


def delete_entries(conn: Connection, keys: Sequence[str]) -> None:
    for part in chunks(keys):
        conn.execute(delete(entry).where(entry.c.key.in_(part)))


def demote_to_duplicate(conn: Connection, keys: Sequence[str]) -> None:
    """Entries that lost their identity to an entry earlier in path order."""
    for part in chunks(keys):
        conn.execute(update(entry).where(entry.c.key.in_(part)).values(status="duplicate", adapter_id=None))


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
        computed={c: kept(c) for c in ("sha256", "autov3", "autov3_source", "hashed_at")},
    )


def mark_model_files_missing(conn: Connection, paths: Sequence[str], now: datetime) -> None:
    for part in chunks(paths):
        conn.execute(
            update(model_file)
            .where(model_file.c.path.in_(part), model_file.c.missing_since.is_(None))
            .values(missing_since=now)
        )


def start_run(conn: Connection, roots: list[str], dry_run: bool, now: datetime) -> int:
    result = conn.execute(
        insert(import_run).values(started_at=now, roots=roots, dry_run=dry_run, status="running", counts={})
    )
    return int(result.inserted_primary_key[0])


def finish_run(conn: Connection, run_id: int, status: str, counts: dict[str, int], now: datetime) -> None:
    conn.execute(
        update(import_run).where(import_run.c.id == run_id).values(finished_at=now, status=status, counts=counts)
    )


def record_failures(conn: Connection, run_id: int, problems: Sequence[FileProblem]) -> None:
    rows = [{"run_id": run_id, "path": p.path, "category": p.kind, "message": p.message} for p in problems]
    for part in chunks(rows, 5000):
        conn.execute(insert(import_failure), list(part))

"""What the catalog keeps of each directory walked: its fingerprint, files record, names and entry counts.

The names live in their own table (``directory_names``): a directory's row is rewritten whole
whenever one of its files changed, its names only when they did.

See ``listings`` for what a fingerprint and a files record are; the walk compares them
(``discovery.walk``), the importer saves them once a run is through, and anything that
changes a directory's entries behind the walk's back marks it *stale*: looked at in full
next time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update

from lora_manager.db.key_ranges import chunks, under
from lora_manager.db.schema import directory, directory_names
from lora_manager.db.upsert import upsert


def load_directories(conn: Connection, root: str) -> dict[str, tuple[str, dict[str, int]]]:
    """Every known directory under (and including) ``root``: its fingerprint and entry counts."""
    rows = conn.execute(
        select(directory.c.path, directory.c.fingerprint, directory.c.counts).where(
            or_(directory.c.path == root, under(directory.c.path, root))
        )
    )
    return {path: (fp, counts or {}) for path, fp, counts in rows}


def save_directories(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Upsert directory rows; a row without ``names`` keeps the names stored (they did not change), one
    whose ``names`` is None has none stored from now on."""
    for part in chunks(rows, 2000):
        upsert(
            conn,
            directory,
            [{k: v for k, v in r.items() if k != "names"} for r in part],
            key=("path",),
            update=("fingerprint", "counts", "files"),
        )
    named = [r for r in rows if "names" in r]
    _forget_names(conn, [r["path"] for r in named if r["names"] is None])
    for part in chunks([{"path": r["path"], "names": r["names"]} for r in named if r["names"] is not None], 2000):
        upsert(conn, directory_names, list(part), key=("path",), update=("names",))


def forget_directories(conn: Connection, paths: Sequence[str]) -> None:
    for part in chunks(paths):
        conn.execute(delete(directory).where(directory.c.path.in_(part)))
    _forget_names(conn, paths)


def stale_directories(conn: Connection, paths: Iterable[str], keep_names: bool = False) -> None:
    """Make the next import look at these directories in full (and so count their entries anew).

    ``keep_names`` for a run that will save these directories again itself: it stores the
    fingerprint and files record anew, and leaves the names stored when they did not change.
    """
    stale = sorted(set(paths))
    for part in chunks(stale):
        conn.execute(update(directory).where(directory.c.path.in_(part)).values(fingerprint="", files=None))
    if not keep_names:
        _forget_names(conn, stale)


def _forget_names(conn: Connection, paths: Sequence[str]) -> None:
    for part in chunks(paths):
        conn.execute(delete(directory_names).where(directory_names.c.path.in_(part)))


class StoredDirectories:
    """A directory's files record and names as the last import stored them (see ``listings.StoredFiles``).

    A re-import after scattered edits asks for hundreds of directories, one at a time (see
    ``discovery.walk``), so the questions go straight to the driver: on SQLite a tenth of the
    cost of a SQLAlchemy statement; on PostgreSQL, no parse and plan per question (psycopg
    prepares a statement after five runs).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
        driver = conn.connection.driver_connection
        translated = conn.get_execution_options().get("schema_translate_map")
        self._cursor = driver.cursor() if mark is not None and driver is not None and not translated else None
        self._sql = {
            "files": f"SELECT files FROM directory WHERE path = {mark}",
            "names": f"SELECT names FROM directory_names WHERE path = {mark}",
        }

    def record(self, path: str) -> bytes | None:
        return self._read("files", path)

    def names(self, path: str) -> bytes | None:
        return self._read("names", path)

    def _read(self, column: str, path: str) -> bytes | None:
        if self._cursor is None:
            table = directory if column == "files" else directory_names
            stmt = select(table.c[column]).where(table.c.path == bindparam("path"))
            return _bytes(self._conn.execute(stmt, {"path": path}).scalar())
        self._cursor.execute(self._sql[column], (path,))
        row = self._cursor.fetchone()
        return _bytes(row[0]) if row else None


def _bytes(value: object) -> bytes | None:
    """A stored value as bytes (drivers may give a memoryview); None for anything else."""
    if isinstance(value, bytes):
        return value
    return bytes(value) if isinstance(value, (memoryview, bytearray)) else None

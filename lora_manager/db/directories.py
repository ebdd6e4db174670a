"""What the catalog keeps of each directory walked: its fingerprint, files record, names and entry counts.

A directory's row (``directory``) holds its fingerprint, counts and a short patch; its names
and full files record live in ``directory_names`` and ``directory_files``. A re-import
rewrites the row of every directory where a file changed, the names only when they changed,
the full record then or when the patch grew too long (see ``listings.patch_for``).

See ``listings`` for what a fingerprint and a files record are; the walk compares them
(``discovery.walk``), the importer saves them once a run is through, and anything that
changes a directory's entries behind the walk's back marks it *stale*: looked at in full
next time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, or_, select, update

from lora_manager import listings
from lora_manager.db.key_ranges import chunks, path_range, under
from lora_manager.db.schema import directory, directory_files, directory_names
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
    """Upsert directory rows: ``path``, ``fingerprint``, ``counts``, ``patch`` (None: no record).

    With ``files`` (a full files record), it is stored as the directory's base, of which a
    later patch is one; a row without it leaves the base stored. With ``names``, they are
    stored; a row without them keeps those stored (they did not change). A row whose ``names``
    is None has neither names nor base stored from now on.
    """
    keys = ("path", "fingerprint", "counts", "patch")
    for part in chunks(rows, 2000):
        upsert(conn, directory, [{k: r[k] for k in keys} for r in part], key=("path",), update=keys[1:])
    _forget_listing(conn, [r["path"] for r in rows if "names" in r and r["names"] is None])
    for table, column in ((directory_names, "names"), (directory_files, "files")):
        given = [{"path": r["path"], column: r[column]} for r in rows if r.get(column) is not None]
        for part in chunks(given, 2000):
            upsert(conn, table, list(part), key=("path",), update=(column,))


def forget_directories(conn: Connection, paths: Sequence[str]) -> None:
    for part in chunks(paths):
        conn.execute(delete(directory).where(directory.c.path.in_(part)))
    _forget_listing(conn, paths)


def stale_directories(conn: Connection, paths: Iterable[str], keep_names: bool = False) -> None:
    """Make the next import look at these directories in full (and so count their entries anew).

    ``keep_names`` for a run that will save these directories again itself: it stores the
    fingerprint and files record anew, and leaves the names stored when they did not change.
    """
    stale = sorted(set(paths))
    for part in chunks(stale):
        conn.execute(update(directory).where(directory.c.path.in_(part)).values(fingerprint="", patch=None))
    if not keep_names:
        _forget_listing(conn, stale)


def _forget_listing(conn: Connection, paths: Sequence[str]) -> None:
    """Forget the names and full files record of these directories."""
    for table in (directory_names, directory_files):
        for part in chunks(paths):
            conn.execute(delete(table).where(table.c.path.in_(part)))


class StoredDirectories:
    """A directory's files record and names as the last import stored them (see ``listings.StoredFiles``).

    A re-import after scattered edits asks for hundreds of directories, one at a time (see
    ``discovery.walk``), so the questions go straight to the driver: on SQLite a tenth of the
    cost of a SQLAlchemy statement; on PostgreSQL, no parse and plan per question (psycopg
    prepares a statement after five runs). Past :data:`ONE_BY_ONE` records, those of every
    directory under ``root`` are read in one query (~2 MB, 3-5 ms at 100,000 models): asked one
    at a time during a re-import after 1,100 edits there, the 650 changed directories' records
    took 37-47 ms (in the run, a lookup costs two to three times what it does in a loop by
    itself); read at once, 16-20 ms with the patches applied. A run
    that finds a handful of changed directories, and the no-op run, which finds none, read
    nothing more.
    """

    ONE_BY_ONE = 16

    def __init__(self, conn: Connection, root: str | None = None) -> None:
        self._conn = conn
        self._root = root
        self._under = path_range(root)[0] if root is not None else None
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
        driver = conn.connection.driver_connection
        translated = conn.get_execution_options().get("schema_translate_map")
        self._cursor = driver.cursor() if mark is not None and driver is not None and not translated else None
        self._sql = {
            "one": f"{_RECORDS} WHERE d.path = {mark}",
            "all": f"{_RECORDS} WHERE d.path = {mark} OR (d.path >= {mark} AND d.path < {mark})",
            "names": f"SELECT names FROM directory_names WHERE path = {mark}",
        }
        self._asked = 0
        self._all: dict[str, tuple[bytes | None, bytes | None]] | None = None

    def record(self, path: str) -> bytes | None:
        """The record the last import stored (its base, patched); None when it stored none."""
        patch, base = self.stored(path)
        return listings.patched(base, patch) if patch is not None else None

    def names(self, path: str) -> bytes | None:
        if self._cursor is None:
            stmt = select(directory_names.c.names).where(directory_names.c.path == path)
            row: Sequence[Any] | None = self._conn.execute(stmt).first()
        else:
            self._cursor.execute(self._sql["names"], (path,))
            row = self._cursor.fetchone()
        return _bytes(row[0]) if row else None

    def stored(self, path: str) -> tuple[bytes | None, bytes | None]:
        """``(patch, base)`` as the last import stored them for ``path`` (see ``listings.StoredFiles``): asked
        one by one or, once enough were asked, from all of the root's at once."""
        root, under_root = self._root, self._under
        if root is not None and under_root is not None and (path == root or path.startswith(under_root)):
            self._asked += 1
            if self._all is None and self._asked > self.ONE_BY_ONE:
                condition = or_(directory.c.path == root, under(directory.c.path, root))
                self._all = self._records("all", (root, *path_range(root)), condition)
            if self._all is not None:
                return self._all.get(path, (None, None))
        return self._records("one", (path,), directory.c.path == path).get(path, (None, None))

    def _records(
        self, question: str, params: tuple[str, ...], condition: ColumnElement[bool]
    ) -> dict[str, tuple[bytes | None, bytes | None]]:
        """``path -> (patch, base)`` of the directories the question (SQL text) or ``condition`` (SQLAlchemy) names."""
        rows: Iterable[Sequence[Any]]
        if self._cursor is not None:
            self._cursor.execute(self._sql[question], params)
            rows = self._cursor.fetchall()
        else:
            join = directory.outerjoin(directory_files, directory_files.c.path == directory.c.path)
            stmt = select(directory.c.path, directory.c.patch, directory_files.c.files).select_from(join)
            rows = self._conn.execute(stmt.where(condition)).all()
        return {path: (_bytes(patch), _bytes(files)) for path, patch, files in rows}


# A directory's row and its full files record (absent: no base), as ``_records`` reads them.
_RECORDS = "SELECT d.path, d.patch, f.files FROM directory d LEFT JOIN directory_files f ON f.path = d.path"


def _bytes(value: object) -> bytes | None:
    """A stored value as bytes (drivers may give a memoryview); None for anything else."""
    if isinstance(value, bytes):
        return value
    return bytes(value) if isinstance(value, (memoryview, bytearray)) else None

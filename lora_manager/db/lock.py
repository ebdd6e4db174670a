"""One import at a time per catalog.

SQLite: an exclusive ``flock`` on ``<db>.lock`` beside the database file (its real path). PostgreSQL: a
session-level advisory lock. Both are released by the operating system or the server when
the process dies, so a killed import never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from lora_manager.db.engine import catalog_name, sqlite_path
from lora_manager.errors import LoraError

ADVISORY_KEY = 0x10CA_3A11  # an arbitrary constant that names "lora-manager import"
CHECK_EVERY = 1.0  # seconds between two looks at whether a PostgreSQL lock is still held
_MINE = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = :high AND objid = :low AND objsubid = 1)"
)


class HeldLock:
    """The import lock while it is held; :meth:`check` says whether it still is.

    A file lock lasts as long as this process. A PostgreSQL advisory lock lasts as long as the
    one connection that took it, which sits idle through the import and may be dropped (a
    server restart, ``pg_terminate_backend``, a firewall's idle timeout) while the batches go
    on through fresh connections: another import could then take the lock and write too.
    """

    def __init__(self, conn: Connection | None = None) -> None:
        self._conn = conn
        self._checked = -CHECK_EVERY

    def check(self) -> None:
        """Raise :class:`LoraError` if the lock was lost (looked at most once a second)."""
        if self._conn is None or time.monotonic() - self._checked < CHECK_EVERY:
            return
        self._checked = time.monotonic()
        try:
            held = bool(
                self._conn.execute(_MINE, {"high": ADVISORY_KEY >> 32, "low": ADVISORY_KEY & 0xFFFFFFFF}).scalar()
            )
            self._conn.commit()
        except SQLAlchemyError:  # the connection is gone, and the lock with it
            held = False
        if not held:
            raise LoraError(
                "lost the catalog's import lock: the database connection that held it was dropped (a server "
                "restart?); stopped so that two imports never write at once. What was saved is kept: run the "
                "import again"
            )


def _busy(engine: Engine) -> LoraError:
    return LoraError(
        f"another import is running on the catalog {catalog_name(engine.url)}; retry later, or leave out "
        "--no-wait to wait for it"
    )


@contextlib.contextmanager
def import_lock(
    engine: Engine, wait: bool = True, on_wait: Callable[[], None] | None = None, poll_seconds: float = 0.2
) -> Iterator[HeldLock]:
    """Hold the catalog's import lock, waiting for another import to end (or, without ``wait``, failing)."""
    if engine.dialect.name == "sqlite":
        lock_path = _lock_file(engine)
        if lock_path is None:
            yield HeldLock()  # an in-memory catalog is private to this process
            return
        import fcntl

        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LoraError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise _busy(engine) from None
                if on_wait:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield HeldLock()
        finally:
            os.close(fd)  # closing releases the flock
        return
    with engine.connect() as conn:
        announced = False
        while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar():
            conn.commit()
            if not wait:
                raise _busy(engine)
            if on_wait and not announced:
                on_wait()
                announced = True
            time.sleep(poll_seconds)
        conn.commit()
        try:
            yield HeldLock(conn)
        finally:
            # A dropped connection took the lock with it: that is no error to put in the place of
            # the one (if any) that ends the import.
            with contextlib.suppress(SQLAlchemyError):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                conn.commit()


def import_running(engine: Engine) -> bool:
    """Whether an import holds the catalog's import lock right now (nothing is taken or created).

    A run the catalog records as running while this is False was killed: it never got to
    record how it ended.
    """
    if engine.dialect.name == "sqlite":
        lock_path = _lock_file(engine)
        if lock_path is None:
            return False
        import fcntl

        try:
            fd = os.open(lock_path, os.O_RDONLY)
        except OSError:  # no lock file: no import ever ran here
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
    held = text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = :high AND objid = :low AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    )
    with engine.connect() as conn:
        return bool(conn.execute(held, {"high": ADVISORY_KEY >> 32, "low": ADVISORY_KEY & 0xFFFFFFFF}).scalar())


def _lock_file(engine: Engine) -> str | None:
    """``<db>.lock`` beside a SQLite catalog; None for one in memory.

    Named after the real file, so that every path to one catalog (a link to it, a link to its
    folder, a relative path) shares one lock.
    """
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    return None if path is None else f"{os.path.realpath(path)}.lock"

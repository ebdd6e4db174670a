"""Retry a short transaction when the database fails in a way that goes away by itself.

A shared PostgreSQL catalog drops connections (a restart, a failover, an admin's
``pg_terminate_backend``) and aborts transactions that deadlock or fail to serialize; a
SQLite file stays "locked" when another writer outlives the busy timeout. None of these
says anything about our data, so the transaction is run again a few times with a growing,
jittered pause (two machines must not retry in step). What the caller's objects recorded
during a failed attempt is undone first, so a retried batch is not counted twice. When
the attempts run out, the failure becomes one clear :class:`LoraError` (exit 2) instead of
a traceback; everything committed before stays committed.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from lora_manager.errors import EXIT_USAGE, LoraError

T = TypeVar("T")

ATTEMPTS = 5
BASE_DELAY = 0.1  # seconds before the second attempt; doubled each time (0.1, 0.2, 0.4, 0.8)
# PostgreSQL SQLSTATEs worth another try: serialization failure, deadlock, the server going
# away under us (admin shutdown, crash, "cannot connect now"), too many connections. Class 08
# (connection exceptions) is matched as a whole.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})
SQLITE_BUSY, SQLITE_LOCKED = 5, 6
# What a PostgreSQL server says when it refuses a connection for good (no role, no database, a
# wrong password): no new attempt will meet anything else.
_REFUSALS = ("does not exist", "authentication failed", "password", "permission denied", "no pg_hba.conf entry")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure that a new attempt may not meet again."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:  # SQLAlchemy saw the connection die
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    if type(orig).__name__ == "OperationalError" and type(orig).__module__.startswith("psycopg"):
        # No connection could be made: psycopg has no SQLSTATE then. A server restarting or
        # refusing for a moment is worth another try; one that answered who may not connect is not.
        text = str(orig).lower()
        return not any(word in text for word in _REFUSALS)
    code = getattr(orig, "sqlite_errorcode", None)  # sqlite3; extended codes keep the primary in the low byte
    if code is not None:
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def retrying(
    work: Callable[[], T],
    what: str,
    attempts: int = ATTEMPTS,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """``work()``, run again after a transient database error, at most ``attempts`` times in all.

    ``on_retry(attempt, error)`` is called before each pause (to log, or to count).
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise gave_up(what, attempts, exc) from None
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(BASE_DELAY * 2 ** (attempt - 1) * random.uniform(0.75, 1.25))
    raise AssertionError("unreachable")  # pragma: no cover


def in_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    what: str,
    keep: Iterable[object] = (),
    attempts: int = ATTEMPTS,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """``work(conn)`` in one transaction, retried as :func:`retrying` does.

    The dicts, lists and sets held by the objects in ``keep`` (their attributes) are put back
    as they were before a failed attempt: the transaction rolled back, so must they.
    """
    keep = list(keep)

    def attempt() -> T:
        saved = [_containers(obj) for obj in keep]
        try:
            with engine.begin() as conn:
                return work(conn)
        except BaseException:
            for obj, state in zip(keep, saved, strict=True):
                vars(obj).update(state)
            raise

    return retrying(attempt, what, attempts, on_retry)


def gave_up(what: str, attempts: int, exc: DBAPIError) -> LoraError:
    text = str(exc.orig or exc).strip()
    cause = text.splitlines()[0] if text else type(exc.orig or exc).__name__
    return LoraError(
        f"{what}: the database failed {attempts} times in a row ({cause}); what was saved before is kept: "
        "run the command again once the database is reachable",
        EXIT_USAGE,
    )


def _containers(obj: object) -> dict[str, Any]:
    """Shallow copies of the mutable containers among ``obj``'s attributes."""
    return {k: copy.copy(v) for k, v in vars(obj).items() if isinstance(v, dict | list | set)}

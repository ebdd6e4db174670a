"""Open the catalog: resolve ``--db``/``LORA_DB``, create the engine, set SQLite's pragmas.

A bare path means a SQLite file, named exactly by it (``%``, ``?`` and ``#`` are part of a file
name, not URL syntax); anything with ``://`` is a SQLAlchemy URL (PostgreSQL for a shared
catalog). The default is ``catalog.db`` in the user's data directory.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from lora_manager.errors import LoraError

# SQLAlchemy logs some failures with their traceback (a connection that raised while it was
# closed, e.g. on Ctrl-C) and raises or handles them too; with no handler configured, Python's
# last-resort handler would print that traceback to the user.
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())

ENV_VAR = "LORA_DB"
WAL_CHECKPOINT_PAGES = 10_000
BUSY_TIMEOUT_MS = 30_000
# libpq's connect_timeout for a PostgreSQL catalog whose URL (or PGCONNECT_TIMEOUT) sets none. A
# server that accepts the connection and never answers (a stuck host, a port that is no
# PostgreSQL) held every command for psycopg's own default, 130 s; a server that answers at all
# answers within a second. psycopg waits at least 2 s whatever is asked.
CONNECT_TIMEOUT_S = 10
# libpq's TCP keepalives for a PostgreSQL catalog whose URL sets none of its own. libpq sends
# them by default, but only after the system's idle time (two hours on Linux): a command waiting
# for an answer from a server whose host died, or whose network went away, waited that long.
# With these, the silence is noticed after about two minutes, and the command fails with a
# connection error. A server busy with a long statement still answers the probes (its system
# does): only a peer that is gone stops answering. They also keep a firewall or NAT from
# dropping the import lock's connection, which sits idle while the batches are written.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 60, "keepalives_interval": 10, "keepalives_count": 6}


def default_database_path() -> Path:
    """``catalog.db`` in the platform's user data directory (e.g. ~/.local/share/lora-manager)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("lora-manager", appauthor=False)) / "catalog.db"


def database_url(value: str | None, source: str = "--db") -> str:
    """The SQLAlchemy URL for ``--db`` (or ``LORA_DB``, or the default path).

    ``source`` is where ``value`` came from (``--db``, or ``LORA_DB`` when the CLI took it from
    the environment): a message about the value names it, so the user knows what to fix.
    """
    if value == "":  # ``--db "$UNSET"``: not the default catalog, which is not what was asked for
        raise LoraError(f"{source} is empty: give the catalog's path or URL, or leave {source} out for the default")
    if not value:
        env = os.environ.get(ENV_VAR)
        value, source = (env, ENV_VAR) if env else (str(default_database_path()), "the default catalog")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of the command line or the environment
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise LoraError(
            f"{source} '{_hide_password(shown)}' is not valid UTF-8; SQLite needs a UTF-8 path to the catalog file"
        ) from None
    if "://" in value:
        return _parsed_url(value, source)
    path = Path(value).expanduser()
    if (st := catalog_file_stat(path)) is not None and stat.S_ISDIR(st.st_mode):
        raise LoraError(f"{source} {value}: is a directory; give a file path such as {path / 'catalog.db'}")
    return file_url(path)


def file_url(path: Path) -> str:
    """The URL of the SQLite file at ``path``, which names that file exactly.

    ``URL.create`` quotes what URL syntax would read otherwise (``%41`` as ``A``, ``?x`` as a
    query, ``#`` as a fragment), and ``make_url`` reads it back as the same path.
    """
    return URL.create("sqlite", database=str(path.absolute())).render_as_string(hide_password=False)


def catalog_name(url: str | URL) -> str:
    """The catalog as messages and ``status`` name it: a SQLite file by its path, anything else by
    its URL with the password hidden."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return parsed.database
    return parsed.render_as_string(hide_password=True)


def _parsed_url(value: str, source: str) -> str:
    """``value``, a SQLAlchemy URL, checked and normalised; a usage error (password hidden) if unusable."""
    example = "e.g. postgresql+psycopg://user:password@host/dbname or sqlite:////absolute/path.db"
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # a port that is no number, an unclosed [IPv6] bracket, ...
        raise LoraError(f"{source} {_hide_password(value)!r} is not a valid database URL ({example})") from None
    if url.get_backend_name() == "sqlite":
        shown = _hide_password(value)  # as typed: the rendered URL would show ":memory:" as "%3Amemory%3A"
        if url.host or url.port or url.username:
            raise LoraError(f"{source} {shown!r}: a SQLite URL names no host; give sqlite:////absolute/path.db")
        if url.query:
            # pysqlite would ignore them (with a raw warning) unless uri=true, which changes how the
            # path is read: refuse rather than open the catalog in a way the user did not ask for.
            raise LoraError(
                f"{source} {shown!r}: SQLite URLs take no query parameters ({', '.join(sorted(url.query))}); "
                "give the file path alone"
            )
        if not url.database or url.database == ":memory:":
            raise LoraError(
                f"{source} {shown!r} is a SQLite database in memory, which keeps nothing once the command ends; "
                "a catalog must be a file: give its path (e.g. ~/lora/catalog.db)"
            )
        url = url.set(database=str(Path(url.database).absolute()))  # relative: to the working folder, as a path
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("", "psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _hide_password(value: str) -> str:
    """``value`` with whatever stands between ``user:`` and the last ``@`` (and a ``password=``) as ``***``.

    For a URL that SQLAlchemy could not parse (so cannot render with the password hidden);
    hiding too much of a malformed URL is fine, showing a password is not.
    """
    value = re.sub(r"^([^:/?#]*://[^:/@?#]*:)[^@]*@", r"\1***@", value)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", value)  # libpq's ?password=...


def catalog_file_stat(path: Path) -> os.stat_result | None:
    """``stat`` of the catalog file, or None when it does not exist yet.

    A path the system refuses (a name over NAME_MAX, a loop of links, a folder that may not be
    searched) is a usage error naming it and the reason, before SQLite reports it as "unable to
    open database file".
    """
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise LoraError(f"cannot use the catalog file {path}: {exc.strerror or exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None (PostgreSQL, in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def is_blank_file(path: Path, st: os.stat_result) -> bool:
    """Whether the catalog file is empty (``touch``, or made by an import stopped before its first
    write) with no write-ahead log beside it: no catalog yet, which a command that only reads
    leaves as it is, as it would a missing file."""
    if not stat.S_ISREG(st.st_mode) or st.st_size > 0:
        return False
    try:
        return os.stat(f"{path}-wal").st_size == 0
    except OSError:
        return True


def refuse_foreign_file(path: Path) -> None:
    """Refuse a SQLite file that holds another program's tables, before anything is written to it.

    Opening it as a catalog would switch it to WAL and add our tables: a mistyped ``--db``
    must not change another program's database, even for ``lora list``. The file is read
    read-only (see ``migrate.is_foreign`` for what passes). What is no SQLite file at all is
    left for the open to report.
    """
    import sqlite3

    from lora_manager.db.migrate import foreign_catalog, is_foreign

    try:
        con = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error:
        return
    if is_foreign(tables):
        raise foreign_catalog(str(path), tables)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside an import; the busy timeout makes overlapping writers wait.

    The WAL is copied back into the database every 10,000 pages (40 MB) rather than SQLite's
    1,000: an import's batches rewrite the same index pages again and again, and each
    checkpoint copies and syncs them once more (a 100,000-model import: 5% faster). The
    last connection to close still checkpoints everything.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _json_dumps(value: Any) -> str:
    """JSON columns through orjson (several times faster than json.dumps on a cold import).

    A value the importer's readers serialised already (``db.jsontext``) passes through. The
    module (and orjson) load with the first value: a command that writes no JSON never loads them.
    """
    global _dumps
    if _dumps is None:
        from lora_manager.db.jsontext import dumps

        _dumps = dumps
    return _dumps(value)


_dumps: Callable[[Any], str] | None = None


# Every engine this process made and still uses, so that a command can close them on its way out.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def dispose_all() -> None:
    """Close every catalog connection this process opened (a SQLite file is checkpointed on its last close)."""
    for engine in list(_ENGINES):
        engine.dispose()


def create_catalog_engine(url: str, create: bool = True) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created on first use.

    With ``create`` False, a SQLite catalog file that does not exist (or is an empty file, see
    :func:`is_blank_file`) is not made: the engine is an empty catalog in memory instead (see
    :func:`is_stand_in`). A command that only reads must leave nothing behind, least of all at
    a mistyped ``--db`` path.
    """
    path = sqlite_path(url)
    if path is not None:
        st = catalog_file_stat(path)
        if not create and (st is None or is_blank_file(path, st)):
            if st is None:
                _check_could_be_made(path)
            return _in_memory()
        if st is not None and st.st_size > 0 and stat.S_ISREG(st.st_mode):
            refuse_foreign_file(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoraError(f"cannot create the database directory {path.parent}: {exc.strerror}") from None
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise LoraError(
                f"cannot open database {parsed!r}: {backend} is not supported "
                "(a catalog is a SQLite file or a PostgreSQL URL)"
            )
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, json_serializer=_json_dumps)
            event.listen(engine, "connect", _sqlite_pragmas)
            if path is not None:
                event.listen(engine, "handle_error", functools.partial(_explain_unwritable, path))
        else:
            # No pool: a command runs a handful of short transactions, so pooling saves little, while
            # a pooled connection outlives the command and is dropped unclosed at exit (noise in the
            # server's log, a leak under tests). A fresh connection per transaction also means that
            # a connection the server dropped between batches is never reused.
            chosen = _chosen_connect_timeout(parsed)
            connect_args: dict[str, int] = {} if chosen else {"connect_timeout": CONNECT_TIMEOUT_S}
            if not any(name.startswith("keepalives") for name in parsed.query):
                connect_args.update(KEEPALIVES)
            engine = create_engine(url, poolclass=NullPool, json_serializer=_json_dumps, connect_args=connect_args)
            _quiet_psycopg()
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        hint = " (install the extra: pip install 'lora-manager[postgres]')" if isinstance(exc, ImportError) else ""
        raise LoraError(f"cannot open database {catalog_name(url)}: {exc}{hint}") from None
    _ENGINES.add(engine)
    return engine


# What SQLite answers when the catalog, its folder or its -wal/-shm files may not be written
# (SQLITE_READONLY_DIRECTORY, _RECOVERY, _CANTINIT, ... share the prefix), or a new catalog
# cannot be made: "attempt to write a readonly database", "unable to open database file".
_UNWRITABLE = ("SQLITE_READONLY", "SQLITE_CANTOPEN")


def _explain_unwritable(path: Path, context: ExceptionContext) -> None:
    """An error SQLite gives when the catalog may not be written becomes one that names what is not
    writable, and why (SQLAlchemy calls this for every database error of the engine, on connect too)."""
    name = getattr(context.original_exception, "sqlite_errorname", "")
    if not name.startswith(_UNWRITABLE):
        return
    message = unwritable(path)
    if message is not None:
        raise LoraError(message)


def unwritable(path: Path) -> str | None:
    """Why this user cannot write the SQLite catalog at ``path`` (or make it), or None when nothing says so.

    WAL needs ``NAME-wal`` and ``NAME-shm`` beside the catalog, made by whoever opens it first,
    even to read: a catalog in a folder this user may not write cannot be opened at all. (SQLite
    could read it as ``immutable``, but would then miss or tear what another user's import writes.)
    """
    path = path.absolute()
    folder = path.parent
    if not os.path.lexists(path):
        if _writable(folder):
            return None
        return (
            f"cannot create the catalog {path}: its folder {folder} {_why(folder)}; "
            "give a path in a folder you can write"
        )
    if not _writable(folder):
        return (
            f"cannot open the catalog {path}: its folder {folder} {_why(folder)}, and SQLite must create "
            f"{path.name}-wal and {path.name}-shm beside the catalog even to read it; make the folder "
            "writable, or copy the catalog into one you can write"
        )
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if os.path.exists(target) and not _writable(target):
            return (
                f"cannot write the catalog {path}: {'the file' if target == path else target} {_why(target)}; "
                "make it writable (or run as its owner), or copy the catalog somewhere you can write"
            )
    return None


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def _why(path: Path) -> str:
    """Why ``path`` is not writable: a read-only mount, or its permissions."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        pass
    return "is not writable by this user"


def _chosen_connect_timeout(url: URL) -> str | None:
    """The connect timeout the user chose, as a message says it: the URL's ``?connect_timeout=``, or
    libpq's ``PGCONNECT_TIMEOUT`` (which psycopg reads when the URL says nothing); None when neither
    is set (ours applies, and would override both)."""
    if "connect_timeout" in url.query:
        return f"the URL's connect_timeout ({url.query['connect_timeout']} s)"
    if os.environ.get("PGCONNECT_TIMEOUT"):
        return f"PGCONNECT_TIMEOUT ({os.environ['PGCONNECT_TIMEOUT']} s)"
    return None


def connect_timeout_said(url: URL) -> str:
    """How long a PostgreSQL connection attempt of ``url`` waits for the server, as a message says it."""
    return _chosen_connect_timeout(url) or f"{CONNECT_TIMEOUT_S} s"


def _quiet_psycopg() -> None:
    """psycopg logs what it ignores while a dropped connection is torn down ("error ignored
    terminating <psycopg.Pipeline [BAD]>"); with no handler, Python printed it on stderr, ahead
    of our own one-line error. One handler, however many catalogs a process opens."""
    import logging

    logger = logging.getLogger("psycopg")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _check_could_be_made(path: Path) -> None:
    """A usage error when ``path`` could never be a catalog file (a file stands where a folder of it would)."""
    for parent in path.absolute().parents:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LoraError(f"cannot use the catalog file {path}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise LoraError(f"cannot use the catalog file {path}: {parent} is not a directory")
        return


def _in_memory() -> Engine:
    """An empty catalog in memory, one connection shared by every use (so it keeps its schema)."""
    from sqlalchemy.pool import StaticPool

    engine = create_engine("sqlite://", poolclass=StaticPool, json_serializer=_json_dumps)
    event.listen(engine, "connect", _sqlite_pragmas)
    _ENGINES.add(engine)
    return engine


def is_stand_in(engine: Engine) -> bool:
    """Whether ``engine`` is the empty in-memory catalog that stands for a file not made yet."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")

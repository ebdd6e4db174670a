"""Bring a catalog's schema to the one this release expects, with the Alembic history in the package.

Every command opens the catalog through :func:`ensure_schema`. Its fast path is one query:
when the stored revision is :data:`HEAD` nothing else happens and Alembic is not even
imported, so ``lora list`` pays almost nothing for it. Otherwise :func:`upgrade` takes a lock
(``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock on PostgreSQL), reads the
revision again (a concurrent first open may have done the work meanwhile) and runs the
missing migrations inside that same transaction: a crash or a kill leaves either the old
schema or the new one, never half of it.

A catalog stamped with a revision this release does not know was written by a newer
release: it is refused and left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from lora_manager.db.engine import catalog_name, connect_timeout_said
from lora_manager.errors import LoraError, database_cause

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in ``migrations/versions``; a test checks that they agree. Kept as a
# constant so that the fast path never has to import Alembic and read the scripts.
HEAD = "0014"
MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
# Distinct from the import lock's key: an upgrade must not wait for an import to finish.
MIGRATE_LOCK_KEY = 0x10CA_3A12
# The tables of revision 0001: a catalog that has them but no version table was created
# before migrations existed (``create_all``) and is adopted at 0001.
CORE_TABLES = ("adapter", "adapter_tag", "entry", "import_run", "import_failure")


@dataclass(frozen=True)
class SchemaState:
    """Where a catalog's schema stands; ``current`` is None for a blank database."""

    current: str | None
    head: str
    known: bool  # False: stamped by a newer release
    legacy: bool = False  # no revision, but the tables of 0001: made before migrations existed

    @property
    def pending(self) -> bool:
        return self.known and self.current != self.head


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` built in code (no ``alembic.ini``): the scripts in the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> set[str]:
    """Every revision this release ships."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def script_head() -> str:
    """The head revision as the scripts say (the truth :data:`HEAD` must match)."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:  # pragma: no cover - a packaging mistake, caught by the tests
        raise RuntimeError(f"the migration history has {len(heads)} heads: {heads}")
    return heads[0]


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the catalog; None for a blank (or pre-migration) database."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def ensure_schema(engine: Engine) -> None:
    """Upgrade the catalog to :data:`HEAD` unless it is there already (one cheap query).

    A database that cannot be reached is reported at once: the upgrade would only try again and
    fail the same way, after waiting as long once more for a server that never answers.
    """
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise _cannot_open(engine, exc) from None
    with conn:
        try:
            if conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == HEAD:
                return
        except DBAPIError:
            pass  # no version table yet: the slow path says what the database holds
    upgrade(engine)


def schema_state(engine: Engine) -> SchemaState:
    """The catalog's revision against this release's head, without changing anything."""
    try:
        with engine.connect() as conn:
            current = current_revision(conn)
            legacy = current is None and _unversioned(engine, conn)
    except SQLAlchemyError as exc:
        raise _cannot_open(engine, exc) from None
    return SchemaState(current, HEAD, current is None or current in known_revisions(), legacy)


def _unversioned(engine: Engine, conn: Connection) -> bool:
    """For a database without a revision: whether it holds our tables, made before migrations
    existed (adopted at 0001), or is blank (False). Another program's database is refused, and
    so is ours when its version table is there but empty (its revision is lost)."""
    tables = set(inspect(conn).get_table_names())
    if is_foreign(tables):
        raise foreign_catalog(catalog_name(engine.url), tables)
    if not all(t in tables for t in CORE_TABLES):
        return False
    if VERSION_TABLE in tables:
        raise LoraError(
            f"the revision record of the catalog {catalog_name(engine.url)} is empty (table {VERSION_TABLE} has "
            "no row), so which upgrades it needs cannot be told; it was not changed. Restore it from a backup, "
            "or import into a new catalog"
        )
    return True


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run the missing migrations under the migration lock; returns ``(from, to)`` revisions."""
    state = schema_state(engine)
    if not state.known:
        raise _newer(engine, state.current)
    try:
        with _migration_transaction(engine) as conn:
            current = current_revision(conn)  # again: another process may have upgraded meanwhile
            if current == HEAD:
                return current, HEAD
            legacy = current is None and _unversioned(engine, conn)
            if current is None and not legacy and _create_blank_sqlite(conn):
                return current, HEAD
            if current is not None and current not in known_revisions():
                raise _newer(engine, current)
            from alembic import command

            config = alembic_config(connection=conn)
            if legacy:
                command.stamp(config, "0001")
                current = "0001"
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise _cannot_open(engine, exc) from None
    return current, HEAD


def is_foreign(tables: set[str]) -> bool:
    """Whether a database holding ``tables`` (``sqlite_*`` ones left out) is another program's.

    Blank, a catalog (the version table), or made before migrations existed (the tables of
    revision 0001) is ours.
    """
    tables = {t for t in tables if not t.startswith("sqlite_")}
    return bool(tables) and VERSION_TABLE not in tables and not all(t in tables for t in CORE_TABLES)


def foreign_catalog(where: str, tables: set[str]) -> LoraError:
    """The refusal of a database that holds another program's tables."""
    named = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return LoraError(f"{where} is not a lora-manager catalog (it holds the tables {named}); it was not changed")


def _create_blank_sqlite(conn: Connection) -> bool:
    """Give a blank SQLite file :data:`HEAD`'s schema straight from the table definitions.

    The first ``lora import`` into a new catalog would otherwise import Alembic and replay
    every revision (0.15 s, a twentieth of a 10,000-model import). A test checks that the
    tables, columns, indexes and keys made so are exactly those the migrations make.
    PostgreSQL catalogs always take the migrations: its partial index is declared there only.
    """
    if conn.dialect.name != "sqlite" or inspect(conn).get_table_names():
        return False
    from lora_manager.db.schema import metadata

    metadata.create_all(conn)
    conn.exec_driver_sql(
        f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
        f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
    )
    conn.exec_driver_sql(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)", (HEAD,))
    return True


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that holds the catalog's migration lock until it commits or rolls back."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            with conn.begin():
                conn.execute(select(func.pg_advisory_xact_lock(MIGRATE_LOCK_KEY)))
                yield conn
            return
        # pysqlite would commit before DDL on its own; in AUTOCOMMIT it leaves the transaction to
        # us. Foreign keys go off first (they cannot change inside a transaction) so that batch
        # mode's copy-and-drop of a table cannot cascade into its children.
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # waits out a concurrent opener (busy_timeout)
            try:
                yield conn
                violations = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if violations:
                    raise LoraError(f"the migration would break {len(violations)} references; nothing was changed")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")


def _newer(engine: Engine, revision: Any) -> LoraError:
    return LoraError(
        f"the catalog {catalog_name(engine.url)} was written by a newer lora-manager (revision {revision}); "
        "upgrade lora-manager (pip install -U lora-manager). The catalog was not changed."
    )


def _cannot_open(engine: Engine, exc: SQLAlchemyError) -> LoraError:
    cause = database_cause(exc)
    if type(getattr(exc, "orig", None)).__name__ == "ConnectionTimeout":  # psycopg's, without importing it
        cause += (
            f": no answer from the server within {connect_timeout_said(engine.url)}; check the host and port, "
            "or give a slow server longer with ?connect_timeout=SECONDS in the URL"
        )
    return LoraError(f"cannot open the catalog at {catalog_name(engine.url)}: {cause}")


def compare_type(
    context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any, metadata_type: Any
) -> bool | None:
    """Alembic's type comparison, seeing each of our type decorators as what it is on that database.

    Without it, autogenerate compares the decorator's generic ``impl`` (JSON, TEXT) with what
    PostgreSQL reports (JSONB, TEXT COLLATE "C") and finds differences that are not there.
    """
    from sqlalchemy import Column
    from sqlalchemy.types import TypeDecorator

    if not isinstance(metadata_type, TypeDecorator):
        return None
    type_for = getattr(metadata_type, "type_for", None)
    actual = type_for(context.dialect) if type_for else metadata_type.impl_instance
    return bool(context.impl.compare_type(inspected_column, Column(metadata_column.name, actual)))

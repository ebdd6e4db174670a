"""The catalog's tables. ``adapter``'s column names are our contract (``lora list --json``).

- ``adapter``: one row per ``(name, version)``; metadata columns are refreshed by imports,
  user-state columns (``active``, ``ordinal``, ``archetype``, a user-set ``weight``) never are.
- ``adapter_tag``: the tags again, lowercased and indexed, so ``--tag`` never scans JSON text.
- ``entry``: one row per library entry (a model file and its sidecars) with the signature
  that change detection compares, the identity it claims and its known problems.
- ``directory``: a fingerprint of each walked directory, so an unchanged one costs a stat per file;
  ``directory_names`` and ``directory_files``: its files' names and full files record, read
  only when it changed.
- ``model_file``: every model file seen, with the hashes computed for it (hashes belong to
  files, not to catalog identities).
- ``import_run`` / ``import_failure``: every run, and every file that failed in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JsonType(TypeDecorator[Any]):
    """JSON on SQLite, JSONB on PostgreSQL.

    A decorator rather than ``with_variant`` so that the PostgreSQL dialect is imported only
    when a PostgreSQL catalog is opened: it costs every ``lora list`` 20 ms otherwise.
    """

    impl = JSON
    cache_ok = True

    def type_for(self, dialect: Dialect) -> Any:
        """The plain SQLAlchemy type this column is on ``dialect`` (also what migrations compare)."""
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return JSONB()
        return JSON()

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return self.type_for(dialect)  # SQLAlchemy adapts it; DDL then renders it as written


class TextType(TypeDecorator[str]):
    """Text that compares bytewise on both databases, as SQLite's BINARY does.

    The path-range queries (``key >= 'root/' AND key < 'root0'``) are only right so, and lists
    sort the same everywhere: a database's default collation (en_US, ICU) would put /x/Lib/a
    inside the range of /x/lib.
    """

    impl = Text
    cache_ok = True

    def type_for(self, dialect: Dialect) -> Any:
        """The plain SQLAlchemy type this column is on ``dialect`` (also what migrations compare)."""
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import TEXT

            return TEXT(collation="C")
        return Text()

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return self.type_for(dialect)  # SQLAlchemy adapts it; DDL then renders it as written


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored and read back in UTC on both databases.

    SQLite keeps no offset (14:00+02:00 would be read back as 14:00 UTC) and PostgreSQL
    answers in the session's time zone: both are normalised here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


metadata = MetaData(naming_convention=NAMING)
# INTEGER PRIMARY KEY is SQLite's rowid (autoincrement); BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _text(name: str, nullable: bool = True, **kw: Any) -> Column[Any]:
    return Column(name, TextType(), nullable=nullable, **kw)


def _json(name: str, nullable: bool = False, default: Any = None) -> Column[Any]:
    return Column(name, JsonType(), nullable=nullable, default=default)


def _time(name: str, nullable: bool = True) -> Column[Any]:
    return Column(name, UtcDateTime(), nullable=nullable)


def _int(name: str, nullable: bool = True, **kw: Any) -> Column[Any]:
    return Column(name, BigId, nullable=nullable, **kw)


# Core tables, not ORM classes: every access is SQLAlchemy Core, and the ORM's import and
# class construction would cost each command ~75 ms of start-up.
adapter = Table(
    "adapter",
    metadata,
    Column("id", BigId, primary_key=True),
    _text("name", nullable=False),
    _text("version"),
    # ``version or ''``: NULL never matches ON CONFLICT, so the unique key uses this instead.
    _text("version_key", nullable=False, default=""),
    _text("canonical_version_name"),
    _text("description"),
    _text("author_username", index=True),
    _text("visibility", nullable=False, default="Public"),
    _time("published_at"),
    _json("tags", default=list),
    _json("trained_words", default=list),
    _json("triggers", default=list),
    _text("file_path", nullable=False),
    Column("weight", Float, nullable=False, default=1.0),
    _text("weight_source", nullable=False, default="default"),  # default | sidecar | user
    Column("active", Boolean, nullable=False, default=False),
    _int("ordinal"),
    _text("archetype"),
    Column("archetype_confidence", Float),
    _text("primary_file_name"),
    Column("primary_file_size_kb", Float),
    _text("primary_file_sha256", index=True),
    _text("primary_file_autov2"),
    _text("primary_file_autov3"),
    _text("primary_file_download_url"),
    _text("primary_file_local_path"),
    _json("hash_sources", default=dict),
    Column("supports_generation", Boolean, nullable=False, default=False),
    _text("sd_version"),
    _text("base_model", index=True),
    _int("nsfw_level", nullable=False, default=0),
    _text("activation_text"),
    _text("notes"),
    _text("negative_text"),
    _int("civitai_model_id"),
    _int("civitai_version_id"),
    _text("preview_path"),
    _json("stats", nullable=True),
    _json("extra", default=dict),
    _json("header_metadata", nullable=True),
    _json("sidecars", default=list),
    # Lowercased name, version, author, file name, tags and trigger words: what --search matches.
    _text("search_text", nullable=False, default=""),
    _text("json_file_path"),
    _time("json_file_mtime"),
    _int("json_file_size"),
    _text("entry_key", index=True),
    _time("missing_since"),
    _time("last_ingested_at"),
    _time("created_at", nullable=False),
    _time("updated_at", nullable=False),
    Index("uq_adapter_name_version_key", "name", "version_key", unique=True),
)

adapter_tag = Table(
    "adapter_tag",
    metadata,
    Column("adapter_id", BigId, ForeignKey("adapter.id", ondelete="CASCADE"), primary_key=True),
    _text("tag", nullable=False, primary_key=True, index=True),
)

entry = Table(
    "entry",
    metadata,
    _text("key", nullable=False, primary_key=True),
    _text("signature", nullable=False),
    _text("status", nullable=False),  # ok | failed | skipped | orphan | duplicate
    _text("name"),
    _text("version_key"),
    Column("adapter_id", BigId, ForeignKey("adapter.id", ondelete="SET NULL"), nullable=True, index=True),
    _text("model_path"),
    _json("problems", default=list),
    _time("seen_at", nullable=False),
)
# The duplicates waiting for an identity, found without a scan when its holder lets go of it.
# Partial (only duplicates) on both databases: migration 0005 creates it. Only the SQLite
# condition is declared here, because naming a ``postgresql_`` option makes SQLAlchemy import
# its PostgreSQL dialect on every start (20 ms); the migrations are what build the schema.
Index("ix_entry_duplicate_identity", entry.c.name, entry.c.version_key, sqlite_where=entry.c.status == "duplicate")

# A walked directory's fingerprint: while it matches, none of its entries is looked at. A
# re-import rewrites the row of every directory where a file changed: it is kept small.
directory = Table(
    "directory",
    metadata,
    _text("path", nullable=False, primary_key=True),
    _text("fingerprint", nullable=False),  # '' forces a full look at the directory next time
    _json("counts", default=dict),  # its entries' statuses -> how many
    # Its files record (see ``listings``) as a patch of the full one in ``directory_files``:
    # when the fingerprint changes, which files did. NULL: none (a full look next time).
    Column("patch", LargeBinary),
)

# A walked directory's files' names, compressed, and its full files record, each written only
# when it changes: the names when files are added, removed or renamed, the record then or when
# its patch grows too long (migrations 0012 to 0014). Kept apart from its ``directory`` row: in
# that row they took every directory where a file changed a page of the catalog or two; apart
# from each other, a record is read in one page, and stored again without the names.
directory_names = Table(
    "directory_names",
    metadata,
    _text("path", nullable=False, primary_key=True),
    Column("names", LargeBinary, nullable=False),
)
directory_files = Table(
    "directory_files",
    metadata,
    _text("path", nullable=False, primary_key=True),
    Column("files", LargeBinary, nullable=False),
)

model_file = Table(
    "model_file",
    metadata,
    _text("path", nullable=False, primary_key=True),
    _int("size", nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    _text("sha256", index=True),
    _text("autov3", index=True),
    _text("autov3_source"),
    # The full SHA256 of the tensor data (the bytes after the 8+N header), when we computed it;
    # ``autov3`` is then its first 12 hex. NULL when AutoV3 came from the header or the file is no safetensors.
    _text("tensor_sha256", index=True),
    # The size and mtime the hashes were computed at: a file replaced in place loses its hash.
    _int("hashed_size"),
    Column("hashed_mtime_ns", BigInteger, nullable=True),
    _time("hashed_at"),
    _time("missing_since"),
)

import_run = Table(
    "import_run",
    metadata,
    Column("id", BigId, primary_key=True),
    _time("started_at", nullable=False),
    _time("finished_at"),
    _json("roots", default=list),
    _text("status", nullable=False, default="running"),  # running | completed | interrupted | failed
    Column("dry_run", Boolean, nullable=False, default=False),
    _json("counts", default=dict),
)

import_failure = Table(
    "import_failure",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("run_id", BigId, ForeignKey("import_run.id", ondelete="CASCADE"), nullable=False, index=True),
    _text("path", nullable=False),
    _text("category", nullable=False),
    _text("message", nullable=False),
)

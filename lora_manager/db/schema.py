"""The catalog's tables. ``adapter``'s column names are our contract (``lora list --json``).

- ``adapter``: one row per ``(name, version)``; metadata columns are refreshed by imports,
  user-state columns (``active``, ``ordinal``, ``archetype``, a user-set ``weight``) never are.
- ``adapter_tag``: the tags again, lowercased and indexed, so ``--tag`` never scans JSON text.
- ``entry``: one row per library entry (a model file and its sidecars) with the signature
  that change detection compares, the identity it claims and its known problems.
- ``directory``: a fingerprint of each walked directory, so an unchanged one costs a stat per file.
- ``model_file``: every model file seen, with the hashes computed for it (hashes belong to
  files, not to catalog identities).
- ``import_run`` / ``import_failure``: every run, and every file that failed in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Dialect, Float, ForeignKey, Index, Integer, MetaData, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JsonType(),
        list[str]: JsonType(),
        list[dict[str, Any]]: JsonType(),
        datetime: UtcDateTime(),
        str: TextType(),
        int: BigInteger().with_variant(Integer(), "sqlite"),
    }


class Adapter(Base):
    __tablename__ = "adapter"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    version: Mapped[str | None]
    # ``version or ''``: NULL never matches ON CONFLICT, so the unique key uses this instead.
    version_key: Mapped[str] = mapped_column(default="")
    canonical_version_name: Mapped[str | None]
    description: Mapped[str | None]
    author_username: Mapped[str | None] = mapped_column(index=True)
    visibility: Mapped[str] = mapped_column(default="Public")
    published_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(default=list)
    trained_words: Mapped[list[str]] = mapped_column(default=list)
    triggers: Mapped[list[str]] = mapped_column(default=list)
    file_path: Mapped[str]
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    weight_source: Mapped[str] = mapped_column(default="default")
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    ordinal: Mapped[int | None]
    archetype: Mapped[str | None]
    archetype_confidence: Mapped[float | None] = mapped_column(Float)
    primary_file_name: Mapped[str | None]
    primary_file_size_kb: Mapped[float | None] = mapped_column(Float)
    primary_file_sha256: Mapped[str | None] = mapped_column(index=True)
    primary_file_autov2: Mapped[str | None]
    primary_file_autov3: Mapped[str | None]
    primary_file_download_url: Mapped[str | None]
    primary_file_local_path: Mapped[str | None]
    hash_sources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    supports_generation: Mapped[bool] = mapped_column(Boolean, default=False)
    sd_version: Mapped[str | None]
    base_model: Mapped[str | None] = mapped_column(index=True)
    nsfw_level: Mapped[int] = mapped_column(default=0)
    activation_text: Mapped[str | None]
    notes: Mapped[str | None]
    negative_text: Mapped[str | None]
    civitai_model_id: Mapped[int | None]
    civitai_version_id: Mapped[int | None]
    preview_path: Mapped[str | None]
    stats: Mapped[dict[str, Any] | None]
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    header_metadata: Mapped[dict[str, Any] | None]
    sidecars: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # Lowercased name, version, author, file name, tags and trigger words: what --search matches.
    search_text: Mapped[str] = mapped_column(default="")
    json_file_path: Mapped[str | None]
    json_file_mtime: Mapped[datetime | None]
    json_file_size: Mapped[int | None]
    entry_key: Mapped[str | None] = mapped_column(index=True)
    missing_since: Mapped[datetime | None]
    last_ingested_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("uq_adapter_name_version_key", "name", "version_key", unique=True),)


class AdapterTag(Base):
    __tablename__ = "adapter_tag"

    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapter.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(primary_key=True, index=True)


class LibraryEntry(Base):
    __tablename__ = "entry"

    key: Mapped[str] = mapped_column(primary_key=True)
    signature: Mapped[str]
    status: Mapped[str]  # ok | failed | skipped | orphan | duplicate
    name: Mapped[str | None]
    version_key: Mapped[str | None]
    adapter_id: Mapped[int | None] = mapped_column(ForeignKey("adapter.id", ondelete="SET NULL"), index=True)
    model_path: Mapped[str | None]
    problems: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    seen_at: Mapped[datetime]


class LibraryDirectory(Base):
    """A walked directory's fingerprint: while it matches, none of its entries is looked at."""

    __tablename__ = "directory"

    path: Mapped[str] = mapped_column(primary_key=True)
    fingerprint: Mapped[str]  # '' forces a full look at the directory next time
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # its entries' statuses -> how many


class ModelFile(Base):
    __tablename__ = "model_file"

    path: Mapped[str] = mapped_column(primary_key=True)
    size: Mapped[int]
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(index=True)
    autov3: Mapped[str | None] = mapped_column(index=True)
    autov3_source: Mapped[str | None]
    # The full SHA256 of the tensor data (the bytes after the 8+N header), when we computed it;
    # ``autov3`` is then its first 12 hex. NULL when AutoV3 came from the header or the file is no safetensors.
    tensor_sha256: Mapped[str | None] = mapped_column(index=True)
    # The size and mtime the hashes were computed at: a file replaced in place loses its hash.
    hashed_size: Mapped[int | None]
    hashed_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    hashed_at: Mapped[datetime | None]
    missing_since: Mapped[datetime | None]


class ImportRun(Base):
    __tablename__ = "import_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    roots: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(default="running")  # running | completed | interrupted | failed
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ImportFailure(Base):
    __tablename__ = "import_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("import_run.id", ondelete="CASCADE"), index=True)
    path: Mapped[str]
    category: Mapped[str]
    message: Mapped[str]


adapter = Adapter.__table__
adapter_tag = AdapterTag.__table__
entry = LibraryEntry.__table__
directory = LibraryDirectory.__table__
model_file = ModelFile.__table__
import_run = ImportRun.__table__
import_failure = ImportFailure.__table__

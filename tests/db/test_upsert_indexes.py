"""On SQLite, ``upsert`` leaves indexed columns out of its SET list and writes only the indexed values that change.

SQLite rewrites an index whenever one of its columns is in ``DO UPDATE SET``, changed or not. So
every kind of change to an indexed value (an adapter's base model or sha256, NULL to value and
back, an entry's adapter, its move into and out of the partial index of duplicates) must store
exactly what SQLAlchemy's own path, with the full SET list, stored; and an update that changes no
indexed value must write no page of any index, as the WAL shows.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from lora_manager.db import open_catalog, sqlite_plans
from lora_manager.db import repository as repo
from lora_manager.db import upsert as upsert_module
from lora_manager.db.rows import adapter_row, record_row
from lora_manager.db.schema import adapter, entry
from lora_manager.models import AdapterRecord
from tests.db.refusals import refusals

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
BULK = 1201  # more rows than one query of stored values reads (500): three chunks


def _adapter(name: str, when: datetime = NOW, **fields: Any) -> dict[str, Any]:
    fields.setdefault("base_model", "SD 1.5")
    fields.setdefault("primary_file_sha256", hashlib.sha256(name.encode()).hexdigest())
    record = AdapterRecord(name=name, version="v1", file_path=f"/lib/{name}.safetensors", **fields)
    return adapter_row(record_row(record), f"/lib/{name}", when)


def _entry(
    label: str, /, adapter_id: int | None, status: str | None = "ok", when: datetime = NOW, **fields: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": f"/lib/{label}",
        "signature": f"sig-{label}",
        "status": status,
        "name": label,
        "version_key": "v1",
        "adapter_id": adapter_id,
        "model_path": f"/lib/{label}.safetensors",
        "problems": [],
        "seen_at": when,
    }
    return {**row, **fields}


def _scenario(engine: Engine, known: bool = False) -> None:
    """A first import, a user's weight, then a mixed batch with every kind of change to an indexed value.

    ``known``: the second batch is given the stored rows read first in its transaction, as an import gives them.
    """
    bulk = [f"bulk{i:04}" for i in range(BULK)]
    with engine.begin() as conn:
        ids = repo.upsert_adapters(
            conn,
            [
                _adapter("same", author_username="ann"),
                _adapter("model", author_username="ann"),
                _adapter("nobody", author_username=None, base_model=None),
                _adapter("hashed", primary_file_sha256="ab" * 32),
                _adapter("user"),
                *(_adapter(n) for n in bulk),
            ],
        )
        repo.save_entries(
            conn,
            [
                _entry("same", ids["/lib/same"]),
                _entry("model", ids["/lib/model"]),
                _entry("nobody", ids["/lib/nobody"]),
                _entry("hashed", ids["/lib/hashed"]),
                _entry("user", None, "duplicate"),
                _entry("failed", None, "failed", name=None, version_key=None),
                *(_entry(n, ids[f"/lib/{n}"]) for n in bulk),
            ],
        )
    with engine.begin() as conn:
        conn.execute(update(adapter).where(adapter.c.name == "user").values(weight=0.4, weight_source="user"))
    with engine.begin() as conn:
        idents = [(n, "v1") for n in ("same", "model", "nobody", "hashed", "user", "fresh", *bulk)]
        held = repo.owners(conn, idents) if known else None
        keys = [f"/lib/{n}" for n in ("same", "moved", "model", "nobody", "user", "failed", "hashed", *bulk)]
        stored = repo.load_entries_by_key(conn, keys) if known else None
        ids = repo.upsert_adapters(
            conn,
            [
                _adapter("same", LATER, author_username="ann", description="only the description"),
                _adapter("model", LATER, author_username="ann", base_model="an earlier row of the batch"),
                _adapter("nobody", LATER, author_username="bob", base_model="SDXL 1.0"),  # NULL -> value
                _adapter("hashed", LATER, primary_file_sha256=None, author_username="cy"),  # value -> NULL
                _adapter("user", LATER, weight=0.9, weight_source="sidecar"),  # the user's weight stays
                _adapter("fresh", LATER, author_username="dee"),
                *(_adapter(n, LATER, base_model="Pony" if i % 3 == 0 else "SD 1.5") for i, n in enumerate(bulk)),
                {**_adapter("model", LATER, author_username="eve", base_model="SDXL 1.0"), "entry_key": "/lib/moved"},
            ],
            held=held,
        )
        repo.save_entries(
            conn,
            [
                _entry("same", ids["/lib/same"], when=LATER),
                _entry("moved", ids["/lib/moved"], when=LATER, name="model"),  # a new entry takes "model"
                _entry("model", None, "duplicate", when=LATER),  # into the partial index, adapter -> NULL
                _entry("nobody", ids["/lib/nobody"], when=LATER, name=None),  # name -> NULL
                _entry("user", ids["/lib/user"], when=LATER),  # out of the partial index, NULL -> adapter
                _entry("failed", None, "duplicate", when=LATER, version_key="v2"),  # NULL name -> duplicate
                _entry("hashed", ids["/lib/fresh"], when=LATER),  # another adapter
                *(_entry(n, ids[f"/lib/{n}"], when=LATER, signature=f"new-{n}") for n in bulk),
            ],
            stored=stored,
        )


def _tables(path: Path) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    """``adapter`` and ``entry`` as stored, each value with its type; the file must be consistent."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return {
            name: [tuple((type(v).__name__, v) for v in row) for row in db.execute(f"SELECT * FROM {name} ORDER BY 1")]
            for name in ("adapter", "entry")
        }


def _run(path: Path, known: bool = False, every: bool = False) -> list[str]:
    """The scenario on a new SQLite file; the UPDATE statements it sent (``every``: all statements)."""
    engine = open_catalog(str(path))
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if every or statement.startswith("UPDATE"):
            sent.append(statement)

    try:
        _scenario(engine, known)
    finally:
        engine.dispose()
    return sent


def test_upserts_store_what_sqlalchemys_full_set_list_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inserts, unchanged and changed indexed values, NULLs both ways, duplicates in and out: row for row the same."""
    updates = _run(tmp_path / "fast.db")
    with monkeypatch.context() as m:
        m.setattr(sqlite_plans, "plan_for", lambda *_args: None)
        _run(tmp_path / "slow.db")
    with monkeypatch.context() as m:
        m.setattr(upsert_module, "_deferrable", lambda *_args: ())
        assert _run(tmp_path / "full.db") == [updates[0]]  # the user's weight, and nothing else

    fast = _tables(tmp_path / "fast.db")
    assert fast == _tables(tmp_path / "slow.db") == _tables(tmp_path / "full.db")
    # The changed indexed values went out as UPDATEs of just those columns, grouped.
    assert any("SET base_model = ? WHERE" in s for s in updates)
    assert any("SET status = ?, name = ?, version_key = ? WHERE" in s for s in updates)


def test_stored_values_the_caller_read_are_not_read_again_and_end_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import hands the upserts the rows it read (owners, entries): the same rows result, without a second read.

    Only what the caller did not find is read: the identity no row held ("fresh"), once for its stored
    values and once, after the upsert, for its new id; and the entry no row was stored for ("moved").
    """
    asked: list[list[str]] = []  # the names of each owners query
    rows_where_in = repo._rows_where_in

    def recorded(conn: Any, columns: Any, key: Any, values: Any) -> Any:
        if key is adapter.c.name:
            asked.append(list(values))
        return rows_where_in(conn, columns, key, values)

    monkeypatch.setattr(repo, "_rows_where_in", recorded)
    sent = _run(tmp_path / "known.db", known=True, every=True)
    monkeypatch.undo()
    _run(tmp_path / "plain.db")
    assert _tables(tmp_path / "known.db") == _tables(tmp_path / "plain.db")
    second = sent[next(i for i, s in enumerate(sent) if s.startswith("UPDATE")) + 1 :]  # after the user's weight
    assert any(s.startswith("INSERT INTO adapter ") for s in second)
    reads = [s for s in second if s.startswith("WITH b(")]
    assert len(reads) == 2 and all(s.count("(?") == 1 for s in reads)  # one row each: "fresh", "moved"
    # The first batch's ids (1,206 names: three queries), the caller's read (three), the new row's id alone.
    assert [len(names) for names in asked] == [500, 500, 206, 500, 500, 207, 1] and asked[-1] == ["fresh"]


def test_the_scenario_ends_as_expected_on_every_database(engine: Engine) -> None:
    """The values themselves, on SQLite and PostgreSQL (which keeps SQLAlchemy's path)."""
    _scenario(engine)
    with engine.connect() as conn:
        adapters = {r.name: r for r in conn.execute(select(adapter))}
        entries = {r.key.removeprefix("/lib/"): r for r in conn.execute(select(entry))}
        duplicates = conn.execute(select(entry.c.key).where(entry.c.status == "duplicate").order_by(entry.c.key))
        duplicate_keys = duplicates.scalars().all()
    model, nobody, hashed, user = adapters["model"], adapters["nobody"], adapters["hashed"], adapters["user"]
    assert (model.base_model, model.author_username, model.entry_key) == ("SDXL 1.0", "eve", "/lib/moved")
    assert (nobody.base_model, nobody.author_username) == ("SDXL 1.0", "bob")
    assert (hashed.primary_file_sha256, hashed.author_username) == (None, "cy")
    assert (user.weight, user.weight_source) == (0.4, "user")
    assert adapters["same"].description == "only the description"
    assert [adapters[f"bulk{i:04}"].base_model for i in range(4)] == ["Pony", "SD 1.5", "SD 1.5", "Pony"]
    assert (entries["model"].status, entries["model"].adapter_id) == ("duplicate", None)
    assert (entries["user"].status, entries["user"].adapter_id) == ("ok", user.id)
    assert (entries["failed"].name, entries["failed"].version_key) == ("failed", "v2")
    assert entries["nobody"].name is None and entries["hashed"].adapter_id == adapters["fresh"].id
    assert duplicate_keys == ["/lib/failed", "/lib/model"]


def _written(path: Path) -> set[str]:
    """The tables and indexes whose pages the WAL holds (emptied by :func:`_checkpoint` before)."""
    wal = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames = range(32, len(wal) - 24 - page_size + 1, 24 + page_size)  # a 32-byte header, then 24 + page each
    pages = {struct.unpack(">I", wal[at : at + 4])[0] for at in frames}
    with sqlite3.connect(path) as db:
        return {name for name, page in db.execute("SELECT name, pageno FROM dbstat") if page in pages}


def _checkpoint(engine: Engine) -> None:
    with engine.connect() as conn:
        busy, _log, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    assert busy == 0


def test_an_update_that_changes_no_indexed_value_writes_no_index_page(tmp_path: Path) -> None:
    """A re-import of edited descriptions rewrites the rows, not the indexes; a changed base model, only its own."""
    path = tmp_path / "catalog.db"
    engine = open_catalog(str(path))
    names = [f"m{i:04}" for i in range(400)]
    try:
        with engine.begin() as conn:
            ids = repo.upsert_adapters(conn, [_adapter(n, author_username=f"a{i % 7}") for i, n in enumerate(names)])
            repo.save_entries(conn, [_entry(n, ids[f"/lib/{n}"]) for n in names])
        _checkpoint(engine)
        with engine.begin() as conn:
            edited = [_adapter(n, LATER, author_username=f"a{i % 7}", description="new") for i, n in enumerate(names)]
            ids = repo.upsert_adapters(conn, edited)
            repo.save_entries(conn, [_entry(n, ids[f"/lib/{n}"], when=LATER, signature="new") for n in names])
        assert _written(path) == {"adapter", "entry"}  # the rows' pages, no index's

        _checkpoint(engine)
        with engine.begin() as conn:
            repo.upsert_adapters(conn, [{**edited[5], "base_model": "SDXL 1.0"}])
        assert {n for n in _written(path) if n.startswith(("ix_", "uq_"))} == {"ix_adapter_base_model"}
    finally:
        engine.dispose()


def _errors(path: Path) -> list[tuple[type[BaseException], str]]:
    """The errors of bad entry batches: NOT NULL on a new row and on an existing one, a refused value."""
    engine = open_catalog(str(path))
    try:
        with engine.begin() as conn:
            repo.save_entries(conn, [_entry("old", None)])
        bad_rows = (
            [_entry("old", None), _entry("new", None, status=None)],
            [_entry("new", None), _entry("old", None, status=None)],  # only the deferred UPDATE sees it
            [_entry("old", None, seen_at="yesterday")],  # a bind processor refuses it
        )
        seen = refusals(engine, bad_rows, lambda conn, rows: repo.save_entries(conn, list(rows)))
        with engine.connect() as conn:
            assert conn.execute(select(entry.c.key, entry.c.status)).all() == [("/lib/old", "ok")]
    finally:
        engine.dispose()
    return seen


def test_a_refused_value_raises_the_same_error_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NOT NULL status fails the batch as with the full SET list (callers and the retry logic read the type)."""
    fast = _errors(tmp_path / "fast.db")
    monkeypatch.setattr(sqlite_plans, "plan_for", lambda *_args: None)
    assert fast == _errors(tmp_path / "slow.db")
    assert [t for t, _ in fast] == [IntegrityError, IntegrityError, StatementError]


def test_keys_the_database_would_merge_take_the_full_set_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An int key and its text in a TEXT column are two rows in Python and one in SQLite: the last still wins."""

    def run(path: Path) -> list[tuple[tuple[str, Any], ...]]:
        engine = open_catalog(str(path))
        try:
            with engine.begin() as conn:
                repo.save_entries(conn, [_entry("x", None, key="5"), _entry("y", None, key="6")])
            with engine.begin() as conn:
                repo.save_entries(conn, [_entry("b", None, key=5, status="failed"), _entry("c", None, key="5")])
                repo.save_entries(conn, [_entry("d", None, key=6), _entry("e", None, key="6", status="failed")])
        finally:
            engine.dispose()
        return _tables(path)["entry"]

    fast = run(tmp_path / "fast.db")
    monkeypatch.setattr(sqlite_plans, "plan_for", lambda *_args: None)
    assert fast == run(tmp_path / "slow.db")
    assert [(row[0][1], row[2][1], row[3][1]) for row in fast] == [("5", "ok", "c"), ("6", "failed", "e")]


def test_rows_said_to_be_new_read_no_stored_values_and_are_right_even_when_not_new(tmp_path: Path) -> None:
    """``all_new`` (a first import) reads no stored values; a row that exists after all is still updated in full."""
    engine = open_catalog(str(tmp_path / "catalog.db"))
    sent: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    try:
        with engine.begin() as conn:
            repo.upsert_adapters(conn, [_adapter("a"), _adapter("b")], all_new=True)
        assert not any(s.startswith("WITH") for s in sent)  # no read of stored values
        with engine.begin() as conn:
            repo.upsert_adapters(conn, [_adapter("a", LATER, base_model="Pony", author_username="zed")], all_new=True)
            stored = conn.execute(select(adapter.c.name, adapter.c.base_model, adapter.c.author_username)).all()
        assert sorted(stored) == [("a", "Pony", "zed"), ("b", "SD 1.5", None)]
        assert not any(s.startswith("WITH") or s.startswith("UPDATE") for s in sent)
        sent.clear()
        with engine.begin() as conn:  # the same update without the hint: stored values read, then an UPDATE
            repo.upsert_adapters(conn, [_adapter("a", LATER, base_model="SDXL 1.0", author_username="zed")])
        assert [s.split()[0] for s in sent if s.startswith(("WITH", "UPDATE"))] == ["WITH", "UPDATE"]
    finally:
        engine.dispose()


def test_a_column_under_a_unique_constraint_stays_in_the_set_list() -> None:
    """An UPDATE after the upsert would check uniqueness in another order: only plain indexes defer."""
    from sqlalchemy import Column, Index, MetaData, String, Table, UniqueConstraint

    table = Table(
        "t",
        MetaData(),
        Column("k", String, primary_key=True),
        Column("plain", String),
        Column("unique_one", String),
        Column("free", String),
        UniqueConstraint("unique_one"),
        Index("ix_t_plain", "plain"),
        Index("ix_t_unique_one", "unique_one"),  # indexed, but unique through the constraint
    )
    assert upsert_module._deferrable(table, ("k",), ("plain", "unique_one", "free"), frozenset()) == ("plain",)


def test_the_straight_to_the_driver_select_names_its_columns_as_the_compiler_does() -> None:
    """Plain columns are named by hand (no compile); an expression is still compiled."""
    from sqlalchemy.dialects import postgresql, sqlite

    from lora_manager.db.schema import entry

    for dialect in (sqlite.dialect(), postgresql.dialect()):
        for columns, key in (
            ((*repo._OWNER_COLUMNS, repo._OWNER_TAGS, *repo._OWNER_INDEXED), adapter.c.name),
            (repo._ENTRY_COLUMNS, entry.c.key),  # "key" is quoted on SQLite: a keyword there
        ):
            compiled = ", ".join(str(c.compile(dialect=dialect)) for c in columns)
            sql = repo._select_where_in(dialect, columns, key, None)
            assert sql.startswith(f"SELECT {compiled} FROM "), (sql, compiled)
        assert "IS NOT NULL" in repo._select_where_in(dialect, repo._OWNER_COLUMNS, adapter.c.name, None)

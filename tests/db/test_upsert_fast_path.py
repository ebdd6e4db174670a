"""The SQLite fast path of ``upsert``/``insert_many`` stores exactly what SQLAlchemy's own path stored.

One scenario of import writes (two batches, a duplicate key, a user-set weight in between, every
column kind: JSON, aware datetimes in other zones, booleans, defaults) runs on a SQLite file with
the fast path and on another with it switched off: the driver must receive the same SQL with the
same parameters, and both files must read back the same, through SQLAlchemy and as raw values.
On PostgreSQL, which keeps SQLAlchemy's path, the same scenario must read back the same values.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from lora_manager.db import directories, open_catalog, sqlite_plans
from lora_manager.db import repository as repo
from lora_manager.db import upsert as upsert_module
from lora_manager.db.rows import adapter_row, record_row
from lora_manager.db.schema import adapter, adapter_tag, directory, entry, model_file
from lora_manager.db.upsert import upsert
from lora_manager.models import AdapterRecord, SidecarRef
from tests.db.refusals import refusals

NOW = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
LATER = NOW + timedelta(hours=1, microseconds=7)
KOLKATA = timezone(timedelta(hours=5, minutes=30))
TABLES = (adapter, adapter_tag, entry, model_file, directory)


def _row(name: str, version: str | None, entry_key: str, when: datetime, **fields: Any) -> dict[str, Any]:
    record = AdapterRecord(name=name, version=version, file_path=f"/lib/{entry_key}.safetensors", **fields)
    return adapter_row(record_row(record), f"/lib/{entry_key}", when)


def _alpha(when: datetime, **fields: Any) -> dict[str, Any]:
    return _row(
        "Alpha",
        "v1",
        "alpha",
        when,
        published_at=datetime(2023, 1, 2, 3, 4, 5, 600, tzinfo=KOLKATA),
        json_file_mtime=datetime(2023, 6, 1, 0, 0, tzinfo=KOLKATA),
        tags=["Style", "style", "Ünïcode"],
        stats={"rating": 4.5, "counts": [1, 2], "none": None},
        extra={"civitai": {"id": 1, "nested": {"ü": None, "f": 1.25}}},
        hash_sources={"sha256": "civitai"},
        sidecars=[SidecarRef(path="/lib/alpha.civitai.info", dialect="civitai", size=10, mtime_ns=2**62)],
        supports_generation=True,
        **fields,
    )


def _scenario(engine: Engine) -> None:
    """The writes of two import batches, a user's edit between them."""
    with engine.begin() as conn:
        first = [
            _alpha(NOW, weight=0.8, weight_source="sidecar"),
            _row("Beta", None, "beta", NOW, description="first", stats=None),
            _row("Beta", None, "beta2", NOW, description="the last one wins"),
            _row("Gamma", "v2", "gamma", NOW, header_metadata={"ss_network_dim": "16"}, nsfw_level=3),
        ]
        ids = repo.upsert_adapters(conn, first)
        repo.replace_tags(conn, {ids[r["entry_key"]]: r["tags"] for r in first if r["entry_key"] in ids})
        # Only the required columns: every other one takes its default (scalar or callable).
        upsert(
            conn,
            adapter,
            [{"name": "Delta", "version_key": "", "file_path": "/lib/delta", "created_at": NOW, "updated_at": NOW}],
            key=("name", "version_key"),
            update=("file_path",),
        )
        models = [
            {"path": "/lib/alpha.safetensors", "size": 10, "mtime_ns": 5, "missing_since": None},
            {"path": "/lib/gamma.safetensors", "size": 20, "mtime_ns": 6, "missing_since": NOW},
        ]
        repo.save_model_files(conn, models)
        conn.execute(
            update(model_file).values(
                sha256="ab" * 32, autov3="cd" * 6, autov3_source="header", hashed_size=model_file.c.size,
                hashed_mtime_ns=model_file.c.mtime_ns, hashed_at=NOW,
            )
        )  # fmt: skip
    with engine.begin() as conn:  # the user's own state
        conn.execute(
            update(adapter)
            .where(adapter.c.name == "Alpha")
            .values(weight=0.3, weight_source="user", active=True, ordinal=4, archetype="style")
        )
    with engine.begin() as conn:
        second = [
            _alpha(LATER, weight=1.5, weight_source="sidecar", description="refreshed"),
            _row("Gamma", "v2", "gamma", LATER, weight=0.6, weight_source="sidecar", stats={"rating": 1}),
            _row("Epsilon", "", "epsilon", LATER, trained_words=["a", "b"]),
        ]
        ids = repo.upsert_adapters(conn, second)
        repo.replace_tags(conn, {ids[r["entry_key"]]: [*r["tags"], "New"] for r in second})
        entries = [
            {
                "key": f"/lib/{k}",
                "signature": f"sig-{k}",
                "status": "ok",
                "name": n,
                "version_key": v,
                "adapter_id": ids.get(f"/lib/{k}"),
                "model_path": f"/lib/{k}.safetensors",
                "problems": [{"path": f"/lib/{k}", "kind": "warning", "message": "ö"}] if k == "gamma" else [],
                "seen_at": LATER,
            }
            for k, n, v in (("alpha", "Alpha", "v1"), ("gamma", "Gamma", "v2"), ("epsilon", "Epsilon", ""))
        ]
        repo.save_entries(conn, [*entries, {**entries[0], "signature": "sig-alpha-last"}])
        # alpha unchanged (keeps its hashes), gamma resized (loses them), a new file.
        repo.save_model_files(
            conn,
            [
                {"path": "/lib/alpha.safetensors", "size": 10, "mtime_ns": 5, "missing_since": None},
                {"path": "/lib/gamma.safetensors", "size": 21, "mtime_ns": 6, "missing_since": None},
                {"path": "/lib/epsilon.safetensors", "size": 30, "mtime_ns": 7, "missing_since": None},
            ],
        )
        directories.save_directories(
            conn,
            [
                {"path": "/lib", "fingerprint": "fp", "patch": b"\x00patch", "counts": {"ok": 3}},
                {"path": "/lib", "fingerprint": "fp2", "patch": None, "counts": {}},
            ],
        )


def _read(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every table as SQLAlchemy reads it back, in primary-key order."""
    with engine.connect() as conn:
        return {
            t.name: [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
            for t in TABLES
        }


def _raw(path: Path) -> dict[str, list[tuple[tuple[str, Any], ...]]]:
    """Every table as stored in the file: each value with its Python type (int 1 is not real 1.0)."""
    with sqlite3.connect(path) as db:
        return {
            t.name: [
                tuple((type(v).__name__, v) for v in row)
                for row in db.execute(
                    f"SELECT * FROM {t.name} ORDER BY {', '.join(c.name for c in t.primary_key.columns)}"
                )
            ]
            for t in TABLES
        }


Statements = list[tuple[str, Any, bool]]


def _run_recorded(path: Path) -> tuple[Statements, dict[str, list[dict[str, Any]]]]:
    """Run the scenario on a new SQLite file: the writes the driver received (statement, parameters,
    whether SQLAlchemy compiled it), and the tables read back."""
    engine = open_catalog(str(path))
    sent: Statements = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        if statement.startswith(("INSERT", "DELETE")):
            sent.append((statement, parameters, context.compiled is not None))

    try:
        _scenario(engine)
        return sent, _read(engine)
    finally:
        engine.dispose()


def test_the_fast_path_sends_and_stores_what_sqlalchemy_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same statements and parameters with the full SET list; the same stored rows with indexed columns deferred."""
    with monkeypatch.context() as m:
        m.setattr(upsert_module, "_deferrable", lambda *_args: ())  # see test_upsert_indexes.py
        fast_sent, fast = _run_recorded(tmp_path / "fast.db")
    with monkeypatch.context() as m:
        m.setattr(sqlite_plans, "plan_for", lambda *_args: None)
        slow_sent, slow = _run_recorded(tmp_path / "slow.db")
    deferring_sent, deferring = _run_recorded(tmp_path / "deferring.db")

    assert [(s, p) for s, p, _ in fast_sent] == [(s, p) for s, p, _ in slow_sent]
    inserts = [compiled for s, _, compiled in fast_sent if s.startswith("INSERT")]
    assert inserts and not any(inserts)  # every insert took the fast path...
    assert all(compiled for s, _, compiled in slow_sent if s.startswith("INSERT"))  # ...and none here
    assert [s for s, _, _ in deferring_sent] != [s for s, _, _ in fast_sent]  # shorter SET lists
    assert fast == slow == deferring
    assert _raw(tmp_path / "fast.db") == _raw(tmp_path / "slow.db") == _raw(tmp_path / "deferring.db")
    _check_values(fast)


def test_the_scenario_reads_back_the_same_on_every_database(engine: Engine) -> None:
    _scenario(engine)
    _check_values(_read(engine))


def _check_values(tables: dict[str, list[dict[str, Any]]]) -> None:
    """What the scenario must leave, whichever database and path wrote it."""
    rows = {r["name"]: r for r in tables["adapter"]}
    assert sorted(rows) == ["Alpha", "Beta", "Delta", "Epsilon", "Gamma"]
    alpha, beta, gamma, delta = rows["Alpha"], rows["Beta"], rows["Gamma"], rows["Delta"]
    # The user's state survives the second batch; the metadata does not.
    assert (alpha["weight"], alpha["weight_source"], alpha["active"], alpha["ordinal"]) == (0.3, "user", True, 4)
    assert alpha["description"] == "refreshed"
    assert (gamma["weight"], gamma["weight_source"], gamma["stats"]) == (0.6, "sidecar", {"rating": 1})
    # De-duplicated by key, the last row winning.
    assert (beta["description"], beta["entry_key"]) == ("the last one wins", "/lib/beta2")
    # Aware datetimes, in UTC, the same instants.
    assert alpha["published_at"] == datetime(2023, 1, 2, 3, 4, 5, 600, tzinfo=KOLKATA)
    assert alpha["published_at"].tzinfo is UTC and alpha["json_file_mtime"].tzinfo is UTC
    assert (alpha["created_at"], alpha["updated_at"], alpha["last_ingested_at"]) == (NOW, LATER, LATER)
    # JSON, nested and non-ASCII.
    assert alpha["extra"] == {"civitai": {"id": 1, "nested": {"ü": None, "f": 1.25}}}
    assert alpha["stats"] == {"rating": 4.5, "counts": [1, 2], "none": None}
    assert alpha["sidecars"] == [
        {"path": "/lib/alpha.civitai.info", "dialect": "civitai", "size": 10, "mtime_ns": 2**62}
    ]
    assert beta["stats"] is None and gamma["header_metadata"] is None  # refreshed by the second batch
    # Defaults for the columns a row left out.
    assert {k: delta[k] for k in ("visibility", "tags", "weight", "weight_source", "active", "nsfw_level")} == {
        "visibility": "Public",
        "tags": [],
        "weight": 1.0,
        "weight_source": "default",
        "active": False,
        "nsfw_level": 0,
    }
    assert (delta["hash_sources"], delta["extra"], delta["sidecars"], delta["search_text"]) == ({}, {}, [], "")
    assert (delta["stats"], delta["version"], delta["supports_generation"]) == (None, None, False)
    tags = {(r["adapter_id"], r["tag"]) for r in tables["adapter_tag"]}
    assert {t for i, t in tags if i == alpha["id"]} == {"style", "ünïcode", "new"}
    entries = {r["key"]: r for r in tables["entry"]}
    assert entries["/lib/alpha"]["signature"] == "sig-alpha-last"
    assert entries["/lib/gamma"]["problems"] == [{"path": "/lib/gamma", "kind": "warning", "message": "ö"}]
    assert (
        entries["/lib/epsilon"]["seen_at"] == LATER and entries["/lib/epsilon"]["adapter_id"] == rows["Epsilon"]["id"]
    )
    files = {r["path"]: r for r in tables["model_file"]}
    assert (files["/lib/alpha.safetensors"]["sha256"], files["/lib/alpha.safetensors"]["hashed_at"]) == ("ab" * 32, NOW)
    assert (files["/lib/gamma.safetensors"]["sha256"], files["/lib/gamma.safetensors"]["missing_since"]) == (None, None)
    assert tables["directory"] == [{"path": "/lib", "fingerprint": "fp2", "counts": {}, "patch": None}]


def _failures(path: Path) -> list[tuple[type[BaseException], str]]:
    """The errors of bad upserts on a new SQLite file: a missing column, a wrong type, a NOT NULL violation."""
    engine = open_catalog(str(path))
    ok = _row("Ok", None, "ok", NOW)
    without_notes = {k: v for k, v in _row("B", None, "b", NOW).items() if k != "notes"}
    try:
        bad_rows = (
            [ok, without_notes],
            [ok, {**ok, "name": "C", "published_at": "2024-01-01"}],  # a bind processor refuses it
            [ok, {**ok, "name": "C", "file_path": None}],
        )
        seen = refusals(
            engine,
            bad_rows,
            lambda conn, rows: upsert(conn, adapter, rows, key=("name", "version_key"), update=("notes",)),
        )
        with engine.connect() as conn:
            assert conn.execute(select(adapter.c.id)).all() == []  # the transaction rolled back
    finally:
        engine.dispose()
    return seen


def test_errors_are_sqlalchemys_on_the_fast_path_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Callers and the retry logic (which reads ``DBAPIError``) see the same exceptions either way."""
    fast = _failures(tmp_path / "fast.db")
    monkeypatch.setattr(sqlite_plans, "plan_for", lambda *_args: None)
    assert fast == _failures(tmp_path / "slow.db")
    assert [t for t, _ in fast] == [StatementError, StatementError, IntegrityError]

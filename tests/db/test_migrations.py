"""The Alembic history in the package: blank catalogs, old catalogs and newer catalogs, on both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, insert, inspect, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db import repository as repo
from lora_manager.db.engine import create_catalog_engine, database_url
from lora_manager.db.migrate import (
    HEAD,
    MIGRATE_LOCK_KEY,
    alembic_config,
    compare_type,
    ensure_schema,
    schema_state,
    script_head,
)
from lora_manager.db.schema import adapter, adapter_tag, entry, import_failure, import_run, metadata, model_file
from tests.pgserver import PgServer

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    engine = create_catalog_engine(database_url(catalog_url))
    yield engine
    engine.dispose()


def _at(engine: Engine, revision: str) -> None:
    """Migrate a catalog to exactly ``revision``, as an older release would have left it."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), revision)


def _stamp_back(conn: Connection, revision: str) -> None:
    """Make a catalog of this release one that ``revision`` left, to replay the later migrations on it.

    Only the schema those replays depend on is undone: before 0014, a directory's full files
    record was beside its names; before 0013, in its row; before 0012, its names were too.
    """
    if revision < "0014":
        _move_back(conn, "files", "directory_names", "directory_files")
        conn.execute(text("DROP TABLE directory_files"))
    if revision < "0013":
        _give_back_files_column(conn)
    if revision < "0012":
        _move_back(conn, "names", "directory", "directory_names")
        conn.execute(text("DROP TABLE directory_names"))
    conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})


def _move_back(conn: Connection, column: str, into: str, source: str, where: str = "") -> None:
    """Give table ``into`` the binary ``column`` it had before, copied from ``source`` by path."""
    blob = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
    conn.execute(text(f"ALTER TABLE {into} ADD COLUMN {column} {blob}"))
    copied = f"(SELECT {column} FROM {source} WHERE {source}.path = {into}.path)"
    conn.execute(text(f"UPDATE {into} SET {column} = {copied}{where}"))


def _give_back_files_column(conn: Connection, source: str = "directory_names") -> None:
    """``directory.files`` as it was before 0013: each full record (kept in ``source``) that had no changes since."""
    _move_back(conn, "files", "directory", source, " WHERE length(patch) = 0")


def _diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": compare_type}), metadata))


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _dump(engine: Engine) -> dict[str, Any]:
    """Every table's columns and rows: what "untouched" compares."""
    with engine.connect() as conn:
        insp = inspect(conn)
        return {
            t: (
                [c["name"] for c in insp.get_columns(t)],
                sorted(map(repr, conn.execute(text(f'SELECT * FROM "{t}"')).all())),
            )
            for t in sorted(insp.get_table_names())
        }


def _fill_0001(engine: Engine) -> None:
    """Rows in every table of revision 0001, written as that release wrote them."""
    row = {
        "name": "Celestial",
        "version": "v1",
        "version_key": "v1",
        "visibility": "Public",
        "tags": ["anime"],
        "trained_words": ["cel"],
        "triggers": ["cel"],
        "file_path": "/lib/celestial.safetensors",
        "weight": 0.8,
        "weight_source": "user",
        "active": True,
        "hash_sources": {},
        "supports_generation": False,
        "nsfw_level": 0,
        "extra": {"k": [1, 2]},
        "sidecars": [],
        "search_text": "celestial v1",
        "entry_key": "/lib/celestial",
        "published_at": WHEN,
        "created_at": WHEN,
        "updated_at": WHEN,
    }
    with engine.begin() as conn:
        adapter_id = conn.execute(insert(adapter).values(row)).inserted_primary_key[0]
        conn.execute(insert(adapter_tag).values(adapter_id=adapter_id, tag="anime"))
        conn.execute(
            insert(entry).values(
                key="/lib/celestial", signature="sig", status="ok", name="Celestial", version_key="v1",
                adapter_id=adapter_id, problems=[], seen_at=WHEN,
            )
        )  # fmt: skip
        run_id = conn.execute(
            insert(import_run).values(started_at=WHEN, roots=["/lib"], status="completed", dry_run=False, counts={})
        ).inserted_primary_key[0]
        conn.execute(
            insert(import_failure).values(run_id=run_id, path="/lib/x.json", category="invalid_json", message="m")
        )


def test_head_constant_names_the_newest_migration_script() -> None:
    """The fast path trusts HEAD without reading the scripts, so it must be the scripts' head."""
    assert script_head() == HEAD


def test_blank_database_migrates_to_head_and_matches_the_models(engine: Engine) -> None:
    """A new catalog gets the whole history, and it is exactly what schema.py describes."""
    ensure_schema(engine)
    assert _revision(engine) == HEAD
    assert _diff(engine) == []
    assert schema_state(engine).pending is False


@pytest.mark.postgres
def test_text_columns_compare_bytewise_on_postgresql(pg_url: str) -> None:
    """Collation "C" on every text column (Alembic's diff does not look at collations)."""
    engine = create_catalog_engine(pg_url)
    try:
        ensure_schema(engine)
        with engine.connect() as conn:
            loose = conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND data_type = 'text' AND table_name <> 'alembic_version' AND collation_name IS DISTINCT FROM 'C'"
                )
            ).all()
    finally:
        engine.dispose()
    assert loose == []


def test_catalog_at_0001_with_data_upgrades_to_head_losing_nothing(engine: Engine, catalog_url: str) -> None:
    """Opening an old catalog migrates it; its rows, user state included, are all still there."""
    _at(engine, "0001")
    _fill_0001(engine)
    before = {t: d for t, d in _dump(engine).items() if t != "alembic_version"}

    result = CliRunner().invoke(app, ["--db", catalog_url, "list", "--json"])

    assert result.exit_code == 0, result.output
    assert _revision(engine) == HEAD
    assert _diff(engine) == []
    after = _dump(engine)
    # 0008 has every entry read once more: its signature is forgotten, nothing else.
    columns, rows = before["entry"]
    before["entry"] = (columns, [r.replace("'/lib/celestial', 'sig',", "'/lib/celestial', '',") for r in rows])
    assert {t: after[t] for t in before} == before
    (record,) = json.loads(result.stdout)
    assert (record["name"], record["weight"], record["active"], record["extra"]) == (
        "Celestial",
        0.8,
        True,
        {"k": [1, 2]},
    )
    assert record["published_at"] == "2024-05-01T12:00:00+00:00"
    with engine.begin() as conn:  # the new table works
        conn.execute(insert(model_file).values(path="/lib/celestial.safetensors", size=1, mtime_ns=2))


def test_catalog_created_before_migrations_is_adopted_and_upgraded(engine: Engine) -> None:
    """A catalog made by create_all (no version table, an older model_file) keeps its rows."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE directory"))
        conn.execute(text("DROP TABLE directory_names"))
        conn.execute(text("DROP INDEX ix_model_file_tensor_sha256"))
        conn.execute(text("ALTER TABLE model_file DROP COLUMN tensor_sha256"))
        conn.execute(text("INSERT INTO model_file (path, size, mtime_ns) VALUES ('/lib/a.safetensors', 1, 2)"))
    _fill_0001(engine)

    ensure_schema(engine)

    assert _revision(engine) == HEAD
    assert _diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(model_file.c.path, model_file.c.tensor_sha256)).all() == [
            ("/lib/a.safetensors", None)
        ]
        assert conn.execute(select(adapter.c.name)).scalars().all() == ["Celestial"]


def named(catalog_url: str) -> str:
    """How messages name the catalog: a SQLite file by its path, PostgreSQL by its URL without the password."""
    if "://" not in catalog_url:
        return catalog_url
    return make_url(catalog_url).render_as_string(hide_password=True)


def test_catalog_from_a_newer_release_is_refused_and_left_untouched(engine: Engine, catalog_url: str) -> None:
    """An unknown revision means a newer lora-manager wrote it: no command may change it."""
    ensure_schema(engine)
    _fill_0001(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    before = _dump(engine)
    runner = CliRunner()

    listed = runner.invoke(app, ["--db", catalog_url, "list"])
    upgraded = runner.invoke(app, ["--db", catalog_url, "db", "upgrade"])
    status = runner.invoke(app, ["--db", catalog_url, "db", "status", "--json"])

    for result in (listed, upgraded):
        assert result.exit_code == 2, result.output
        assert f"the catalog {named(catalog_url)} was written by a newer lora-manager (revision 9999)" in result.output
        assert "; upgrade lora-manager" in result.output
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["newer_than_this_release"] is True
    assert _dump(engine) == before


def test_db_status_reports_a_pending_upgrade_and_db_upgrade_applies_it(engine: Engine, catalog_url: str) -> None:
    """`db status` changes nothing; `db upgrade` does the work once, then says it is up to date."""
    _at(engine, "0001")
    runner = CliRunner()

    pending = runner.invoke(app, ["--db", catalog_url, "db", "status"])
    assert pending.exit_code == 0, pending.output
    assert "revision: 0001" in pending.stdout and f"head: {HEAD}" in pending.stdout
    assert "upgrade pending" in pending.stdout
    assert _revision(engine) == "0001"

    first = runner.invoke(app, ["--db", catalog_url, "db", "upgrade"])
    again = runner.invoke(app, ["--db", catalog_url, "db", "upgrade"])
    done = runner.invoke(app, ["--db", catalog_url, "db", "status", "--json"])

    assert first.stdout == f"upgraded from revision 0001 to {HEAD}\n"
    assert again.stdout == f"already at revision {HEAD} (head)\n"
    data = json.loads(done.stdout)
    assert (data["revision"], data["head"], data["upgrade_pending"]) == (HEAD, HEAD, False)


def test_db_status_of_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    """Asking about a catalog that does not exist yet must not create it."""
    path = tmp_path / "nowhere" / "catalog.db"
    result = CliRunner().invoke(app, ["--db", str(path), "db", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["exists"] is False
    assert not path.parent.exists()


@pytest.mark.postgres
def test_db_status_hides_the_password(pg_url: str) -> None:
    """The URL is printed for the user to check, never with its secret."""
    url = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["--db", url, "db", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.stdout
    assert json.loads(result.stdout)["database"].startswith("postgresql+psycopg://lora:***@/")


def test_an_up_to_date_catalog_is_opened_without_importing_alembic(db_path: Path) -> None:
    """`lora list` pays one query for the schema check, not Alembic's import and script scan."""
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    code = (
        "import sys; from typer.testing import CliRunner; from lora_manager.cli import app; "
        "assert 'alembic' not in sys.modules; r = CliRunner().invoke(app, ['list', '--json']); "
        "print(r.exit_code, 'alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT)
    assert out.stdout.split() == ["0", "False"]


def _lora(url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LORA_DB": url}
    return subprocess.Popen(
        [sys.executable, "-m", "lora_manager", "status", "--json"],
        env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.postgres
def test_concurrent_first_opens_on_postgresql_both_succeed(pg_url: str, pg_server: PgServer) -> None:
    """Two processes that find a blank catalog at once: one migrates, the other waits for it."""
    import psycopg

    dbname = make_url(pg_url).database
    with psycopg.connect(**pg_server.conninfo(dbname)) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        procs = [_lora(pg_url), _lora(pg_url)]
        deadline = time.monotonic() + 30
        while True:  # both wait behind our lock: they will race for it when we let go
            waiting = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
                (MIGRATE_LOCK_KEY,),
            ).fetchone()
            if waiting and waiting[0] == 2:
                break
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "openers never waited"
            time.sleep(0.01)
        holder.rollback()
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    engine = create_catalog_engine(pg_url)
    try:
        assert _revision(engine) == HEAD
    finally:
        engine.dispose()


def test_concurrent_first_opens_on_sqlite_both_succeed(db_path: Path) -> None:
    """Two processes start on a blank SQLite catalog while it is locked; both end up using it."""
    import sqlite3

    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode = WAL")
        holder.execute("BEGIN IMMEDIATE")
        procs = [_lora(str(db_path)), _lora(str(db_path))]
        deadline = time.monotonic() + 30
        while not all(_has_open(p.pid, db_path) for p in procs):  # both are at the database by now
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "openers never got there"
            time.sleep(0.01)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all(json.loads(out)["adapters"] == 0 for out, _ in results)


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_waiting_duplicates_are_found_through_a_partial_index(engine: Engine) -> None:
    """Only duplicate entries are indexed by identity, and the lookup uses that index (SQLite's plan says so)."""
    ensure_schema(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            ddl = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'ix_entry_duplicate_identity'")
            ).scalar()
            plan = conn.execute(
                text("EXPLAIN QUERY PLAN SELECT key FROM entry WHERE status = 'duplicate' AND name IN ('a', 'b')")
            ).all()
            assert any("ix_entry_duplicate_identity" in str(row) for row in plan)
            # The query the importer sends, as it sends it (straight to the driver).
            sql = repo._select_where_in(conn.dialect, repo._DUPLICATE_COLUMNS, entry.c.name, repo._IS_DUPLICATE).format(
                marks="?, ?"
            )
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("a", "b")).all()
            assert any("ix_entry_duplicate_identity" in str(row) for row in plan)
        else:
            ddl = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_entry_duplicate_identity'")
            ).scalar()
    assert ddl is not None and "WHERE" in ddl.upper() and "duplicate" in ddl
    with engine.begin() as conn:
        stamp = datetime.now(UTC)
        conn.execute(
            insert(entry),
            [
                {"key": k, "signature": "", "status": st, "name": n, "version_key": v, "problems": [], "seen_at": stamp}
                for k, st, n, v in (
                    ("/l/a", "ok", "Alpha", ""),
                    ("/l/b", "duplicate", "Alpha", ""),
                    ("/l/c", "duplicate", "Alpha", "v2"),
                    ("/l/d", "duplicate", "Beta", ""),
                )
            ],
        )
        assert repo.waiting_duplicates(conn, [("Alpha", ""), ("Gamma", "")]) == ["/l/b"]


def _sqlite_schema(engine: Engine) -> dict[str, Any]:
    """What SQLite knows of each table: columns, indexes (with their columns and conditions) and foreign keys."""
    with engine.connect() as conn:
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
        out: dict[str, Any] = {}
        for t in sorted(tables):
            indexes = {}
            for _, name, unique, origin, partial in conn.exec_driver_sql(f'PRAGMA index_list("{t}")').all():
                columns = [r[2] for r in conn.exec_driver_sql(f'PRAGMA index_info("{name}")').all()]
                where = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).scalar()
                condition = " ".join(where.split(" WHERE ", 1)[1].split()) if where and " WHERE " in where else None
                indexes[name if origin == "c" else f"{origin}:{columns}"] = (unique, partial, columns, condition)
            out[t] = (
                [tuple(r) for r in conn.exec_driver_sql(f'PRAGMA table_info("{t}")').all()],
                indexes,
                sorted(tuple(r[2:]) for r in conn.exec_driver_sql(f'PRAGMA foreign_key_list("{t}")').all()),
            )
        return out


def test_a_blank_sqlite_catalog_is_made_exactly_as_the_migrations_make_it(tmp_path: Path) -> None:
    """The first open of a new SQLite file builds HEAD's schema directly: the same tables, columns and indexes."""
    direct = create_catalog_engine(f"sqlite:///{tmp_path / 'direct.db'}")
    replayed = create_catalog_engine(f"sqlite:///{tmp_path / 'replayed.db'}")
    try:
        ensure_schema(direct)
        _at(replayed, "head")
        assert _revision(direct) == _revision(replayed) == HEAD
        assert _sqlite_schema(direct) == _sqlite_schema(replayed)
        assert _diff(direct) == []
    finally:
        direct.dispose()
        replayed.dispose()


def test_another_programs_sqlite_file_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    """A mistyped ``--db`` naming some program's SQLite file: every command refuses it, nothing is written."""
    import sqlite3

    path = tmp_path / "browser-history.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE visits (url TEXT)")
    con.execute("INSERT INTO visits VALUES ('https://example.org')")
    con.commit()
    con.close()
    before = path.read_bytes()
    runner = CliRunner()
    for args in (["list"], ["db", "status"], ["db", "upgrade"], ["import", str(tmp_path / "nowhere")]):
        result = runner.invoke(app, ["--db", str(path), *args])
        assert result.exit_code == 2, (args, result.output)
        assert (
            result.stderr
            == f"lora: error: {path} is not a lora-manager catalog (it holds the tables visits); it was not changed\n"
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["browser-history.db"]


@pytest.mark.postgres
def test_a_postgresql_database_holding_other_tables_is_refused(pg_url: str) -> None:
    """The same on PostgreSQL: a database with tables of its own gets none of ours."""
    other = create_catalog_engine(pg_url)
    try:
        with other.begin() as conn:
            conn.execute(text("CREATE TABLE invoices (id integer)"))
        runner = CliRunner()
        for args in (["list"], ["db", "status"], ["db", "upgrade"]):
            result = runner.invoke(app, ["--db", pg_url, *args])
            assert result.exit_code == 2, (args, result.output)
            assert "is not a lora-manager catalog (it holds the tables invoices); it was not changed" in result.stderr
        with other.connect() as conn:
            assert inspect(conn).get_table_names() == ["invoices"]
    finally:
        other.dispose()


OLD_SIDECAR_SUFFIXES = (".civitai.info", ".metadata.json", ".cm-info.json", ".json")


def test_0007_regroups_folders_whose_entries_were_grouped_by_the_old_sidecar_names(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog made before ``.api_info.json`` was a sidecar name: after the upgrade, the next
    import merges that file into its model's record, and leaves an unrelated folder unread."""
    from lora_manager import entries
    from lora_manager.services.catalog import ListQuery, list_adapters
    from lora_manager.services.importer import ImportOptions, run_import
    from tests.builders import a1111, civitai_version, write_json, write_model

    lib = tmp_path / "lib"
    write_model(lib / "browser", "ink", a1111(activation_text="ink wash"))
    write_json(lib / "browser" / "ink.api_info.json", civitai_version("Ink Wash", "v2", file_name="ink.safetensors"))
    write_model(lib / "other", "plain", civitai_version("Plain"), suffix=".civitai.info")
    ensure_schema(engine)
    monkeypatch.setattr(entries, "SIDECAR_SUFFIXES", OLD_SIDECAR_SUFFIXES)
    old = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert old.counts["failed"] == 1  # "ink.api_info": no model file "ink.api_info.*"
    monkeypatch.undo()
    with engine.begin() as conn:  # the revision alone: 0007 touches no more than folder records, and
        # the import below runs on this release's schema (its code, not 0006's, does the reading),
        # plus the column 0007 clears
        _give_back_files_column(conn, "directory_files")
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    _at(engine, "0007")  # 0008 has everything read again: this pins what 0007 alone does
    assert _revision(engine) == "0007"

    report = run_import(engine, ImportOptions(roots=[str(lib)]))

    assert (report.counts["updated"], report.counts["unchanged"], report.counts["failed"]) == (1, 1, 0)
    names = {(r["name"], r["version"], r["activation_text"]) for r in list_adapters(engine, ListQuery())}
    assert names == {("Ink Wash", "v2", "ink wash"), ("Plain", "v1.0", None)}
    with engine.connect() as conn:
        keys = set(conn.execute(text("SELECT key FROM entry")).scalars())
    assert keys == {str(lib.resolve() / "browser" / "ink"), str(lib.resolve() / "other" / "plain")}


def _reread_after_upgrade(engine: Engine, lib: Path, stale: str, revision: str) -> list[dict[str, Any]]:
    """Import ``lib``, make its records what an older release's parsers stored (``stale``, an
    UPDATE) at ``revision``, and upgrade: a re-import must give the fresh import's records again."""
    from lora_manager.services.catalog import ListQuery, list_adapters
    from lora_manager.services.importer import ImportOptions, run_import

    ensure_schema(engine)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    fresh = list_adapters(engine, ListQuery())
    with engine.begin() as conn:
        conn.execute(text(stale))
        _stamp_back(conn, revision)
    assert run_import(engine, ImportOptions(roots=[str(lib)])).counts["unchanged"] == 1  # not read: stale
    ensure_schema(engine)
    assert _revision(engine) == HEAD

    report = run_import(engine, ImportOptions(roots=[str(lib)]))

    assert report.counts["updated"] == 1
    volatile = ("updated_at", "last_ingested_at")
    strip = [{k: v for k, v in r.items() if k not in volatile} for r in list_adapters(engine, ListQuery())]
    assert strip == [{k: v for k, v in r.items() if k not in volatile} for r in fresh]
    return fresh


def test_0008_has_every_entry_read_again_so_an_upgraded_catalog_equals_a_fresh_import(
    engine: Engine, tmp_path: Path
) -> None:
    """What older parsers stored for files that did not change is read again by this release's."""
    from tests.builders import civitai_version, write_model

    lib = tmp_path / "lib"
    version = civitai_version("Dated", "v1", file_name="dated.safetensors")
    version["createdAt"] = version.pop("publishedAt", None) or "2023-05-06T07:08:09Z"
    write_model(lib, "dated", version, suffix=".civitai.info")
    fresh = _reread_after_upgrade(engine, lib, "UPDATE adapter SET published_at = NULL", "0007")
    assert fresh[0]["published_at"] is not None


def test_0009_reads_every_entry_again_so_base_models_get_civitai_names_in_an_upgraded_catalog(
    engine: Engine, tmp_path: Path
) -> None:
    """A Lora-Manager ``base_model`` of ``"sd_v1"``, stored as written by 0008's parsers, is ``"SD 1.5"`` after it."""
    from tests.builders import write_model

    lib = tmp_path / "lib"
    write_model(
        lib, "asuka", {"file_name": "asuka", "model_name": "Asuka", "base_model": "sd_v1"}, suffix=".metadata.json"
    )
    fresh = _reread_after_upgrade(engine, lib, "UPDATE adapter SET base_model = 'sd_v1'", "0008")
    assert fresh[0]["base_model"] == "SD 1.5"


def test_0011_reads_every_entry_again_so_the_older_nsfw_flag_gives_a_level_in_an_upgraded_catalog(
    engine: Engine, tmp_path: Path
) -> None:
    """A `.civitai.info` whose model says only `nsfw: true`, stored as level 0 by 0010's parsers, is R (4) after."""
    from tests.builders import civitai_version, write_model

    lib = tmp_path / "lib"
    info = civitai_version("Night Club", file_name="night.safetensors")
    info["model"]["nsfw"] = True
    write_model(lib, "night", info, suffix=".civitai.info")
    fresh = _reread_after_upgrade(engine, lib, "UPDATE adapter SET nsfw_level = 0", "0010")
    assert fresh[0]["nsfw_level"] == 4


def test_0010_reads_failed_and_duplicate_entries_again_so_an_older_releases_states_are_corrected(
    engine: Engine, tmp_path: Path
) -> None:
    """Two states 0009's release left and a re-import did not revisit: a broken sidecar whose model file
    is gone holding a live record, and a broken holder recorded as a duplicate. Each is read again."""
    from lora_manager.services.catalog import ListQuery, list_adapters
    from lora_manager.services.importer import ImportOptions, run_import
    from tests.builders import civitai_model, write_model

    lib = tmp_path / "lib"
    gone = write_model(lib / "z", "gone", civitai_model("Gone", file_name="gone.safetensors"))
    write_model(lib / "b", "broken", civitai_model("Broken", file_name="broken.safetensors"))
    write_model(lib / "c", "fine", civitai_model("Fine", file_name="fine.safetensors"))
    ensure_schema(engine)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    gone.unlink()
    for path in (lib / "z" / "gone.json", lib / "b" / "broken.json"):
        path.write_text("{", encoding="utf-8")
    run_import(engine, ImportOptions(roots=[str(lib)]))
    broken_key = str((lib / "b" / "broken").resolve())
    with engine.begin() as conn:  # what the older release stored
        conn.execute(text("UPDATE adapter SET missing_since = NULL WHERE name = 'Gone'"))
        conn.execute(text("UPDATE entry SET status = 'duplicate' WHERE key = :k"), {"k": broken_key})
        _stamp_back(conn, "0009")
    stale = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (stale.counts["failed"], stale.counts["missing"]) == (0, 0)  # nothing read: the states stay

    ensure_schema(engine)
    assert _revision(engine) == HEAD
    report = run_import(engine, ImportOptions(roots=[str(lib)]))

    # Fine is read again too, by 0011 (every entry), and stays as it was.
    assert (report.counts["missing"], report.counts["failed"]) == (1, 2)
    missing = {r["name"]: r["missing_since"] is not None for r in list_adapters(engine, ListQuery())}
    assert missing == {"Gone": True, "Broken": False, "Fine": False}
    with engine.connect() as conn:
        assert conn.execute(select(entry.c.status).where(entry.c.key == broken_key)).scalar() == "failed"


def test_0008_gives_a_catalog_stamped_0006_by_its_first_cut_the_column_it_lacks(engine: Engine, tmp_path: Path) -> None:
    """0006 gained ``directory.names`` after it shipped: such catalogs failed every import since."""
    from lora_manager.services.importer import ImportOptions, run_import
    from tests.builders import civitai_model, write_model

    lib = tmp_path / "lib"
    write_model(lib, "one", civitai_model("One"))
    ensure_schema(engine)
    with engine.begin() as conn:
        _stamp_back(conn, "0006")
        conn.execute(text("ALTER TABLE directory DROP COLUMN names"))
    ensure_schema(engine)
    assert _revision(engine) == HEAD and _diff(engine) == []
    report = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert report.counts["new"] == 1
    assert run_import(engine, ImportOptions(roots=[str(lib)])).counts["unchanged"] == 1


def test_db_status_tells_a_catalog_made_before_migrations_from_an_empty_database(
    engine: Engine, catalog_url: str
) -> None:
    metadata.create_all(engine)
    result = CliRunner().invoke(app, ["--db", catalog_url, "db", "status"])
    assert result.exit_code == 0, result.output
    assert "revision: none (made before migrations)" in result.stdout


def test_a_catalog_whose_revision_record_is_empty_is_refused_and_left_untouched(
    engine: Engine, catalog_url: str
) -> None:
    """The tables are there but ``alembic_version`` has no row: which upgrades it needs is unknown
    (replaying them from 0001 failed on a column that already exists)."""
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    before = _dump(engine)
    for args in (["db", "status"], ["db", "upgrade"], ["list"]):
        result = CliRunner().invoke(app, ["--db", catalog_url, *args])
        assert result.exit_code == 2, (args, result.output)
        assert f"the revision record of the catalog {named(catalog_url)} is empty" in result.stderr
    assert _dump(engine) == before


def test_0012_moves_each_folders_names_to_their_own_table_and_a_re_import_still_looks_at_one_entry(
    engine: Engine, tmp_path: Path
) -> None:
    """A catalog whose names sit in ``directory`` rows (0011) keeps them, in ``directory_names``: a sidecar
    added to a folder after the upgrade is paired by name, so only its entry is grouped and read."""
    from lora_manager.db import directories
    from lora_manager.discovery import walk
    from lora_manager.paths import resolve_root
    from lora_manager.services.importer import ImportOptions, run_import
    from tests.builders import civitai_version, write_json, write_model

    lib = tmp_path / "lib"
    for stem in ("alpha", "beta", "gamma"):
        write_model(lib / "dir", stem, civitai_version(stem.title(), file_name=f"{stem}.safetensors"))
    ensure_schema(engine)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    folder = str((lib / "dir").resolve())
    with engine.connect() as conn:
        names = directories.StoredDirectories(conn).names(folder)
    assert names is not None
    with engine.begin() as conn:
        _stamp_back(conn, "0011")
        stored = conn.execute(text("SELECT names FROM directory WHERE path = :p"), {"p": folder}).scalar()
    assert bytes(stored) == names  # as 0011 kept them

    ensure_schema(engine)

    assert _revision(engine) == HEAD and _diff(engine) == []
    with engine.connect() as conn:
        assert directories.StoredDirectories(conn).names(folder) == names
    write_json(lib / "dir" / "beta.metadata.json", {"notes": "added"})
    root = resolve_root(lib)
    with engine.connect() as conn:
        known = {path: fp for path, (fp, _) in directories.load_directories(conn, root).items()}
        looked = walk(root, known=known, previous=directories.StoredDirectories(conn))
    assert looked.partial == {folder: {"beta"}}  # paired by the stored names, not a look at the whole folder
    report = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 2)


def test_0013_and_0014_keep_each_folders_files_record_so_an_edit_is_still_grouped_alone(
    engine: Engine, tmp_path: Path
) -> None:
    """A catalog whose full files records sit in ``directory`` rows (0012) keeps them, in
    ``directory_files`` with an empty patch: an edited sidecar's entry is the only one looked at."""
    from lora_manager.db import directories
    from lora_manager.discovery import walk
    from lora_manager.paths import resolve_root
    from lora_manager.services.importer import ImportOptions, run_import
    from tests.builders import civitai_version, write_json, write_model

    lib = tmp_path / "lib"
    for stem in ("alpha", "beta", "gamma"):
        write_model(lib / "dir", stem, civitai_version(stem.title(), file_name=f"{stem}.safetensors"))
    ensure_schema(engine)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    root = resolve_root(lib)
    folder = str((lib / "dir").resolve())
    with engine.connect() as conn:
        record = directories.StoredDirectories(conn).record(folder)
    with engine.begin() as conn:
        _stamp_back(conn, "0012")
        stored = conn.execute(text("SELECT files FROM directory WHERE path = :p"), {"p": folder}).scalar()
    assert record is not None and bytes(stored) == record  # as 0012 kept it

    ensure_schema(engine)

    assert _revision(engine) == HEAD and _diff(engine) == []
    with engine.connect() as conn:
        assert directories.StoredDirectories(conn).record(folder) == record
        assert directories.StoredDirectories(conn).stored(folder)[1] == record
    write_json(lib / "dir" / "gamma.json", civitai_version("Gamma", "v2.0", file_name="gamma.safetensors"))
    with engine.connect() as conn:
        known = {path: fp for path, (fp, _) in directories.load_directories(conn, root).items()}
        looked = walk(root, known=known, previous=directories.StoredDirectories(conn))
    assert looked.partial == {folder: {"gamma"}} and list(looked.patches) == [folder]
    report = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 2)

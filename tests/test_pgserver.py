"""The throwaway PostgreSQL server used by the test suite really works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

try:  # tests/ as a package (tests/__init__.py) or as a plain rootdir-relative directory
    from tests.pgserver import PgServer, PostgresUnavailable, find_pg_bindir, postgres_required
except ImportError:  # pragma: no cover - depends on how pytest put tests/ on sys.path
    from pgserver import PgServer, PostgresUnavailable, find_pg_bindir, postgres_required  # type: ignore[no-redef]

pytestmark = pytest.mark.postgres


def _start_or_skip() -> PgServer:
    try:
        return PgServer().start()
    except PostgresUnavailable as exc:
        if postgres_required():
            pytest.fail(f"LORA_REQUIRE_POSTGRES is set but {exc}", pytrace=False)
        pytest.skip(str(exc))


def test_server_lifecycle_databases_and_jsonb() -> None:
    server = _start_or_skip()
    tmpdir = server.tmpdir
    assert tmpdir is not None
    try:
        assert server.running
        assert (server.socket_dir / ".s.PGSQL.5432").exists()

        url_a = server.create_database("lora_a")
        url_b = server.create_database("lora_b")
        assert url_a.startswith("postgresql+psycopg://lora@/lora_a?host=")
        assert str(server.socket_dir) in url_a

        docs = {
            1: {"name": "détail ✨", "tags": ["anime", "style"], "weight": 0.75, "nested": {"ok": True, "n": None}},
            2: {"empty": {}, "list": [], "big": 2**53},
        }
        meta = sa.MetaData()
        loras = sa.Table(
            "loras",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("doc", JSONB, nullable=False),
        )

        engine_a = sa.create_engine(url_a)
        engine_b = sa.create_engine(url_b)
        try:
            with engine_a.begin() as conn:
                version = conn.execute(sa.text("select version()")).scalar_one()
                assert version.startswith("PostgreSQL ")
                assert conn.execute(sa.text("select current_database()")).scalar_one() == "lora_a"
                # Unix socket only: no TCP listener, the connection has no server address.
                assert conn.execute(sa.text("show listen_addresses")).scalar_one() == ""
                assert conn.execute(sa.text("select inet_server_addr()")).scalar_one() is None
                assert conn.execute(sa.text("show fsync")).scalar_one() == "off"

                meta.create_all(conn)
                conn.execute(loras.insert(), [{"id": k, "doc": v} for k, v in docs.items()])

            with engine_a.connect() as conn:
                got = dict(conn.execute(sa.select(loras.c.id, loras.c.doc).order_by(loras.c.id)).all())
                assert got == docs
                tags = conn.execute(
                    sa.select(loras.c.id).where(loras.c.doc.contains({"tags": ["style"]}))
                ).scalars().all()  # fmt: skip
                assert tags == [1]
                assert conn.execute(sa.text("select doc->>'name' from loras where id = 1")).scalar_one() == "détail ✨"

            # The second database is separate: it does not see the first one's table.
            with engine_b.connect() as conn:
                assert conn.execute(sa.text("select current_database()")).scalar_one() == "lora_b"
                assert conn.execute(sa.text("select to_regclass('loras')")).scalar_one() is None
        finally:
            engine_a.dispose()
            engine_b.dispose()

        server.drop_database("lora_b")
        engine = sa.create_engine(server.url("postgres"))
        try:
            with engine.connect() as conn:
                names = set(conn.execute(sa.text("select datname from pg_database")).scalars())
        finally:
            engine.dispose()
        assert {"lora_a", "postgres"} <= names
        assert "lora_b" not in names

        if os.geteuid() == 0:
            # PostgreSQL refuses root: the cluster belongs to an unprivileged user.
            assert Path(server.datadir).stat().st_uid != 0
    finally:
        server.stop()

    assert not server.running
    assert not tmpdir.exists()
    server.stop()  # idempotent

    engine = sa.create_engine(f"postgresql+psycopg://lora@/postgres?host={tmpdir}&connect_timeout=2")
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass
    finally:
        engine.dispose()


def test_missing_binaries_raise_clear_error(tmp_path: Path) -> None:
    server = PgServer(bindir=tmp_path)
    with pytest.raises(PostgresUnavailable, match="initdb"):
        server.start()
    assert server.tmpdir is None


def test_find_pg_bindir_has_server_binaries() -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        if postgres_required():
            pytest.fail("LORA_REQUIRE_POSTGRES is set but no PostgreSQL binaries were found", pytrace=False)
        pytest.skip("PostgreSQL binaries not installed")
    for name in ("initdb", "pg_ctl", "postgres"):
        assert os.access(bindir / name, os.X_OK)

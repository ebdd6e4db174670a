"""Every command gives the same answers on PostgreSQL as on SQLite, and a shared PostgreSQL catalog takes
imports from several processes at once.

The PostgreSQL database here is made the way installers make them, not the test cluster's
``C``/UTC default: an ICU ``en-US`` collation and a local time zone. Both used to leak into
the results (locale sort order, path ranges that took ``/x/Lib`` for a folder of ``/x/lib``,
timestamps in the session's zone).
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db.engine import create_catalog_engine
from lora_manager.db.lock import ADVISORY_KEY
from lora_manager.db.migrate import ensure_schema
from lora_manager.db.schema import adapter, import_run
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model
from tests.pgserver import PgServer

pytestmark = pytest.mark.postgres
PROJECT = Path(__file__).resolve().parents[2]
# Ids and clock times differ from run to run, whatever the database.
VOLATILE = frozenset(
    {"id", "run_id", "created_at", "updated_at", "last_ingested_at", "started_at", "finished_at", "duration_seconds"}
)
_numbers = itertools.count()


@pytest.fixture
def pg_local_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh PostgreSQL database with a locale collation (ICU en-US) and a non-UTC time zone."""
    name = f"lora_local_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(**pg_server.conninfo("postgres"), autocommit=True) as admin:
        try:
            admin.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu "
                "ICU_LOCALE 'en-US' LOCALE 'C'"
            )
        except psycopg.Error:  # a server without ICU (before 15): the time zone is still local
            admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET timezone = 'Asia/Kolkata'")
    yield pg_server.url(name)
    gc.collect()
    pg_server.drop_database(name)


def scenario(root: Path) -> Path:
    """A small library with what tends to differ between databases: case, accents, offsets, NULLs."""
    lib = root / "lib"
    write_model(lib / "anime", "celestial", civitai_model("Celestial", "v1", "celestial.safetensors",
                tags=["Anime", "Portrait"], trained_words=["celestial style"]), suffix=".civitai.info")  # fmt: skip
    v2 = civitai_model("Celestial", "v2", "celestial-v2.safetensors", tags=["Anime"])
    v2["modelVersions"][0]["publishedAt"] = "2024-06-01T09:30:00-04:00"
    write_model(lib / "anime", "celestial-v2", v2, suffix=".civitai.info")
    offset = civitai_model("Zeta Offset", "v1", "zeta.safetensors", tags=["landscape"], author="Zed")
    offset["modelVersions"][0]["publishedAt"] = "2024-05-01T14:00:00+02:00"
    write_model(lib, "zeta", offset, suffix=".civitai.info")
    write_model(lib, "alpha", a1111("alpha trigger", 0.7, "my notes"))
    write_model(lib, "beta", civitai_version("beta", "2.0", "beta.safetensors", trained_words=["b"]),
                suffix=".civitai.info")  # fmt: skip
    write_model(lib / "Éclairs", "eclair", civitai_model("Éclair", "v1", "eclair.safetensors", tags=["Food", "anime"]),
                suffix=".civitai.info")  # fmt: skip
    write_model(lib / "sub", "copy", civitai_model("Celestial", "v1", "copy.safetensors"), suffix=".civitai.info")
    write_model(lib, "lonely")
    write_json(lib / "config.json", {"_class_name": "UNet2DConditionModel"})
    write_model(lib, "broken")
    (lib / "broken.civitai.info").write_text("{not json", encoding="utf-8")
    return lib


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _session(db: str, lib: Path) -> dict[str, Any]:
    """Run every command on one catalog; their JSON outputs, less ids and clock times."""
    runner = CliRunner()

    def run(*args: str) -> Any:
        """The command's exit code (1 when a file failed) beside its output."""
        result = runner.invoke(app, ["--db", db, *args])
        assert result.exit_code in (0, 1), (args, result.output)
        data = _strip(json.loads(result.stdout))
        return {"exit": result.exit_code, **data} if isinstance(data, dict) else data

    out: dict[str, Any] = {"import": run("import", str(lib), "--json")}
    out["list"] = run("list", "--json")
    out["tag"] = run("list", "--tag", "ANIME", "--json")
    out["search"] = run("list", "--search", "éclair", "--json")
    out["sorted"] = run("list", "--sort", "-published_at", "--json")
    out["author"] = run("list", "--author", "zed", "--json")
    out["show"] = run("show", "Celestial", "--json")
    out["set"] = run("set", "Celestial", "--version", "v1", "--weight", "0.5", "--active", "--json")
    out["active"] = run("list", "--active", "--json")
    out["errors"] = run("errors", "--json")
    out["last_run"] = run("errors", "--last-run", "--json")
    out["orphans"] = run("orphans", str(lib), "--json")
    out["scan"] = run("scan", str(lib), "--json")
    out["again"] = run("import", str(lib), "--json")
    # Every folder unchanged: --force reads them as new ones are read, their stored state batch by batch.
    out["forced"] = run("import", str(lib), "--force", "--json")
    out["after_force"] = run("list", "--json")
    out["status"] = run("status", "--json")
    del out["status"]["database"]
    return out


def test_every_command_answers_the_same_on_sqlite_and_postgresql(
    pg_local_url: str, db_path: Path, tmp_path: Path
) -> None:
    """One library, every command, both databases: identical JSON (ids and clock times aside)."""
    lib = scenario(tmp_path)

    on_sqlite = _session(str(db_path), lib)
    on_postgres = _session(pg_local_url, lib)

    for command in on_sqlite:
        assert on_postgres[command] == on_sqlite[command], command
    # ... and the shared answers are the right ones, not the same mistake twice.
    names = [(r["name"], r["version"]) for r in on_sqlite["list"]]
    assert names == [("Celestial", "v1"), ("Celestial", "v2"), ("Zeta Offset", "v1"), ("alpha", None),
                     ("beta", "2.0"), ("Éclair", "v1")]  # fmt: skip
    assert {r["name"] for r in on_sqlite["tag"]} == {"Celestial", "Éclair"}
    assert [r["published_at"] for r in on_sqlite["sorted"][:2]] == [
        "2024-06-01T13:30:00+00:00",
        "2024-05-01T12:00:00+00:00",
    ]
    assert on_sqlite["show"]["version"] == "v2"
    assert [(r["name"], r["weight"]) for r in on_sqlite["active"]] == [("Celestial", 0.5)]
    assert (on_sqlite["import"]["exit"], on_sqlite["import"]["new"], on_sqlite["again"]["unchanged"]) == (1, 6, 6)
    assert {e["category"] for e in on_sqlite["errors"]} == {"invalid_json", "duplicate"}
    assert (on_sqlite["forced"]["new"], on_sqlite["forced"]["updated"], on_sqlite["forced"]["unchanged"]) == (0, 6, 0)
    # The records are those before, with the weight set in between kept through the forced re-read.
    set_weight = {("Celestial", "v1"): 0.5}
    assert [(r["name"], r["version"], r["weight"]) for r in on_sqlite["after_force"]] == [
        (r["name"], r["version"], set_weight.get((r["name"], r["version"]), r["weight"])) for r in on_sqlite["list"]
    ]


def test_folder_whose_name_differs_only_in_case_is_not_swept_into_another_import(
    pg_local_url: str, tmp_path: Path
) -> None:
    """Importing /x/lib leaves /x/Lib/... alone: under a locale collation its paths sort inside /x/lib's range."""
    upper = tmp_path / "Lib" / "sub"
    write_model(upper, "upper", civitai_model("Upper", file_name="upper.safetensors"))
    write_model(tmp_path / "lib", "lower", civitai_model("Lower", file_name="lower.safetensors"))
    runner = CliRunner()
    for folder in ("Lib", "lib", "lib"):
        result = runner.invoke(app, ["--db", pg_local_url, "import", str(tmp_path / folder), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["missing"] == 0, folder

    listed = runner.invoke(app, ["--db", pg_local_url, "list", "--json"])

    assert [(r["name"], r["missing_since"]) for r in json.loads(listed.stdout)] == [("Lower", None), ("Upper", None)]


def test_show_picks_the_same_newest_version_when_one_version_has_no_date(
    pg_local_url: str, db_path: Path, tmp_path: Path
) -> None:
    """ "The newest version" is the dated one on both databases; an undated version never wins."""
    lib = tmp_path / "lib"
    write_model(lib, "foo1", civitai_model("Foo", "v1", "foo1.safetensors"), suffix=".civitai.info")
    write_model(lib, "foo2", civitai_version("Foo", "v2", "foo2.safetensors"), suffix=".civitai.info")
    runner = CliRunner()
    shown = []
    for db in (str(db_path), pg_local_url):
        assert runner.invoke(app, ["--db", db, "import", str(lib)]).exit_code == 0
        shown.append(json.loads(runner.invoke(app, ["--db", db, "show", "Foo", "--json"]).stdout)["version"])
    assert shown == ["v1", "v1"]


def _import(url: str, lib: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lora_manager", "import", str(lib), "--json"],
        cwd=PROJECT, env={**os.environ, "LORA_DB": url}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 60) -> None:
    """Block until ``proc`` writes a stderr line containing ``text`` (a reader thread keeps us unblockable)."""
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)
            if text in line:
                return
        lines.put("")  # end of output

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        assert line, f"the process ended without writing {text!r}"
        if text in line:
            return


def test_two_imports_started_together_on_one_postgresql_catalog_both_succeed(
    pg_url: str, pg_server: PgServer, tmp_path: Path
) -> None:
    """Two machines import the shared library at once: the advisory lock takes them in turn, nothing doubles."""
    lib = tmp_path / "lib"
    for i in range(40):
        write_model(lib / f"d{i % 4}", f"m{i:02d}", civitai_model(f"Model {i:02d}", file_name=f"m{i:02d}.safetensors",
                    tags=["shared", f"t{i % 5}"]))  # fmt: skip
    engine = create_catalog_engine(pg_url)
    ensure_schema(engine)
    dbname = make_url(pg_url).database
    with psycopg.connect(**pg_server.conninfo(dbname), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_KEY,))  # hold both at the door...
        procs = [_import(pg_url, lib), _import(pg_url, lib)]
        for proc in procs:
            _wait_for_line(proc, "waiting for another import to finish")
        holder.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_KEY,))  # ...then let them race for it
    results = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    reports = sorted((json.loads(out) for out, _ in results), key=lambda r: r["new"])
    assert [(r["new"], r["unchanged"]) for r in reports] == [(0, 40), (40, 0)]
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(adapter)).scalar_one() == 40
            assert conn.execute(select(func.count(func.distinct(adapter.c.name)))).scalar_one() == 40
            assert sorted(conn.execute(select(import_run.c.status)).scalars()) == ["completed", "completed"]
    finally:
        engine.dispose()

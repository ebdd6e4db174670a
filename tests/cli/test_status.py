"""`lora status`: where the catalog is, what it holds, and how the last imports went."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_model, write_json, write_model


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def status_json(runner: CliRunner, *args: Any) -> dict[str, Any]:
    result = run(runner, "status", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """Two models and a sidecar whose model is missing."""
    root = tmp_path / "lib"
    write_model(root, "one", civitai_model("One", file_name="one.safetensors"))
    write_model(root, "two", civitai_model("Two", file_name="two.safetensors"))
    write_json(root / "ghost.json", civitai_model("Ghost"))
    return root


def test_status_of_a_new_catalog(runner: CliRunner, db_path: Path) -> None:
    """A new catalog names its database and holds nothing."""
    data = status_json(runner)
    assert data == {"database": str(db_path), "adapters": 0, "missing": 0, "entries": {}, "runs": []}
    result = run(runner, "status")
    assert result.stdout.splitlines() == [
        f"database: {db_path}",
        "LoRAs: 0 (0 with files gone)",
        "entries: none yet",
    ]


def test_status_shows_counts_and_each_run(runner: CliRunner, lib: Path) -> None:
    """After two imports, status counts the records and entries and lists both runs, newest first."""
    run(runner, "import", lib)
    (lib / "two.json").unlink()
    (lib / "two.safetensors").unlink()
    run(runner, "import", lib)
    data = status_json(runner)
    assert (data["adapters"], data["missing"], data["entries"]) == (2, 1, {"ok": 1, "failed": 1})
    assert [r["id"] for r in data["runs"]] == [2, 1]
    assert [r["status"] for r in data["runs"]] == ["completed", "completed"]
    assert (data["runs"][1]["counts"]["new"], data["runs"][1]["counts"]["failed"]) == (2, 1)
    assert data["runs"][0]["counts"]["missing"] == 1
    lines = run(runner, "status").stdout.splitlines()
    assert lines[1] == "LoRAs: 2 (1 with files gone)"
    assert lines[3].startswith("run 2: completed, started ")
    assert lines[4].startswith("run 1: completed, started ")
    assert lines[4].endswith(": 1 failed, 2 new")


def test_runs_option_limits_the_runs_shown(runner: CliRunner, lib: Path) -> None:
    """``--runs N`` shows the N most recent runs; 0 shows none."""
    for _ in range(3):
        run(runner, "import", lib)
    assert [r["id"] for r in status_json(runner, "--runs", "2")["runs"]] == [3, 2]
    assert status_json(runner, "--runs", "0")["runs"] == []


def test_dry_run_is_not_recorded_as_a_run(runner: CliRunner, lib: Path) -> None:
    """Only real imports appear among the runs."""
    run(runner, "import", "--dry-run", lib)
    run(runner, "scan", lib)
    assert status_json(runner)["runs"] == []


def test_refused_import_is_recorded_as_failed(runner: CliRunner, lib: Path, tmp_path: Path) -> None:
    """An import refused because its root was emptied shows up as a failed run; the records stay."""
    run(runner, "import", lib)
    for item in lib.iterdir():
        item.unlink()
    assert run(runner, "import", lib).exit_code == 2
    data = status_json(runner)
    assert [r["status"] for r in data["runs"]] == ["failed", "completed"]
    assert (data["adapters"], data["missing"]) == (2, 0)


def test_a_killed_run_shows_as_interrupted_unless_an_import_holds_the_lock(engine: Any) -> None:
    """A run row left ``running`` by a SIGKILL is no running import: only the lock says one runs."""
    from datetime import UTC, datetime

    from lora_manager.db import repository as repo
    from lora_manager.db.lock import import_lock
    from lora_manager.services.catalog import status

    with engine.begin() as conn:
        repo.start_run(conn, ["/lib"], False, datetime.now(UTC))  # and never finished: killed
    (killed,) = status(engine)["runs"]
    assert killed["status"] == "interrupted"
    assert killed["counts"] == dict.fromkeys(
        ("new", "updated", "unchanged", "skipped", "failed", "duplicates", "orphans", "missing", "pruned"), 0
    )
    with import_lock(engine, wait=False):  # an import that is still going
        assert [r["status"] for r in status(engine)["runs"]] == ["running"]
    assert [r["status"] for r in status(engine)["runs"]] == ["interrupted"]

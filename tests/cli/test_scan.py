"""`lora scan`: what an import would do with each entry, without writing anything."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app, output
from tests.builders import civitai_model, write_json, write_model, write_safetensors


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def rows(result: Result) -> list[list[str]]:
    """The tab-separated lines of a scan in a pipe: action, entry, name, version, detail."""
    return [line.split("\t") for line in result.stdout.splitlines()]


def good(lib: Path, stem: str, name: str, version: str = "v1.0") -> None:
    write_model(lib, stem, civitai_model(name, version=version, file_name=f"{stem}.safetensors"))


def test_scan_lists_each_new_entry_and_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    """On a new catalog every entry is new; the catalog stays empty and no run is recorded."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    good(lib, "beta", "Beta", "v2")
    result = run(runner, "scan", lib)
    assert result.exit_code == 0, result.output
    assert rows(result) == [
        ["new", str(lib / "alpha"), "Alpha", "v1.0", ""],
        ["new", str(lib / "beta"), "Beta", "v2", ""],
    ]
    assert json.loads(run(runner, "list", "--json").stdout) == []
    assert json.loads(run(runner, "status", "--json").stdout)["runs"] == []


def test_scan_lists_changed_entries_and_hides_unchanged_ones(runner: CliRunner, tmp_path: Path) -> None:
    """After an import, an edited sidecar is listed as changed; unchanged entries are left out."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    good(lib, "beta", "Beta")
    assert run(runner, "import", lib).exit_code == 0
    write_json(lib / "beta.json", civitai_model("Beta", version="v1.0", tags=["edited"]))
    result = run(runner, "scan", lib)
    assert result.exit_code == 0, result.output
    assert rows(result) == [["changed", str(lib / "beta"), "Beta", "v1.0", ""]]
    assert json.loads(run(runner, "show", "Beta", "--json").stdout)["tags"] == []


def test_scan_all_lists_unchanged_entries_too(runner: CliRunner, tmp_path: Path) -> None:
    """``--all`` adds the unchanged entries."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    good(lib, "beta", "Beta")
    run(runner, "import", lib)
    assert rows(run(runner, "scan", lib)) == []
    assert rows(run(runner, "scan", "--all", lib)) == [
        ["unchanged", str(lib / "alpha"), "Alpha", "v1.0", ""],
        ["unchanged", str(lib / "beta"), "Beta", "v1.0", ""],
    ]


def test_scan_all_says_an_invalid_entry_is_unchanged_since_the_last_import(runner: CliRunner, tmp_path: Path) -> None:
    """A still-invalid entry whose files did not change is listed with that said, not with an empty reason."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    write_json(lib / "ghost.json", civitai_model("Ghost"))
    assert run(runner, "import", lib).exit_code == 1
    assert rows(run(runner, "scan", "--all", lib)) == [
        ["unchanged", str(lib / "alpha"), "Alpha", "v1.0", ""],
        ["invalid", str(lib / "ghost"), "", "", "unchanged since the last import"],
    ]


def test_scan_reports_invalid_entries_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    """An entry that would fail is listed as invalid with its reason, and the scan exits 1."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    write_safetensors(lib / "broken.safetensors", {})
    (lib / "broken.json").write_text("[1, 2", encoding="utf-8")
    write_json(lib / "ghost.json", civitai_model("Ghost"))
    result = run(runner, "scan", lib)
    assert result.exit_code == 1, result.output
    found = {r[1]: (r[0], r[4]) for r in rows(result)}
    assert found[str(lib / "broken")][0] == "invalid"
    assert found[str(lib / "broken")][1].startswith("invalid_json: not valid JSON")
    assert found[str(lib / "ghost")][0] == "invalid"
    assert found[str(lib / "ghost")][1].startswith("model_missing: ")
    assert found[str(lib / "alpha")] == ("new", "")


def test_scan_lists_vanished_entries_as_missing_without_marking_them(runner: CliRunner, tmp_path: Path) -> None:
    """Files deleted since the import are listed as missing; the record is not marked."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    good(lib, "beta", "Beta")
    run(runner, "import", lib)
    os.remove(lib / "beta.json")
    os.remove(lib / "beta.safetensors")
    assert rows(run(runner, "scan", lib)) == [["missing", str(lib / "beta"), "Beta", "v1.0", "files are gone"]]
    assert json.loads(run(runner, "list", "--missing", "--json").stdout) == []


def test_scan_json_holds_entries_and_the_summary(runner: CliRunner, tmp_path: Path) -> None:
    """``--json`` prints each entry with its action, and the summary counts an import would print."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    write_json(lib / "config.json", {"_class_name": "UNet2DConditionModel"})
    result = run(runner, "scan", "--json", lib)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["entries"][0] == {
        "action": "new",
        "entry": str(lib / "alpha"),
        "name": "Alpha",
        "version": "v1.0",
        "detail": "",
    }
    assert (data["summary"]["new"], data["summary"]["skipped"], data["summary"]["run_id"]) == (1, 1, None)


def test_scan_honours_ignore_patterns(runner: CliRunner, tmp_path: Path) -> None:
    """``--ignore`` leaves matching folders out of the scan."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    good(lib / "_trash", "beta", "Beta")
    assert [r[2] for r in rows(run(runner, "scan", lib))] == ["Beta", "Alpha"]  # path order: "_" < "a"
    assert [r[2] for r in rows(run(runner, "scan", "--ignore", "_trash/", lib))] == ["Alpha"]


def test_scan_of_a_missing_folder_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    """A folder that is not there is a usage error."""
    result = run(runner, "scan", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "no such directory" in result.stderr


@pytest.mark.parametrize(
    ("args", "summary"),
    [
        (["--all"], "1 new, 0 changed, 1 unchanged, 1 invalid, 1 orphan, 1 skipped"),
        ([], "1 new, 0 changed, 0 invalid (unchanged entries are not listed: --all lists them)"),
    ],
    ids=["all", "changed"],
)
def test_scan_on_a_terminal_counts_the_rows_it_lists(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], summary: str
) -> None:
    """The line under the table counts its rows by action: an entry still invalid since the last import too."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    write_json(lib / "ghost.json", civitai_model("Ghost"))
    write_json(lib / "config.json", {"_class_name": "UNet2DConditionModel"})
    write_safetensors(lib / "orphan.safetensors", {})
    assert run(runner, "import", lib).exit_code == 1
    good(lib, "beta", "Beta")
    monkeypatch.setattr(output, "is_terminal", lambda stderr=False: True)
    monkeypatch.setattr(output, "_consoles", {})
    result = run(runner, "scan", *args, lib)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    listed = [line.split()[0] for line in lines[1:-1]]
    assert sorted(listed) == sorted(["new", "unchanged", "invalid", "orphan", "skipped"] if args else ["new"])
    assert lines[-1] == summary


def test_scan_in_a_pipe_prints_its_rows_alone(runner: CliRunner, tmp_path: Path) -> None:
    """In a pipe every line of stdout is a row of five tab-separated fields: no summary line to trip a script."""
    lib = tmp_path / "lib"
    good(lib, "alpha", "Alpha")
    write_json(lib / "ghost.json", civitai_model("Ghost"))
    result = run(runner, "scan", "--all", lib)
    assert result.exit_code == 1
    assert [len(r) for r in rows(result)] == [5, 5]

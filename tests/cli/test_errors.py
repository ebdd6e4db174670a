"""`lora errors`: the library's known problems, and the failures of one import run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from lora_manager.services.import_report import COUNT_KEYS
from tests.builders import a1111, civitai_model, write_json, write_model, write_safetensors


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def errors_json(runner: CliRunner, *args: Any) -> Any:
    result = run(runner, "errors", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """One good model, one with invalid JSON, one sidecar without a model, one noise JSON, one duplicate."""
    root = tmp_path / "lib"
    write_model(root / "a", "good", civitai_model("Good", file_name="good.safetensors"))
    write_model(root / "b", "good", civitai_model("Good", file_name="good.safetensors"))
    write_safetensors(root / "broken.safetensors", {})
    (root / "broken.json").write_text("{oops", encoding="utf-8")
    write_json(root / "ghost.json", civitai_model("Ghost", file_name="ghost.safetensors"))
    write_json(root / "config.json", {"_class_name": "AutoencoderKL"})
    return root


def expected_problems(lib: Path) -> list[tuple[str, str]]:
    return [
        (str(lib / "b" / "good.json"), "duplicate"),
        (str(lib / "broken.json"), "invalid_json"),
        (str(lib / "ghost.json"), "model_missing"),
    ]


def test_errors_lists_known_problems_after_a_no_op_import(runner: CliRunner, lib: Path) -> None:
    """Failures and duplicates stay listed after a second import that skips the unchanged files."""
    assert run(runner, "import", lib).exit_code == 1
    second = run(runner, "import", "--json", lib)
    assert (second.exit_code, json.loads(second.stdout)["failed"]) == (0, 0)
    known = errors_json(runner)
    assert sorted((p["path"], p["category"]) for p in known) == expected_problems(lib)
    assert all(p["message"] for p in known)


def test_errors_in_a_pipe_prints_path_category_and_message(runner: CliRunner, lib: Path) -> None:
    """Plain output is one ``path<TAB>category<TAB>message`` line per problem."""
    run(runner, "import", lib)
    result = run(runner, "errors")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert sorted((r[0], r[1]) for r in rows) == expected_problems(lib)
    [message] = [r[2] for r in rows if r[1] == "model_missing"]
    assert message.startswith("no model file beside it (looked for ghost.*")
    assert message.endswith(f" in {lib})")


def failures(data: dict[str, Any], kinds: tuple[str, ...] = ("invalid_json", "model_missing")) -> list[str]:
    return sorted(f["path"] for f in data["failures"] if f["category"] in kinds)


def test_last_run_lists_the_failures_of_the_last_run_only(runner: CliRunner, lib: Path) -> None:
    """``--last-run`` lists what failed in the latest run: everything first, nothing after a no-op run."""
    run(runner, "import", lib)
    first = errors_json(runner, "--last-run")
    assert failures(first) == [str(lib / "broken.json"), str(lib / "ghost.json")]
    assert first["run"]["status"] == "completed"
    run(runner, "import", lib)
    second = errors_json(runner, "--last-run")
    assert (second["run"]["id"], second["failures"]) == (first["run"]["id"] + 1, [])
    plain = run(runner, "errors", "--last-run")
    assert (plain.exit_code, plain.stdout) == (0, "")


@pytest.mark.parametrize("args", [["--last-run"], ["--run", "1"]], ids=["last-run", "run"])
def test_a_run_is_shown_as_status_shows_it(runner: CliRunner, lib: Path, args: list[str]) -> None:
    """``errors --last-run --json`` (or ``--run N``) gives the run ``status --json`` gives: every count, zero or not."""
    assert run(runner, "import", lib).exit_code == 1
    shown = errors_json(runner, *args)["run"]
    status = json.loads(run(runner, "status", "--json").stdout)
    assert shown == status["runs"][0]
    assert list(shown["counts"]) == list(COUNT_KEYS)


def test_last_run_failures_leave_out_skipped_noise_json(runner: CliRunner, lib: Path) -> None:
    """The failures of a run are its failed files only, as many as its ``failed`` count."""
    data = json.loads(run(runner, "import", "--json", lib).stdout)
    last_run = errors_json(runner, "--last-run")
    assert sorted(f["path"] for f in last_run["failures"]) == [str(lib / "broken.json"), str(lib / "ghost.json")]
    assert len(last_run["failures"]) == data["failed"]


def test_run_option_selects_an_earlier_run(runner: CliRunner, lib: Path) -> None:
    """``--run N`` lists the failures of run N."""
    run(runner, "import", lib)
    run(runner, "import", lib)
    data = errors_json(runner, "--run", "1")
    assert data["run"]["id"] == 1
    assert failures(data) == [str(lib / "broken.json"), str(lib / "ghost.json")]
    assert errors_json(runner, "--run", "2")["failures"] == []


def test_problem_goes_away_once_the_file_is_fixed(runner: CliRunner, lib: Path) -> None:
    """A fixed file, imported again, is no longer listed."""
    run(runner, "import", lib)
    write_json(lib / "broken.json", civitai_model("Broken", file_name="broken.safetensors"))
    st = (lib / "broken.json").stat()
    os.utime(lib / "broken.json", ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))
    assert run(runner, "import", lib).exit_code == 0  # ghost.json is unchanged, so not read again
    assert [p["category"] for p in errors_json(runner)] == ["duplicate", "model_missing"]
    assert "Broken" in run(runner, "list").stdout


def test_path_option_limits_the_problems_to_a_folder(runner: CliRunner, lib: Path) -> None:
    """``--path`` lists only the problems under that folder."""
    run(runner, "import", lib)
    assert [p["path"] for p in errors_json(runner, "--path", lib / "b")] == [str(lib / "b" / "good.json")]
    assert errors_json(runner, "--path", lib / "nowhere") == []


def test_path_option_takes_a_folder_however_it_is_spelled(
    runner: CliRunner, lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative, with ``..`` or ``//``, through a link: the same folder, the same problems; with a run too."""
    run(runner, "import", lib)
    (lib.parent / "link").symlink_to(lib)
    monkeypatch.chdir(lib)
    wanted = [str(lib / "b" / "good.json")]
    for spelled in ("b", "./b/", f"{lib}//b", f"{lib}/a/../b", str(lib.parent / "link" / "b")):
        assert [p["path"] for p in errors_json(runner, "--path", spelled)] == wanted, spelled
    failures = errors_json(runner, "--last-run", "--path", lib / "b")["failures"]
    assert [p["path"] for p in failures] == []  # the duplicate is no failure; nothing else is under b
    assert [p["path"] for p in errors_json(runner, "--last-run", "--path", lib)["failures"]] == [
        str(lib / "broken.json"),
        str(lib / "ghost.json"),
    ]
    result = run(runner, "errors", "--last-run", "--run", "1")
    assert result.exit_code == 2 and "contradict" in result.stderr


def test_a_walk_problem_stays_listed_after_another_library_is_imported(
    runner: CliRunner, lib: Path, tmp_path: Path
) -> None:
    """A link out of one library is that library's problem until it is fixed, whatever else is imported since."""
    outside = tmp_path / "outside"
    write_safetensors(outside / "secret.safetensors", {})
    (lib / "escape.safetensors").symlink_to(outside / "secret.safetensors")
    other = tmp_path / "other"
    write_model(other, "fine", civitai_model("Fine", file_name="fine.safetensors"))
    run(runner, "import", lib)
    assert str(lib / "escape.safetensors") in [p["path"] for p in errors_json(runner)]
    assert run(runner, "import", other).exit_code == 0
    assert str(lib / "escape.safetensors") in [p["path"] for p in errors_json(runner)]
    (lib / "escape.safetensors").unlink()
    run(runner, "import", lib)
    assert str(lib / "escape.safetensors") not in [p["path"] for p in errors_json(runner)]


def test_a_walk_problem_fixed_and_seen_so_by_an_import_of_a_folder_inside_is_gone(
    runner: CliRunner, lib: Path, tmp_path: Path
) -> None:
    """The library's own last run still holds the problem, but a later run of the folder holding it saw it fixed."""
    outside = tmp_path / "outside"
    write_safetensors(outside / "secret.safetensors", {})
    (lib / "a" / "escape.safetensors").symlink_to(outside / "secret.safetensors")
    run(runner, "import", lib)
    assert str(lib / "a" / "escape.safetensors") in [p["path"] for p in errors_json(runner)]
    (lib / "a" / "escape.safetensors").unlink()
    run(runner, "import", lib / "a")
    assert str(lib / "a" / "escape.safetensors") not in [p["path"] for p in errors_json(runner)]


def test_errors_on_a_new_catalog(runner: CliRunner) -> None:
    """No runs yet: nothing is listed, and ``--last-run`` says there is no run."""
    assert errors_json(runner) == []
    result = run(runner, "errors", "--last-run")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no import run recorded yet" in result.stderr
    assert errors_json(runner, "--last-run") == {"run": None, "failures": []}


def test_an_empty_path_option_is_refused(runner: CliRunner, lib: Path) -> None:
    """As an empty PATH is for ``import``: it names no folder (it used to mean the working one)."""
    run(runner, "import", lib)
    result = run(runner, "errors", "--path", "")
    assert result.exit_code == 2 and "empty --path" in result.stderr


@pytest.fixture
def linked_lib(tmp_path: Path) -> Path:
    """A model whose sidecar is a link out of the library, and a link that loops onto itself beside a good model."""
    root = tmp_path / "lib"
    write_safetensors(root / "d" / "m.safetensors", {})
    write_json(tmp_path / "outside" / "s.json", a1111(activation_text="q"))
    (root / "d" / "m.json").symlink_to(tmp_path / "outside" / "s.json")
    write_model(root / "d", "n", civitai_model("N", file_name="n.safetensors"))
    (root / "d" / "loop.json").symlink_to("loop.json")
    write_model(root / "e", "fine", civitai_model("Fine", file_name="fine.safetensors"))
    return root


def errors_at(runner: CliRunner, db: str, *args: Any) -> Any:
    """``lora --db DB errors --json ARGS``."""
    result = run(runner, "--db", db, "errors", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listed(runner: CliRunner, db: str) -> list[tuple[str, str]]:
    return sorted((p["path"], p["category"]) for p in errors_at(runner, db))


def test_an_orphans_sidecar_linked_out_stays_listed_after_a_no_op_import(
    runner: CliRunner, linked_lib: Path, catalog_url: str
) -> None:
    """The model beside it is an orphan; its refused sidecar is its stored problem, listed until it changes."""
    (linked_lib / "d" / "loop.json").unlink()
    linked = (str(linked_lib / "d" / "m.json"), "unsafe_path")
    assert run(runner, "--db", catalog_url, "import", linked_lib).exit_code == 1
    assert listed(runner, catalog_url) == [linked]
    second = run(runner, "--db", catalog_url, "import", "--json", linked_lib)
    assert second.exit_code == 0, second.output  # not read again: no failure of this run
    assert (json.loads(second.stdout)["failed"], json.loads(second.stdout)["orphans"]) == (0, 1)
    assert listed(runner, catalog_url) == [linked]
    [known] = errors_at(runner, catalog_url)
    assert (known["entry_status"], known["message"]) == ("orphan", "link leads out of the library")
    (linked_lib / "d" / "m.json").unlink()
    assert run(runner, "--db", catalog_url, "import", linked_lib).exit_code == 0
    assert listed(runner, catalog_url) == []


def test_a_file_that_cannot_be_stat_ed_stays_listed_while_it_is_there(
    runner: CliRunner, linked_lib: Path, catalog_url: str
) -> None:
    """A looping link is found again by every import (its folder is looked at again), and listed until it goes."""
    db = ("--db", catalog_url)
    loop = (str(linked_lib / "d" / "loop.json"), "unreadable")
    both = [loop, (str(linked_lib / "d" / "m.json"), "unsafe_path")]
    assert run(runner, *db, "import", linked_lib).exit_code == 1
    assert listed(runner, catalog_url) == both
    second = run(runner, *db, "import", "--json", linked_lib)
    assert second.exit_code == 1, second.output  # found again: a problem of this run, as an unreadable folder is
    data = json.loads(second.stdout)
    assert (data["new"], data["updated"], data["unchanged"], data["failed"], data["orphans"]) == (0, 0, 2, 1, 1)
    assert [(p["path"], p["kind"]) for p in data["problems"]] == [loop]
    assert listed(runner, catalog_url) == both
    plain = run(runner, *db, "errors")
    assert sorted(tuple(line.split("\t")[:2]) for line in plain.stdout.splitlines()) == both
    assert [(f["path"], f["category"]) for f in errors_at(runner, catalog_url, "--last-run")["failures"]] == [loop]
    (linked_lib / "d" / "loop.json").unlink()
    assert run(runner, *db, "import", linked_lib).exit_code == 0
    assert listed(runner, catalog_url) == both[1:]
    assert run(runner, *db, "import", linked_lib).exit_code == 0
    assert listed(runner, catalog_url) == both[1:]

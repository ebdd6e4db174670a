"""`lora import`: the summary, exit codes, change detection and every importer rule of issue 2."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model, write_safetensors

CELESTIAL = "Celestial Anime Portraits"
CELESTIAL_TAGS = ["anime", "portrait", "fantasy", "celestial", "watercolor"]


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def summary(runner: CliRunner, *args: Any, exit_code: int = 0) -> dict[str, Any]:
    """The ``--json`` summary of one import, after checking its exit code."""
    result = run(runner, "import", "--json", *args)
    assert result.exit_code == exit_code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def records(runner: CliRunner, *args: Any) -> list[dict[str, Any]]:
    result = run(runner, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def names(runner: CliRunner, *args: Any) -> list[str]:
    return [r["name"] for r in records(runner, *args)]


def bump_mtime(path: Path, seconds: int = 10) -> None:
    """An edit's new mtime, set explicitly: coarse filesystem clocks must not hide a change."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def rewrite(path: Path, data: Any) -> None:
    write_json(path, data)
    bump_mtime(path)


def celestial(folder: Path, **changes: Any) -> Path:
    """The design's example model, as a Civitai model JSON beside its model file."""
    stem = "celestial-anime-portraits"
    options: dict[str, Any] = {
        "version": "v1.1",
        "file_name": f"{stem}.safetensors",
        "tags": CELESTIAL_TAGS,
        "trained_words": ["celestial portrait", "shimmering eyes"],
        "base_model": "SD 1.5",
    }
    options.update(changes)
    return write_model(folder, stem, civitai_model(CELESTIAL, **options))


def mecha(folder: Path) -> Path:
    return write_model(folder, "mecha", civitai_model("Mecha Armor", version="v2", file_name="mecha.safetensors"))


def problems_of(data: dict[str, Any], kind: str) -> list[str]:
    return [p["path"] for p in data["problems"] if p["kind"] == kind]


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """Two good models, a diffusers config.json (noise) and a model whose sidecar is invalid JSON."""
    root = tmp_path / "lib"
    celestial(root / "anime")
    mecha(root / "scifi")
    write_json(root / "scifi" / "config.json", {"_class_name": "UNet2DConditionModel", "act_fn": "silu"})
    write_safetensors(root / "broken" / "broken.safetensors", {})
    (root / "broken" / "broken.json").write_text('{"name": "Broken", "modelVersions": [', encoding="utf-8")
    return root


def test_summary_counts_each_outcome_and_exits_1_when_a_file_failed(runner: CliRunner, lib: Path) -> None:
    """The summary line counts new, updated, unchanged, skipped and failed; a failed file makes exit 1."""
    result = run(runner, "import", lib)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("imported: 2 new, 0 updated, 0 unchanged, 1 skipped, 1 failed"), result.stdout
    assert f"{lib}/broken/broken.json: invalid_json:" in result.stderr
    assert names(runner) == [CELESTIAL, "Mecha Armor"]


def test_json_summary_carries_every_count_and_each_problem(runner: CliRunner, lib: Path) -> None:
    """``--json`` prints the counts by name, the run id and each problem with its path and category."""
    data = summary(runner, lib, exit_code=1)
    expected_keys = {"new", "updated", "unchanged", "skipped", "failed", "duplicates", "orphans", "missing", "pruned"}
    assert expected_keys | {"problems", "duration_seconds", "run_id"} <= set(data)
    assert {k: data[k] for k in ("new", "updated", "unchanged", "skipped", "failed")} == {
        "new": 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 1,
        "failed": 1,
    }
    assert problems_of(data, "invalid_json") == [str(lib / "broken" / "broken.json")]
    assert problems_of(data, "not_metadata") == [str(lib / "scifi" / "config.json")]
    assert isinstance(data["run_id"], int)


def test_second_import_of_unchanged_tree_writes_nothing(runner: CliRunner, lib: Path) -> None:
    """A second import reports everything unchanged and leaves every record as it was."""
    summary(runner, lib, exit_code=1)
    before = records(runner)
    data = summary(runner, lib)
    assert (data["new"], data["updated"], data["unchanged"], data["failed"]) == (0, 0, 2, 0)
    assert records(runner) == before


def test_sidecar_restored_with_an_older_mtime_counts_as_changed(runner: CliRunner, tmp_path: Path) -> None:
    """Change detection compares mtimes for inequality: an older sidecar (from a backup) is re-read."""
    lib = tmp_path / "lib"
    celestial(lib)
    summary(runner, lib)
    sidecar = lib / "celestial-anime-portraits.json"
    st = sidecar.stat()
    celestial(lib, tags=["restored"])
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns - 86_400 * 1_000_000_000))
    data = summary(runner, lib)
    assert (data["updated"], data["unchanged"]) == (1, 0)
    assert records(runner)[0]["tags"] == ["restored"]


def test_force_rereads_unchanged_entries(runner: CliRunner, lib: Path) -> None:
    """``--force`` reads every entry again even though nothing changed."""
    summary(runner, lib, exit_code=1)
    data = summary(runner, "--force", lib, exit_code=1)
    assert (data["new"], data["updated"], data["unchanged"], data["failed"]) == (0, 2, 0, 1)


def test_dry_run_writes_nothing(runner: CliRunner, lib: Path) -> None:
    """``--dry-run`` reports what would be imported but leaves the catalog empty and records no run."""
    result = run(runner, "import", "--dry-run", lib)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("would import: 2 new, 0 updated, 0 unchanged, 1 skipped, 1 failed")
    assert records(runner) == []
    status = run(runner, "status", "--json")
    assert json.loads(status.stdout)["runs"] == []


def test_dry_run_reports_a_change_without_applying_it(runner: CliRunner, tmp_path: Path) -> None:
    """After an edit, ``--dry-run`` counts the update and the stored record keeps the old metadata."""
    lib = tmp_path / "lib"
    celestial(lib)
    summary(runner, lib)
    celestial(lib, tags=["edited", "tags", "longer than before"])
    data = summary(runner, "--dry-run", lib)
    assert data["updated"] == 1
    assert records(runner)[0]["tags"] == CELESTIAL_TAGS
    assert summary(runner, lib)["updated"] == 1


def test_several_paths_are_imported_in_one_run(runner: CliRunner, tmp_path: Path) -> None:
    """``lora import A B`` imports both folders."""
    celestial(tmp_path / "one")
    mecha(tmp_path / "two")
    data = summary(runner, tmp_path / "one", tmp_path / "two")
    assert data["new"] == 2
    assert names(runner) == [CELESTIAL, "Mecha Armor"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["does-not-exist"], "no such directory"),
        (["a-file.txt"], "not a directory"),
    ],
    ids=["missing", "file"],
)
def test_unusable_path_exits_2_with_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    """A missing folder or a file given as the library is a usage error: exit 2, one line on stderr."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file.txt").write_text("not a library\n")
    result = run(runner, "import", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_import_without_a_path_is_a_usage_error(runner: CliRunner) -> None:
    """``lora import`` with no folder exits 2 and says what is missing."""
    result = run(runner, "import")
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_quiet_prints_nothing_on_success(runner: CliRunner, tmp_path: Path) -> None:
    """``--quiet`` prints nothing at all when every file imported (noise JSON does not count as failure)."""
    lib = tmp_path / "lib"
    celestial(lib)
    write_json(lib / "config.json", {"_class_name": "AutoencoderKL"})
    result = run(runner, "import", "--quiet", lib)
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == ("", "")
    assert names(runner) == [CELESTIAL]


def test_quiet_still_prints_failures(runner: CliRunner, lib: Path) -> None:
    """``--quiet`` keeps quiet about the summary and skips, but names each failed file on stderr."""
    result = run(runner, "import", "--quiet", lib)
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{lib}/broken/broken.json: invalid_json: not valid JSON")


def test_sidecar_without_its_model_file_fails_as_model_missing(runner: CliRunner, tmp_path: Path) -> None:
    """A sidecar whose model file does not exist is a model_missing failure and stores no row."""
    lib = tmp_path / "lib"
    celestial(lib)
    write_json(lib / "ghost.json", civitai_model("Ghost", file_name="ghost.safetensors"))
    data = summary(runner, lib, exit_code=1)
    assert problems_of(data, "model_missing") == [str(lib / "ghost.json")]
    assert names(runner) == [CELESTIAL]


def test_json_summary_with_a_failure_still_exits_1(runner: CliRunner, lib: Path) -> None:
    """``--json`` does not hide a failure from cron: the exit code is still 1."""
    result = run(runner, "import", "--json", lib)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"] == 1


@pytest.mark.parametrize(
    ("suffix", "sidecar"),
    [
        (".json", a1111(activation_text="nameless", weight=0.7)),
        (".cm-info.json", {"ModelName": "No Version", "Tags": ["misc"], "AuthorUsername": "anon"}),
    ],
    ids=["a1111", "stability_matrix"],
)
def test_record_without_version_imports_idempotently(
    runner: CliRunner, tmp_path: Path, suffix: str, sidecar: dict[str, Any]
) -> None:
    """A record whose version is NULL upserts onto itself: two imports (the second forced) leave one row."""
    lib = tmp_path / "lib"
    write_model(lib, "no-version", sidecar, suffix=suffix)
    summary(runner, lib)
    data = summary(runner, "--force", lib)
    assert (data["new"], data["updated"]) == (0, 1)
    rows = records(runner)
    assert len(rows) == 1
    assert rows[0]["version"] is None


def versions_json(files: dict[str, str | None]) -> dict[str, Any]:
    """A model response with one version per item: version name -> the file name it lists (and a hash)."""
    data = civitai_model("Versioned", version="v1", file_name=files["v1"], sha256="a" * 64)
    second = civitai_model("Versioned", version="v2", file_name=files["v2"], sha256="b" * 64)
    third = civitai_model("Versioned", version="v3", file_name=files["v3"], sha256="c" * 64)
    data["modelVersions"] += second["modelVersions"] + third["modelVersions"]
    return data


def test_version_is_chosen_by_the_local_file_name_ignoring_case(runner: CliRunner, tmp_path: Path) -> None:
    """Of several modelVersions, the one whose files name the local model file wins, whatever the case."""
    lib = tmp_path / "lib"
    files = {"v1": "versioned-v1.safetensors", "v2": "versioned-V2.SAFETENSORS", "v3": "versioned-v3.safetensors"}
    write_model(lib, "Versioned-v2", versions_json(files))
    summary(runner, lib)
    assert [(r["name"], r["version"]) for r in records(runner)] == [("Versioned", "v2")]


def test_version_is_chosen_by_a_sha256_another_sidecar_claims(runner: CliRunner, tmp_path: Path) -> None:
    """When no version names the local file, the one whose SHA256 another sidecar claims wins."""
    lib = tmp_path / "lib"
    files = {"v1": "other-1.safetensors", "v2": "other-2.safetensors", "v3": "other-3.safetensors"}
    write_model(lib, "local-name", versions_json(files))
    write_json(lib / "local-name.cm-info.json", {"Hashes": {"SHA256": "C" * 64, "CRC32": None}})
    summary(runner, lib)
    rows = records(runner)
    assert [r["version"] for r in rows] == ["v3"]
    assert rows[0]["primary_file_sha256"] == "c" * 64


def test_version_is_chosen_by_a_version_id_another_sidecar_names(runner: CliRunner, tmp_path: Path) -> None:
    """civitai-browser-plus renames downloads and writes only the ids into its NAME.json: that version wins.

    Lora-Manager's embedded ``civitai.id`` and a ``.civitai.info``'s ``id`` name it alike; a SHA256
    claim still comes first.
    """
    files = {"v1": "other-1.safetensors", "v2": "other-2.safetensors", "v3": "other-3.safetensors"}
    data = versions_json(files)
    v2_id = data["modelVersions"][1]["id"]
    namers: dict[str, dict[str, Any]] = {
        "browser": {"activation text": "x", "sd version": "SDXL", "modelId": 1234, "modelVersionId": v2_id},
        "lora-manager": {"model_name": "Versioned", "file_name": "local-name", "civitai": {"id": v2_id}},
        "helper": {"id": v2_id, "modelId": 1234, "name": "v2", "model": {"name": "Versioned"}},
    }
    suffixes = {"browser": ".json", "lora-manager": ".metadata.json", "helper": ".civitai.info"}
    for namer, sidecar in namers.items():
        lib = tmp_path / namer
        write_model(lib, "local-name", data, suffix=".api_info.json")
        write_json(lib / f"local-name{suffixes[namer]}", sidecar)
        assert run(runner, "--db", tmp_path / f"{namer}.db", "import", lib).exit_code == 0
        rows = json.loads(run(runner, "--db", tmp_path / f"{namer}.db", "list", "--json").stdout)
        assert [(r["version"], r["civitai_version_id"], r["primary_file_sha256"]) for r in rows] == [
            ("v2", v2_id, "b" * 64)
        ], namer
    lib = tmp_path / "both"
    write_model(lib, "local-name", data, suffix=".api_info.json")
    write_json(lib / "local-name.json", {"sd version": "SDXL", "modelVersionId": v2_id, "sha256": "C" * 64})
    assert run(runner, "--db", tmp_path / "both.db", "import", lib).exit_code == 0
    rows = json.loads(run(runner, "--db", tmp_path / "both.db", "list", "--json").stdout)
    assert [r["version"] for r in rows] == ["v3"]  # the file's own hash outranks a named id


def test_file_name_match_beats_a_sha256_claim(runner: CliRunner, tmp_path: Path) -> None:
    """The file-name rule comes before the SHA256 rule."""
    lib = tmp_path / "lib"
    files = {"v1": "other-1.safetensors", "v2": "local-name.safetensors", "v3": "other-3.safetensors"}
    write_model(lib, "local-name", versions_json(files))
    write_json(lib / "local-name.cm-info.json", {"Hashes": {"SHA256": "c" * 64}})
    summary(runner, lib)
    assert [r["version"] for r in records(runner)] == ["v2"]


def test_version_defaults_to_the_first(runner: CliRunner, tmp_path: Path) -> None:
    """With neither a file name nor a hash to go by, the first modelVersion is taken."""
    lib = tmp_path / "lib"
    files = {"v1": "other-1.safetensors", "v2": "other-2.safetensors", "v3": None}
    write_model(lib, "local-name", versions_json(files))
    summary(runner, lib)
    assert [r["version"] for r in records(runner)] == ["v1"]


def test_sidecar_may_name_a_differently_named_model_file_beside_it(runner: CliRunner, tmp_path: Path) -> None:
    """A safe file name from the JSON finds a model file with another stem in the same folder."""
    lib = tmp_path / "lib"
    write_safetensors(lib / "renamed-by-user.safetensors", {})
    write_json(lib / "thing.json", civitai_model("Thing", file_name="renamed-by-user.safetensors"))
    summary(runner, lib)
    assert [(r["name"], r["file_path"]) for r in records(runner)] == [
        ("Thing", str(lib / "renamed-by-user.safetensors"))
    ]


@pytest.mark.parametrize(
    "claimed",
    ["../x.safetensors", "/etc/passwd", "a/b.safetensors", "C:\\x.safetensors", "C:\\x", "..\\x.safetensors"],
)
def test_unsafe_file_name_in_json_never_resolves(runner: CliRunner, tmp_path: Path, claimed: str) -> None:
    """A file name with a separator, a drive, ``..`` or an absolute path is never followed, even if it exists."""
    lib = tmp_path / "lib"
    write_safetensors(tmp_path / "x.safetensors", {})  # what ../x.safetensors would reach
    write_safetensors(lib / "a" / "b.safetensors", {})
    write_safetensors(lib / "C:\\x.safetensors", {})  # a legal file name on POSIX, beside the sidecar
    write_json(lib / "thing.json", civitai_model("Thing", file_name=claimed))
    data = summary(runner, lib, exit_code=1)
    assert problems_of(data, "model_missing") == [str(lib / "thing.json")]
    assert records(runner) == []


def test_symlinked_model_outside_the_root_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """A model file that is a link leading out of the library is refused as unsafe_path; no row is stored."""
    lib = tmp_path / "lib"
    real = write_safetensors(tmp_path / "elsewhere" / "real.safetensors", {})
    lib.mkdir()
    (lib / "linked.safetensors").symlink_to(real)
    write_json(lib / "linked.json", civitai_model("Linked", file_name="linked.safetensors"))
    data = summary(runner, lib, exit_code=1)
    assert problems_of(data, "unsafe_path") == [str(lib / "linked.safetensors")]
    assert records(runner) == []


def test_symlinked_model_inside_the_root_is_accepted(runner: CliRunner, tmp_path: Path) -> None:
    """A link to a model file elsewhere in the same library is fine."""
    lib = tmp_path / "lib"
    real = write_safetensors(lib / "store" / "blob.safetensors", {})
    (lib / "linked.safetensors").symlink_to(real)
    write_json(lib / "linked.json", civitai_model("Linked", file_name="linked.safetensors"))
    summary(runner, lib)
    assert [(r["name"], r["file_path"]) for r in records(runner)] == [("Linked", str(lib / "linked.safetensors"))]


def test_symlinked_folder_outside_the_root_is_not_followed(runner: CliRunner, tmp_path: Path) -> None:
    """A folder link leading out of the library is reported as unsafe_path and its models are not imported."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(tmp_path / "elsewhere")
    (lib / "outside").symlink_to(tmp_path / "elsewhere")
    result = run(runner, "import", "--json", lib)
    assert result.exit_code == 1, result.output
    assert problems_of(json.loads(result.stdout), "unsafe_path") == [str(lib / "outside")]
    assert names(runner) == [CELESTIAL]


def test_folder_link_out_of_the_library_is_counted_and_recorded_as_a_failure(runner: CliRunner, tmp_path: Path) -> None:
    """A run that exits 1 because of a link out of the library counts it as failed and records it."""
    lib = tmp_path / "lib"
    celestial(lib)
    (tmp_path / "elsewhere").mkdir()
    (lib / "outside").symlink_to(tmp_path / "elsewhere")
    data = summary(runner, lib, exit_code=1)
    last_run = json.loads(run(runner, "errors", "--last-run", "--json").stdout)
    assert data["failed"] == 1
    assert [f["path"] for f in last_run["failures"]] == [str(lib / "outside")]


def test_symlink_loop_does_not_hang_the_walk(tmp_path: Path) -> None:
    """A folder link back to its parent is walked once; each model is imported once."""
    lib = tmp_path / "lib"
    celestial(lib / "sub")
    mecha(lib)
    (lib / "sub" / "loop").symlink_to(lib)
    (lib / "sub" / "self").symlink_to(lib / "sub")
    done = subprocess.run(
        [sys.executable, "-m", "lora_manager", "import", "--json", str(lib)],
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a timing assertion
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["new"], data["duplicates"], data["failed"]) == (2, 0, 0)


def test_sidecar_over_the_size_limit_is_refused_as_too_large(runner: CliRunner, tmp_path: Path) -> None:
    """A 40 MB sidecar is refused with ``--max-sidecar-mb 32`` (and accepted under a higher limit)."""
    lib = tmp_path / "lib"
    write_model(lib, "huge", civitai_model("Huge", description="x" * (40 * 1024 * 1024)))
    assert summary(runner, "--dry-run", "--max-sidecar-mb", "64", lib)["new"] == 1
    result = run(runner, "import", "--max-sidecar-mb", "32", lib)
    assert result.exit_code == 1, result.output
    assert f"{lib}/huge.json: too_large: " in result.stderr
    assert "over the sidecar limit" in result.stderr
    assert records(runner) == []


def test_ignore_option_skips_folders_and_files(runner: CliRunner, tmp_path: Path) -> None:
    """``--ignore`` takes gitignore patterns: ``_trash/`` skips a folder, ``*.bak.json`` skips backups."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(lib / "_trash")
    write_json(lib / "celestial.bak.json", {"name": "Old copy", "modelVersions": []})
    unfiltered = summary(runner, "--dry-run", lib, exit_code=1)
    assert (unfiltered["new"], unfiltered["failed"]) == (2, 1)
    data = summary(runner, "--ignore", "_trash/", "--ignore", "*.bak.json", lib)
    assert (data["new"], data["failed"]) == (1, 0)
    assert names(runner) == [CELESTIAL]


def test_loraignore_file_in_the_root_is_honoured(runner: CliRunner, tmp_path: Path) -> None:
    """The root's ``.loraignore`` holds the same gitignore patterns as ``--ignore``."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(lib / "_trash")
    write_json(lib / "nested" / "celestial.bak.json", {"name": "Old copy", "modelVersions": []})
    (lib / ".loraignore").write_text("# not for the catalog\n_trash/\n*.bak.json\n", encoding="utf-8")
    data = summary(runner, lib)
    assert (data["new"], data["failed"]) == (1, 0)
    assert names(runner) == [CELESTIAL]


def test_several_sidecars_of_one_model_make_one_record(runner: CliRunner, tmp_path: Path) -> None:
    """A ``.civitai.info`` and an A1111 ``.json`` beside one model merge into one record, the user's words first."""
    lib = tmp_path / "lib"
    info = civitai_version("Ink Wash Landscapes", "v1.0", "ink.safetensors", trained_words=["ink wash"])
    write_model(lib, "ink", info, suffix=".civitai.info")
    write_json(lib / "ink.json", a1111(activation_text="inkwash style, monochrome", weight=0.7))
    data = summary(runner, lib)
    assert data["new"] == 1
    [record] = records(runner)
    assert (record["name"], record["version"]) == ("Ink Wash Landscapes", "v1.0")
    assert (record["activation_text"], record["weight"], record["trained_words"]) == (
        "inkwash style, monochrome",
        0.7,
        ["ink wash"],
    )
    assert sorted(s["dialect"] for s in record["sidecars"]) == ["a1111", "civitai_version"]


def test_adding_or_removing_a_sidecar_rereads_the_record(runner: CliRunner, tmp_path: Path) -> None:
    """A sidecar added beside a catalogued model, or removed, updates that model's record."""
    lib = tmp_path / "lib"
    write_model(lib, "ink", civitai_version("Ink Wash Landscapes", "v1.0", "ink.safetensors"), suffix=".civitai.info")
    summary(runner, lib)
    write_json(lib / "ink.json", a1111(activation_text="inkwash style", weight=0.7))
    assert summary(runner, lib)["updated"] == 1
    assert [(r["weight"], r["activation_text"]) for r in records(runner)] == [(0.7, "inkwash style")]
    (lib / "ink.json").unlink()
    assert summary(runner, lib)["updated"] == 1
    assert [(r["weight"], r["activation_text"]) for r in records(runner)] == [(1.0, None)]


def duplicate_pair(lib: Path) -> tuple[Path, Path]:
    """Two sidecars in two folders that claim the same (name, version)."""
    for folder in ("a", "b"):
        write_model(lib / folder, "dup", civitai_model("Dup", version="v1.0", file_name="dup.safetensors"))
    return lib / "a" / "dup.json", lib / "b" / "dup.json"


def test_duplicate_identity_goes_to_the_first_path_and_never_flips(runner: CliRunner, tmp_path: Path) -> None:
    """The first sidecar in path order wins; the other is a duplicate, also after either one is touched."""
    lib = tmp_path / "lib"
    winner, loser = duplicate_pair(lib)
    data = summary(runner, lib)
    assert (data["new"], data["duplicates"]) == (1, 1)
    assert problems_of(data, "duplicate") == [str(loser)]
    for touched in (loser, winner, loser):
        bump_mtime(touched)
        again = summary(runner, lib)
        assert problems_of(again, "duplicate") == [str(loser)], touched
        assert [r["file_path"] for r in records(runner)] == [str(lib / "a" / "dup.safetensors")]
    assert summary(runner, lib)["unchanged"] == 1


def test_duplicate_earlier_in_path_order_takes_the_identity_over(runner: CliRunner, tmp_path: Path) -> None:
    """A claimant added later but sorting first becomes the holder of the identity."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "dup", civitai_model("Dup", version="v1.0", file_name="dup.safetensors"))
    summary(runner, lib)
    write_model(lib / "a", "dup", civitai_model("Dup", version="v1.0", file_name="dup.safetensors"))
    summary(runner, lib)
    assert [r["file_path"] for r in records(runner)] == [str(lib / "a" / "dup.safetensors")]
    again = summary(runner, "--force", lib)
    assert problems_of(again, "duplicate") == [str(lib / "b" / "dup.json")]


def test_holder_that_loses_its_identity_to_an_earlier_file_is_reported_as_duplicate(
    runner: CliRunner, tmp_path: Path
) -> None:
    """The file that becomes the duplicate is reported in that run and listed by ``lora errors``."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "dup", civitai_model("Dup", version="v1.0", file_name="dup.safetensors"))
    summary(runner, lib)
    write_model(lib / "a", "dup", civitai_model("Dup", version="v1.0", file_name="dup.safetensors"))
    data = summary(runner, lib)
    known = json.loads(run(runner, "errors", "--json").stdout)
    assert problems_of(data, "duplicate") == [str(lib / "b" / "dup.json")]
    assert [(p["path"], p["category"]) for p in known] == [(str(lib / "b" / "dup.json"), "duplicate")]


def test_duplicate_takes_over_when_the_holder_is_deleted(runner: CliRunner, tmp_path: Path) -> None:
    """When the winning files go away, the duplicate holds the identity on the next import."""
    lib = tmp_path / "lib"
    duplicate_pair(lib)
    summary(runner, lib)
    shutil.rmtree(lib / "a")
    data = summary(runner, lib)
    assert data["duplicates"] == 0
    rows = records(runner)
    assert [(r["file_path"], r["missing_since"]) for r in rows] == [(str(lib / "b" / "dup.safetensors"), None)]


def test_sidecar_renamed_to_another_identity_leaves_no_old_row(runner: CliRunner, tmp_path: Path) -> None:
    """Editing a sidecar's name or version moves its record; the old (name, version) does not linger."""
    lib = tmp_path / "lib"
    write_model(lib, "thing", civitai_model("Old Name", version="v1", file_name="thing.safetensors"))
    summary(runner, lib)
    rewrite(lib / "thing.json", civitai_model("New Name", version="v1", file_name="thing.safetensors"))
    summary(runner, lib)
    rewrite(lib / "thing.json", civitai_model("New Name", version="v2", file_name="thing.safetensors"))
    summary(runner, lib)
    assert [(r["name"], r["version"]) for r in records(runner)] == [("New Name", "v2")]


@pytest.mark.parametrize(
    ("edited", "expected_path", "duplicate"),
    [("b", "a", "b"), ("a", "a", "b")],
    ids=["later-file-claims-earlier-identity", "earlier-file-claims-later-identity"],
)
def test_sidecar_renamed_onto_a_taken_identity_leaves_its_old_row_missing_with_the_users_state(
    runner: CliRunner, tmp_path: Path, edited: str, expected_path: str, duplicate: str
) -> None:
    """Renaming onto an identity another file holds: path order decides the holder, and the loser's
    old row is left missing (not deleted), so putting the sidecar right brings back the user's state."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    write_model(lib, "b", civitai_model("Beta", file_name="b.safetensors"))
    summary(runner, lib)
    taken, own = ("Alpha", "Beta") if edited == "b" else ("Beta", "Alpha")
    assert run(runner, "set", own, "--weight", "0.3", "--ordinal", "7").exit_code == 0
    rewrite(lib / f"{edited}.json", civitai_model(taken, file_name=f"{edited}.safetensors"))
    summary(runner, lib)
    assert [(r["name"], r["file_path"]) for r in records(runner) if not r["missing_since"]] == [
        (taken, str(lib / f"{expected_path}.safetensors"))
    ]
    assert [r["name"] for r in records(runner, "--missing")] == [own]
    assert problems_of(summary(runner, "--force", lib), "duplicate") == [str(lib / f"{duplicate}.json")]
    rewrite(lib / f"{edited}.json", civitai_model(own, file_name=f"{edited}.safetensors"))
    summary(runner, lib)
    [back] = [r for r in records(runner) if r["name"] == own]
    assert (back["weight"], back["ordinal"], back["missing_since"]) == (0.3, 7, None)


@pytest.mark.parametrize(
    ("removed", "exit_code"),
    [(("celestial-anime-portraits.json", "celestial-anime-portraits.safetensors"), 0)]
    + [(("celestial-anime-portraits.json",), 0), (("celestial-anime-portraits.safetensors",), 1)],
    ids=["both", "sidecar", "model"],
)
def test_vanished_entry_is_marked_missing_not_deleted(
    runner: CliRunner, tmp_path: Path, removed: tuple[str, ...], exit_code: int
) -> None:
    """A record whose files are gone stays in the catalog with ``missing_since``; others are untouched."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(lib)
    summary(runner, lib)
    for name in removed:
        (lib / name).unlink()
    summary(runner, lib, exit_code=exit_code)
    assert names(runner, "--missing") == [CELESTIAL]
    rows = {r["name"]: r["missing_since"] for r in records(runner)}
    assert rows[CELESTIAL] is not None
    assert rows["Mecha Armor"] is None


def test_restored_entry_comes_back_clean(runner: CliRunner, tmp_path: Path) -> None:
    """Files put back after being missing clear ``missing_since`` on the next import."""
    lib = tmp_path / "lib"
    celestial(lib)
    summary(runner, lib)
    shutil.move(lib, tmp_path / "backup")
    lib.mkdir()
    mecha(lib)  # keep the root non-empty, as a library with other models would be
    assert summary(runner, lib)["missing"] == 1
    for item in (tmp_path / "backup").iterdir():
        shutil.copy2(item, lib / item.name)
    summary(runner, lib)
    assert names(runner, "--missing") == []
    assert [(r["name"], r["missing_since"]) for r in records(runner)] == [(CELESTIAL, None), ("Mecha Armor", None)]


def test_prune_deletes_the_rows_whose_files_are_gone(runner: CliRunner, tmp_path: Path) -> None:
    """``--prune`` deletes missing rows under the root and keeps the present ones."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(lib)
    summary(runner, lib)
    (lib / "mecha.json").unlink()
    (lib / "mecha.safetensors").unlink()
    assert summary(runner, lib)["missing"] == 1
    data = summary(runner, "--prune", lib)
    assert data["pruned"] == 1
    assert names(runner) == [CELESTIAL]


def emptied(lib: Path) -> None:
    shutil.rmtree(lib)
    lib.mkdir()


@pytest.mark.parametrize("args", [["--prune"], []], ids=["prune", "plain"])
def test_import_of_an_emptied_root_refuses_and_changes_nothing(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    """An empty root (an unmounted drive) exits 2, and the catalog keeps every row, none marked missing."""
    lib = tmp_path / "lib"
    celestial(lib)
    mecha(lib)
    summary(runner, lib)
    before = records(runner)
    emptied(lib)
    result = run(runner, "import", *args, lib)
    assert result.exit_code == 2, result.output
    assert "empty" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert records(runner) == before


def test_an_empty_folder_the_catalog_knows_no_entry_under_is_imported_as_empty(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Only a root the catalog holds entries under is refused when empty: an empty sub-folder of an imported
    library (known as a folder, holding nothing) is a plain import of nothing, exit 0."""
    lib = tmp_path / "lib"
    celestial(lib)
    (lib / "empty").mkdir()
    summary(runner, lib)
    data = summary(runner, lib / "empty")
    assert (data["new"], data["unchanged"], data["missing"]) == (0, 0, 0)


def test_a_root_whose_files_are_all_ignored_is_refused_naming_the_ignore_rules(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Rules that skip every file look like an empty drive: the message says which of the two it may be."""
    lib = tmp_path / "lib"
    celestial(lib)
    summary(runner, lib)
    (lib / ".loraignore").write_text("**\n", encoding="utf-8")
    result = run(runner, "import", lib)
    assert result.exit_code == 2, result.output
    assert "the ignore rules (--ignore, .loraignore) skip every file" in result.stderr
    assert records(runner)[0]["missing_since"] is None


def test_prune_refuses_when_the_root_is_missing(runner: CliRunner, tmp_path: Path) -> None:
    """``--prune`` on a folder that is not there exits 2 and deletes nothing."""
    lib = tmp_path / "lib"
    celestial(lib)
    summary(runner, lib)
    before = records(runner)
    lib.rename(tmp_path / "unmounted")
    result = run(runner, "import", "--prune", lib)
    assert result.exit_code == 2
    assert "no such directory" in result.stderr
    assert records(runner) == before


def test_prune_refuses_on_an_empty_root_even_with_an_empty_catalog(runner: CliRunner, tmp_path: Path) -> None:
    """``--prune`` with nothing to look at is refused rather than taken as "everything is gone"."""
    (tmp_path / "lib").mkdir()
    result = run(runner, "import", "--prune", tmp_path / "lib")
    assert result.exit_code == 2
    assert "empty" in result.stderr


def test_no_wait_exits_2_while_another_import_holds_the_lock(runner: CliRunner, tmp_path: Path, db_path: Path) -> None:
    """An overlapping import with ``--no-wait`` says another import is running, exits 2 and writes nothing."""
    lib = tmp_path / "lib"
    celestial(lib)
    assert run(runner, "status").exit_code == 0  # the catalog exists; the lock file sits beside it
    fd = os.open(f"{db_path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run(runner, "import", "--no-wait", lib)
    finally:
        os.close(fd)
    assert result.exit_code == 2
    assert f"another import is running on the catalog {db_path};" in result.stderr
    assert records(runner) == []
    assert summary(runner, lib)["new"] == 1


def test_a_dry_run_with_many_problems_does_not_send_the_user_to_lora_errors(runner: CliRunner, tmp_path: Path) -> None:
    """A dry run records nothing, so the rest of its problems are in its --json, not in `lora errors`."""
    lib = tmp_path / "lib"
    for i in range(25):
        write_json(lib / f"ghost-{i:02}.json", civitai_model(f"Ghost {i}"))  # no model file beside any
    result = run(runner, "import", "--dry-run", lib)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "... and 5 more (--json lists them all)"
    real = run(runner, "import", lib)
    assert real.stderr.splitlines()[-1] == "... and 5 more (see `lora errors`)"


def test_an_import_whose_lock_is_lost_stops_with_one_line(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command asks its lock whether it still holds (a PostgreSQL lock goes with its
    connection): when it does not, the run stops with exit 2 and says why, without a traceback."""
    from lora_manager.db import lock
    from lora_manager.errors import LoraError

    write_model(tmp_path / "lib", "a", civitai_model("Alpha", file_name="a.safetensors"))

    def lost(self: lock.HeldLock) -> None:
        raise LoraError("lost the catalog's import lock: (as the server dropped it)")

    monkeypatch.setattr(lock.HeldLock, "check", lost)
    result = run(runner, "import", tmp_path / "lib")
    assert result.exit_code == 2, result.output
    assert "lost the catalog's import lock" in result.stderr and "Traceback" not in result.output

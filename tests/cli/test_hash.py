"""`lora hash` and `lora import --hash`: what is read, what is stored, what is reported, exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from lora_manager.db import open_catalog
from lora_manager.db.schema import model_file
from tests.builders import NOT_REGULAR, civitai_version, replace_with_not_regular, write_model, write_safetensors
from tests.waiting import answers_at_once


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def hash_json(runner: CliRunner, db: str, *args: Any, exit_code: int = 0) -> dict[str, Any]:
    """The ``--json`` summary of one ``lora hash``, after checking its exit code."""
    result = run(runner, "--db", db, "hash", "--json", *args)
    assert result.exit_code == exit_code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def rows(db: str) -> dict[str, dict[str, Any]]:
    engine = open_catalog(db)
    try:
        with engine.connect() as conn:
            return {r.path: dict(r._mapping) for r in conn.execute(select(model_file))}
    finally:
        engine.dispose()


def library(root: Path) -> dict[str, Path]:
    """Two catalogued LoRAs (in two folders), an orphan and a second copy of one model file."""
    files = {
        "alpha": write_model(root / "a", "alpha", civitai_version("Alpha Style", file_name="alpha.safetensors")),
        "beta": write_model(root / "b", "beta", civitai_version("Beta Pose", file_name="beta.safetensors")),
        "orphan": write_safetensors(root / "b" / "orphan.safetensors", {"ss_output_name": "orphan"}, 1000),
    }
    files["copy"] = root / "b" / "alpha-copy.safetensors"
    shutil.copy2(files["alpha"], files["copy"])
    return files


def imported(runner: CliRunner, db: str, root: Path) -> None:
    result = run(runner, "--db", db, "import", root)
    assert result.exit_code == 0, result.output


def test_second_hash_reads_nothing_and_keeps_hashed_at(runner: CliRunner, tmp_path: Path, catalog_url: str) -> None:
    """An unchanged file is never hashed twice: the second run hashes 0 and leaves ``hashed_at`` alone."""
    files = library(tmp_path / "lib")
    imported(runner, catalog_url, tmp_path / "lib")
    first = hash_json(runner, catalog_url, tmp_path / "lib")
    assert (first["hashed"], first["already_current"], first["files"]) == (4, 0, 4)
    before = {p: r["hashed_at"] for p, r in rows(catalog_url).items()}
    second = hash_json(runner, catalog_url, tmp_path / "lib")
    assert (second["hashed"], second["already_current"], second["bytes_hashed"]) == (0, 4, 0)
    assert {p: r["hashed_at"] for p, r in rows(catalog_url).items()} == before
    for path in files.values():
        assert rows(catalog_url)[str(path)]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_text_summary_says_how_many_were_hashed_and_already_current(runner: CliRunner, tmp_path: Path) -> None:
    """Without --json the summary is one line on stdout; a second run reports 0 hashed."""
    library(tmp_path / "lib")
    imported(runner, str(tmp_path / "catalog.db"), tmp_path / "lib")
    assert run(runner, "hash", tmp_path / "lib").stdout.startswith("hashed: 4 files (")
    result = run(runner, "hash")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("hashed: 0 files (0 bytes), 4 already current, 0 vanished, 0 failed")


def test_file_replaced_in_place_loses_its_hash_and_is_rehashed(runner: CliRunner, tmp_path: Path) -> None:
    """New content under the same path: import drops the old hash, and `lora hash` computes the new one."""
    db = str(tmp_path / "catalog.db")
    files = library(tmp_path / "lib")
    imported(runner, db, tmp_path / "lib")
    hash_json(runner, db)
    old = rows(db)[str(files["orphan"])]["sha256"]
    write_safetensors(files["orphan"], {"ss_output_name": "retrained"}, 3000)
    imported(runner, db, tmp_path / "lib")
    assert rows(db)[str(files["orphan"])]["sha256"] is None
    summary = hash_json(runner, db)
    assert (summary["hashed"], summary["already_current"]) == (1, 3)
    new = rows(db)[str(files["orphan"])]["sha256"]
    assert new == hashlib.sha256(files["orphan"].read_bytes()).hexdigest() != old


def test_force_reads_current_files_again_and_catches_content_changed_behind_a_kept_mtime(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Bit rot keeps size and mtime: a plain hash trusts them, ``--force`` reads the file and stores its real hash."""
    import os

    db = str(tmp_path / "catalog.db")
    files = library(tmp_path / "lib")
    imported(runner, db, tmp_path / "lib")
    hash_json(runner, db)
    target = files["orphan"]
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the tensor data
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert hash_json(runner, db)["hashed"] == 0  # size and mtime say nothing changed
    forced = hash_json(runner, db, "--force")
    assert (forced["hashed"], forced["already_current"]) == (4, 0)
    assert rows(db)[str(target)]["sha256"] == hashlib.sha256(bytes(data)).hexdigest()


def test_a_path_limits_hashing_to_model_files_under_that_folder(runner: CliRunner, tmp_path: Path) -> None:
    """``lora hash FOLDER`` reads only the tracked files below FOLDER; ``lora hash FILE`` only that file."""
    db = str(tmp_path / "catalog.db")
    files = library(tmp_path / "lib")
    imported(runner, db, tmp_path / "lib")
    summary = hash_json(runner, db, tmp_path / "lib" / "b")
    assert sorted(h["path"] for h in summary["hashes"]) == sorted(str(files[k]) for k in ("beta", "orphan", "copy"))
    assert [h["path"] for h in hash_json(runner, db, files["alpha"])["hashes"]] == [str(files["alpha"])]


def test_a_query_limits_hashing_to_loras_whose_name_matches(runner: CliRunner, tmp_path: Path) -> None:
    """A word that is no path selects the files of LoRAs whose name contains it, ignoring case."""
    db = str(tmp_path / "catalog.db")
    files = library(tmp_path / "lib")
    imported(runner, db, tmp_path / "lib")
    summary = hash_json(runner, db, "ALPHA st")
    assert [h["path"] for h in summary["hashes"]] == [str(files["alpha"])]
    assert summary["files"] == 1


def test_a_query_matching_no_lora_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """Neither a path nor a name: exit 2 with one line saying so."""
    imported(runner, str(tmp_path / "catalog.db"), library(tmp_path / "lib")["alpha"].parent)
    result = run(runner, "hash", "no-such-thing")
    assert result.exit_code == 2
    assert result.stderr == "lora: error: 'no-such-thing': no such file or folder, nor a LoRA name (see `lora list`)\n"


def test_hashes_stored_are_lowercase_with_autov3_and_provenance(runner: CliRunner, tmp_path: Path) -> None:
    """``--json`` lists each hash with AutoV2 (10 hex), AutoV3 (12 hex) and where AutoV3 came from."""
    lib = tmp_path / "lib"
    plain = write_safetensors(lib / "plain.safetensors", {"ss_output_name": "plain"}, 2048)
    headed = write_safetensors(lib / "headed.safetensors", {"sshs_model_hash": "C0FFEE" * 10 + "0000"}, 2048)
    imported(runner, str(tmp_path / "catalog.db"), lib)
    by_path = {h["path"]: h for h in hash_json(runner, str(tmp_path / "catalog.db"))["hashes"]}
    sha = hashlib.sha256(plain.read_bytes()).hexdigest()
    assert by_path[str(plain)]["sha256"] == sha and by_path[str(plain)]["autov2"] == sha[:10]
    assert (by_path[str(plain)]["autov3_source"], len(by_path[str(plain)]["autov3"])) == ("computed", 12)
    assert (by_path[str(headed)]["autov3"], by_path[str(headed)]["autov3_source"]) == ("c0ffeec0ffee", "header")


def test_a_hundred_megabyte_file_hashes_like_hashlib(runner: CliRunner, tmp_path: Path) -> None:
    """A large file is read in chunks by several threads and still matches a plain SHA256."""
    lib = tmp_path / "lib"
    big = write_safetensors(lib / "big.safetensors", {"ss_output_name": "big"}, tensor_bytes=100 * 1024 * 1024 + 7)
    write_safetensors(lib / "small.safetensors", {"ss_output_name": "small"}, 4096)
    imported(runner, str(tmp_path / "catalog.db"), lib)
    summary = hash_json(runner, str(tmp_path / "catalog.db"), "--threads", 2)
    assert summary["bytes_hashed"] == big.stat().st_size + (lib / "small.safetensors").stat().st_size
    assert rows(str(tmp_path / "catalog.db"))[str(big)]["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()


def test_plain_import_never_hashes_and_import_hash_does(runner: CliRunner, tmp_path: Path) -> None:
    """``lora import`` leaves hashes alone; ``lora import --hash`` hashes the roots it imported."""
    db = str(tmp_path / "catalog.db")
    library(tmp_path / "lib")
    imported(runner, db, tmp_path / "lib")
    assert all(r["sha256"] is None for r in rows(db).values())
    result = run(runner, "--db", db, "import", "--hash", "--json", tmp_path / "lib")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["unchanged"], data["hash"]["hashed"]) == (2, 4)
    assert all(r["sha256"] is not None for r in rows(db).values())


def test_import_hash_prints_both_summaries(runner: CliRunner, tmp_path: Path) -> None:
    """Without --json, the import's line comes first, then the hashing line."""
    library(tmp_path / "lib")
    result = run(runner, "import", "--hash", tmp_path / "lib")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("imported: 2 new") and lines[1].startswith("hashed: 4 files")


def test_a_vanished_file_is_skipped_and_reported_without_failing(runner: CliRunner, tmp_path: Path) -> None:
    """A file deleted since the import is named on stderr; the others are hashed; exit 0."""
    files = library(tmp_path / "lib")
    imported(runner, str(tmp_path / "catalog.db"), tmp_path / "lib")
    files["copy"].unlink()
    result = run(runner, "hash")
    assert result.exit_code == 0, result.output
    assert f"{files['copy']}: vanished" in result.stderr
    assert result.stdout.startswith("hashed: 3 files")


def test_an_unusable_model_file_exits_1_after_hashing_the_rest(runner: CliRunner, tmp_path: Path) -> None:
    """One file that cannot be read (a link loop) is reported; the others are stored; the run exits 1."""
    files = library(tmp_path / "lib")
    imported(runner, str(tmp_path / "catalog.db"), tmp_path / "lib")
    files["orphan"].unlink()
    files["orphan"].symlink_to(files["orphan"].name)
    summary = hash_json(runner, str(tmp_path / "catalog.db"), exit_code=1)
    assert [p["path"] for p in summary["problems"]] == [str(files["orphan"])]
    assert summary["hashed"] == 3


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_model_files_the_import_saw_become_no_regular_file_never_fail_hash(
    runner: CliRunner, tmp_path: Path, catalog_url: str, kind: str
) -> None:
    """A model file (with a sidecar, or an orphan) now a FIFO or device is missing to import and hash: exit 0, quiet."""
    files = library(tmp_path / "lib")
    imported(runner, catalog_url, tmp_path / "lib")
    for name in ("alpha", "orphan"):
        replace_with_not_regular(files[name], kind)
    assert run(runner, "--db", catalog_url, "import", tmp_path / "lib").exit_code == 1  # alpha's sidecar: no model
    assert all(rows(catalog_url)[str(files[n])]["missing_since"] is not None for n in ("alpha", "orphan"))
    for _ in range(2):
        result = answers_at_once(lambda: run(runner, "--db", catalog_url, "hash"), "lora hash")
        assert isinstance(result, Result)
        assert (result.exit_code, result.stderr) == (0, ""), result.output
        assert ", 0 vanished, 0 failed in " in result.stdout


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_model_file_become_no_regular_file_since_the_import_is_said_to_vanish_once(
    runner: CliRunner, tmp_path: Path, kind: str
) -> None:
    """As a file deleted since the import: named once on stderr, exit 0, then nothing more."""
    files = library(tmp_path / "lib")
    imported(runner, str(tmp_path / "catalog.db"), tmp_path / "lib")
    replace_with_not_regular(files["orphan"], kind)
    first = answers_at_once(lambda: run(runner, "hash"), "lora hash")
    assert isinstance(first, Result)
    assert first.exit_code == 0, first.output
    assert first.stderr == f"{files['orphan']}: vanished; skipped (run `lora import` to update the catalog)\n"
    again = run(runner, "hash")
    assert (again.exit_code, again.stderr) == (0, ""), again.output


@pytest.mark.parametrize("args", [["hash", "--quiet"], ["import", "--hash", "--quiet", "{lib}"]])
def test_quiet_prints_nothing_on_success(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    """``--quiet`` hashes and says nothing."""
    library(tmp_path / "lib")
    imported(runner, str(tmp_path / "catalog.db"), tmp_path / "lib")
    result = run(runner, *(a.replace("{lib}", str(tmp_path / "lib")) for a in args))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert all(r["sha256"] for r in rows(str(tmp_path / "catalog.db")).values())

"""`lora duplicates`: copies, re-headered weights and identity clashes, from computed hashes only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_version, write_json, write_model, write_safetensors


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def found(runner: CliRunner, *prefix: Any) -> dict[str, Any]:
    result = run(runner, *prefix, "duplicates", "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def prepare(runner: CliRunner, lib: Path, *hash_args: Any, prefix: tuple[Any, ...] = ()) -> None:
    for args in (["import", lib], ["hash", *hash_args]):
        result = run(runner, *prefix, *args)
        assert result.exit_code == 0, result.output


def test_a_copied_file_is_grouped_and_its_size_is_freeable(runner: CliRunner, tmp_path: Path, catalog_url: str) -> None:
    """Two paths with one computed SHA256 form a group; keeping one copy frees the other's bytes."""
    lib = tmp_path / "lib"
    original = write_model(lib, "alpha", civitai_version("Alpha", file_name="alpha.safetensors"))
    write_model(lib, "other", civitai_version("Other", file_name="other.safetensors"), metadata={"x": "y"})
    copies = [lib / "backup" / "alpha.safetensors", lib / "old" / "alpha-v1.safetensors"]
    for copy in copies:
        copy.parent.mkdir(parents=True)
        shutil.copy2(original, copy)
    prepare(runner, lib, prefix=("--db", catalog_url))
    data = found(runner, "--db", catalog_url)
    (group,) = data["copies"]
    size = original.stat().st_size
    assert [f["path"] for f in group["files"]] == [str(original), *map(str, copies)]
    assert [f["catalogued"] for f in group["files"]] == [True, False, False]
    assert group["freeable_bytes"] == data["freeable_bytes"] == 2 * size


def test_same_weights_under_another_header_are_grouped_as_reheadered(runner: CliRunner, tmp_path: Path) -> None:
    """Equal tensor data with different headers: one ``reheadered`` group, and no ``copies``."""
    lib = tmp_path / "lib"
    first = write_safetensors(lib / "first.safetensors", {"ss_output_name": "first"}, 4096)
    second = write_safetensors(lib / "second.safetensors", {"ss_output_name": "renamed by an editor"}, 4096)
    write_safetensors(lib / "unrelated.safetensors", {"ss_output_name": "first"}, 4000)
    prepare(runner, lib)
    data = found(runner)
    assert data["copies"] == []
    (group,) = data["reheadered"]
    assert sorted(f["path"] for f in group["files"]) == [str(first), str(second)]
    assert len({f["sha256"] for f in group["files"]}) == 2
    assert group["freeable_bytes"] == 0


def test_a_header_autov3_alone_never_groups_weights(runner: CliRunner, tmp_path: Path) -> None:
    """Files whose AutoV3 only the header claims join ``reheadered`` once --tensor-hash computed it."""
    lib = tmp_path / "lib"
    for name in ("first", "second"):
        write_safetensors(lib / f"{name}.safetensors", {"ss_output_name": name, "sshs_model_hash": "ab" * 32}, 4096)
    prepare(runner, lib)
    assert found(runner)["reheadered"] == []
    assert run(runner, "hash", "--tensor-hash").exit_code == 0
    assert len(found(runner)["reheadered"]) == 1


def test_several_files_claiming_one_lora_are_listed_catalogued_first(runner: CliRunner, tmp_path: Path) -> None:
    """An identity held by one file and claimed by others is a group, the catalogued file first."""
    lib = tmp_path / "lib"
    sidecar = civitai_version("Shared Name", file_name="x.safetensors")
    winner = write_model(lib / "a", "x", sidecar)
    loser = write_model(lib / "b", "x", sidecar, metadata={"ss_output_name": "other"})
    prepare(runner, lib)
    (group,) = found(runner)["claimed"]
    assert group["key"] == "Shared Name v1.0"
    assert [(f["path"], f["catalogued"]) for f in group["files"]] == [(str(winner), True), (str(loser), False)]
    assert all(f["sha256"] for f in group["files"])
    assert [f["size"] for f in group["files"]] == [winner.stat().st_size, loser.stat().st_size]


def test_sidecar_claims_never_make_files_duplicates(runner: CliRunner, tmp_path: Path) -> None:
    """Two different files whose sidecars claim one SHA256 are not copies: only computed hashes count."""
    lib = tmp_path / "lib"
    for stem in ("one", "two"):
        model = write_model(lib, stem, None, metadata={"ss_output_name": stem})
        write_json(lib / f"{stem}.civitai.info", civitai_version(stem, file_name=model.name, sha256="ef" * 32))
    assert run(runner, "import", lib).exit_code == 0
    assert (found(runner)["copies"], found(runner)["unhashed"]) == ([], 2)
    assert run(runner, "hash").exit_code == 0
    assert (found(runner)["copies"], found(runner)["unhashed"]) == ([], 0)


def test_a_copy_deleted_after_hashing_is_not_offered_as_freeable(runner: CliRunner, tmp_path: Path) -> None:
    """Only files still on disk, unchanged, count: deleting the last copy must never be suggested."""
    lib = tmp_path / "lib"
    original = write_safetensors(lib / "a.safetensors", {"ss_output_name": "a"}, 4096)
    copy = lib / "b.safetensors"
    shutil.copy2(original, copy)
    prepare(runner, lib)
    assert found(runner)["freeable_bytes"] == original.stat().st_size
    copy.unlink()
    data = found(runner)
    assert (data["copies"], data["freeable_bytes"], data["stale"]) == ([], 0, [str(copy)])


def test_groups_in_a_pipe_are_tab_separated_and_unhashed_files_are_counted(runner: CliRunner, tmp_path: Path) -> None:
    """Not a terminal: one line per file; stderr says how much could be freed and what is not hashed."""
    lib = tmp_path / "lib"
    original = write_safetensors(lib / "a.safetensors", {"ss_output_name": "a"}, 4096)
    shutil.copy2(original, lib / "b.safetensors")
    prepare(runner, lib)
    write_safetensors(lib / "new.safetensors", {"ss_output_name": "new"}, 999)
    assert run(runner, "import", lib).exit_code == 0
    result = run(runner, "duplicates")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(f[0], f[2]) for f in lines] == [("copies", str(original)), ("copies", str(lib / "b.safetensors"))]
    assert original.stat().st_size == 4232
    assert "1 set of copies (4.2 kB could be freed)" in result.stderr
    assert "1 model file not hashed yet: run `lora hash`" in result.stderr

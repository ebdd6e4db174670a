"""`lora verify`: sidecar claims against computed hashes, and only hashes that still describe the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import (
    NOT_REGULAR,
    civitai_version,
    replace_with_not_regular,
    write_json,
    write_model,
    write_safetensors,
)


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def verify_json(runner: CliRunner, *args: Any, exit_code: int = 0) -> dict[str, Any]:
    result = run(runner, "verify", "--json", *args)
    assert result.exit_code == exit_code, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def claimed(folder: Path, stem: str, name: str, sha256: str | None = None) -> Path:
    """A model file with a Civitai version sidecar claiming ``sha256`` (its own hash when None)."""
    model = write_model(folder, stem, None)
    digest = sha256 or hashlib.sha256(model.read_bytes()).hexdigest()
    write_json(folder / f"{stem}.civitai.info", civitai_version(name, file_name=model.name, sha256=digest))
    return model


def prepare(runner: CliRunner, lib: Path, *extra: str, db: str | None = None) -> None:
    """Import ``lib`` and hash it."""
    prefix = ["--db", db] if db else []
    for args in (["import", lib], ["hash", *extra]):
        result = run(runner, *prefix, *args)
        assert result.exit_code == 0, result.output


def test_verify_detects_a_sidecar_claiming_a_wrong_sha256(runner: CliRunner, tmp_path: Path, catalog_url: str) -> None:
    """A claim that disagrees with the computed SHA256 is listed with its sidecar, and verify exits 1."""
    lib = tmp_path / "lib"
    claimed(lib, "good", "Good LoRA")
    bad = claimed(lib, "partial", "Partial Download", sha256="ab" * 32)
    prepare(runner, lib, db=catalog_url)
    result = run(runner, "--db", catalog_url, "verify", "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] == 1
    assert report["mismatches"] == [
        {
            "name": "Partial Download",
            "version": "v1.0",
            "path": str(bad),
            "hash": "sha256",
            "claimed": "ab" * 32,
            "computed": hashlib.sha256(bad.read_bytes()).hexdigest(),
            "source": "civitai_version",
            "sidecar": str(lib / "partial.civitai.info"),
        }
    ]


def test_verify_passes_when_every_claim_matches(runner: CliRunner, tmp_path: Path) -> None:
    """Right claims exit 0; a model without any claim is counted, not failed."""
    lib = tmp_path / "lib"
    claimed(lib, "one", "One")
    claimed(lib, "two", "Two")
    write_model(lib, "silent", civitai_version("Silent", file_name="silent.safetensors"))
    prepare(runner, lib)
    report = verify_json(runner)
    assert (report["ok"], report["mismatches"], report["unverified"], report["no_claim"]) == (2, [], 0, 1)


def test_files_not_hashed_yet_are_unverified_and_lora_hash_is_suggested(runner: CliRunner, tmp_path: Path) -> None:
    """Before `lora hash`, claims cannot be checked: they are counted, and the message says what to run."""
    lib = tmp_path / "lib"
    model = claimed(lib, "one", "One", sha256="ab" * 32)
    assert run(runner, "import", lib).exit_code == 0
    result = run(runner, "verify")
    assert result.exit_code == 0, result.output
    assert "0 match, 0 mismatched, 1 unverified" in result.stderr
    assert "run `lora hash`" in result.stderr
    assert verify_json(runner)["unverified_files"] == [str(model)]


def test_a_hash_gone_stale_is_never_reported_as_valid(runner: CliRunner, tmp_path: Path) -> None:
    """A file replaced after hashing (re-imported or not) is unverified until it is hashed again."""
    lib = tmp_path / "lib"
    model = claimed(lib, "one", "One")
    prepare(runner, lib)
    assert verify_json(runner)["ok"] == 1
    write_safetensors(model, {"ss_output_name": "changed"}, tensor_bytes=128)
    assert (verify_json(runner)["ok"], verify_json(runner)["unverified"]) == (0, 1)
    assert run(runner, "import", lib).exit_code == 0
    assert (verify_json(runner)["ok"], verify_json(runner)["unverified"]) == (0, 1)
    assert run(runner, "hash").exit_code == 0
    assert verify_json(runner, exit_code=1)["mismatches"][0]["hash"] == "sha256"  # the sidecar describes the old file


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_model_file_become_no_regular_file_is_missing_as_a_deleted_one_is(
    runner: CliRunner, tmp_path: Path, catalog_url: str, kind: str
) -> None:
    """A FIFO, device or folder in its place counts as missing, not as a changed file `lora hash` could check."""
    lib = tmp_path / "lib"
    deleted, replaced = claimed(lib, "deleted", "Deleted"), claimed(lib, "replaced", "Replaced")
    prepare(runner, lib, db=catalog_url)
    deleted.unlink()
    replace_with_not_regular(replaced, kind)
    for step in ([], ["hash"], ["import", lib]):  # as it is, after `lora hash`, after `lora import`
        if step:
            run(runner, "--db", catalog_url, *step)
        result = run(runner, "--db", catalog_url, "verify", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["ok"], report["unverified"], report["missing"]) == (0, 0, [str(deleted), str(replaced)])
    result = run(runner, "--db", catalog_url, "verify")
    assert "run `lora hash`" not in result.stderr and "2 missing" in result.stderr


def test_a_header_autov3_that_the_tensor_data_contradicts_is_a_mismatch(runner: CliRunner, tmp_path: Path) -> None:
    """With --tensor-hash, the AutoV3 a header records is checked against the tensor data it describes."""
    lib = tmp_path / "lib"
    model = write_model(lib, "liar", None, metadata={"sshs_model_hash": "12" * 32, "ss_output_name": "liar"})
    write_json(lib / "liar.civitai.info", civitai_version("Liar", file_name=model.name))
    prepare(runner, lib, "--tensor-hash")
    (mismatch,) = verify_json(runner, exit_code=1)["mismatches"]
    assert (mismatch["hash"], mismatch["claimed"], mismatch["source"], mismatch["sidecar"]) == (
        "autov3",
        "121212121212",
        "header",
        str(model),
    )


def test_a_file_claiming_only_an_autov3_is_sent_to_the_tensor_hash_not_to_plain_hash(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Hashed, but its only claim is the header's AutoV3: `lora hash` again would change nothing."""
    lib = tmp_path / "lib"
    model = write_model(lib, "v3", None, metadata={"sshs_model_hash": "12" * 32, "ss_output_name": "v3"})
    write_json(lib / "v3.civitai.info", civitai_version("V3", file_name=model.name))
    prepare(runner, lib)
    data = verify_json(runner)
    assert (data["unverified"], data["unverified_autov3_only"]) == (1, [str(model)])
    result = run(runner, "verify")
    assert "1 file claims only an AutoV3: run `lora hash --tensor-hash` to check it" in result.stderr
    assert "not hashed yet" not in result.stderr


def test_a_claimed_hash_that_is_no_hash_counts_as_no_claim(runner: CliRunner, tmp_path: Path) -> None:
    """A 20-digit prefix or 64 characters that are not hexadecimal claim nothing: not a mismatch, not a match."""
    lib = tmp_path / "lib"
    prefix = hashlib.sha256(write_model(lib / "short", "one", None).read_bytes()).hexdigest()[:20]
    write_json(lib / "short" / "one.civitai.info", civitai_version("One", file_name="one.safetensors", sha256=prefix))
    claimed(lib / "text", "two", "Two", sha256="zz" * 32)
    prepare(runner, lib)
    data = verify_json(runner)
    assert (data["ok"], data["mismatches"], data["no_claim"]) == (0, [], 2)


def test_a_path_limits_verify_to_that_folder(runner: CliRunner, tmp_path: Path) -> None:
    """``lora verify FOLDER`` checks only the LoRAs whose model file is below FOLDER."""
    lib = tmp_path / "lib"
    claimed(lib / "good", "one", "One")
    claimed(lib / "bad", "two", "Two", sha256="cd" * 32)
    prepare(runner, lib)
    assert verify_json(runner, lib / "good")["ok"] == 1
    assert len(verify_json(runner, lib / "bad", exit_code=1)["mismatches"]) == 1


def test_mismatches_in_a_pipe_are_tab_separated_lines(runner: CliRunner, tmp_path: Path) -> None:
    """Not a terminal: one ``mismatch`` line per claim on stdout, the counts on stderr."""
    lib = tmp_path / "lib"
    bad = claimed(lib, "two", "Two", sha256="cd" * 32)
    prepare(runner, lib)
    result = run(runner, "verify")
    assert result.exit_code == 1
    fields = result.stdout.rstrip("\n").split("\t")
    assert fields[:4] == ["mismatch", str(bad), "sha256", "cd" * 32]
    assert "0 match, 1 mismatched" in result.stderr


def test_quiet_verify_prints_nothing_unless_a_hash_disagrees(runner: CliRunner, tmp_path: Path) -> None:
    """For cron: silent on success, the mismatch and exit 1 otherwise."""
    lib = tmp_path / "lib"
    claimed(lib, "one", "One")
    prepare(runner, lib)
    quiet = run(runner, "verify", "--quiet")
    assert (quiet.exit_code, quiet.output) == (0, "")
    claimed(lib, "two", "Two", sha256="cd" * 32)
    prepare(runner, lib)
    noisy = run(runner, "verify", "--quiet")
    assert noisy.exit_code == 1
    assert "two.safetensors" in noisy.stdout and "1 mismatched" in noisy.stderr

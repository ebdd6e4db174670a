"""The sample library under ``examples/``: in sync with its script, and imported as the README's quickstart shows.

The sample is designed to import with exit code 1: five records, one orphan model file, one
skipped ``config.json`` and exactly one failure, ``unsorted/pixel-knights.json`` whose model
file is missing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from lora_manager.safetensors import read_header

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LIBRARY = EXAMPLES / "library"
RECORDS = {
    # name: (version, base model, author, weight, sidecar dialects)
    "Celestial Anime Portraits": ("v1.1", "SD 1.5", "stargazer", 1.0, ["civitai_model"]),
    "Clean LineArt XL": ("v1.1", "SDXL 1.0", "inkbot", 1.0, ["stability_matrix"]),
    "Ink Wash Landscapes": ("v1.0", "SD 1.5", "brushwork_studio", 0.7, ["a1111", "civitai_version"]),
    "Mecha Armor": ("v2", "SDXL 1.0", "ironsmith", 1.0, ["civitai_model"]),
    "Neon City Nights": ("v1.0", "SDXL 1.0", "voltage", 0.65, ["lora_manager"]),
}


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def imported(runner: CliRunner) -> dict[str, Any]:
    """The ``--json`` summary of importing the sample library into the test's catalog."""
    result = run(runner, "import", "--json", LIBRARY)
    assert result.exit_code == 1, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def records(runner: CliRunner) -> dict[str, dict[str, Any]]:
    result = run(runner, "list", "--json")
    assert result.exit_code == 0, result.output
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_committed_library_is_what_make_examples_writes(tmp_path: Path) -> None:
    """Running the script again writes byte-for-byte the committed library (it is deterministic)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_examples.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert files_under(tmp_path / "out") == files_under(LIBRARY)


def test_model_files_are_tiny_real_safetensors_with_kohya_metadata() -> None:
    """Every model file is a few hundred bytes, with a readable header carrying kohya's ``ss_`` keys."""
    models = sorted(LIBRARY.rglob("*.safetensors"))
    assert len(models) == 6
    for model in models:
        assert model.stat().st_size < 1024, model
        header = read_header(str(model))
        assert header.output_name, model
        assert header.metadata["ss_network_module"] == "networks.lora"
        assert header.base_model in ("SD 1.5", "SDXL 1.0"), model
        tensors = model.read_bytes()[header.tensor_data_offset :]
        assert header.metadata["sshs_model_hash"] == hashlib.sha256(tensors).hexdigest()


def test_importing_the_sample_fails_only_for_the_sidecar_without_model(imported: dict[str, Any]) -> None:
    """Exit 1 comes from one ``model_missing`` file; the diffusers config is skipped, the orphan counted."""
    counts = {k: imported[k] for k in ("new", "updated", "unchanged", "skipped", "failed", "duplicates", "orphans")}
    assert counts == {"new": 5, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 1, "duplicates": 0, "orphans": 1}
    assert sorted((p["kind"], p["path"]) for p in imported["problems"]) == [
        ("model_missing", str(LIBRARY / "unsorted" / "pixel-knights.json")),
        ("not_metadata", str(LIBRARY / "unsorted" / "config.json")),
    ]


def test_sample_records_come_from_every_dialect(runner: CliRunner, imported: dict[str, Any]) -> None:
    """Each record has the expected version, base model, author, weight and sidecar dialects."""
    found = records(runner)
    assert {
        name: (
            r["version"],
            r["base_model"],
            r["author_username"],
            r["weight"],
            sorted(s["dialect"] for s in r["sidecars"]),
        )
        for name, r in found.items()
    } == RECORDS


def test_design_example_record_is_complete(runner: CliRunner, imported: dict[str, Any]) -> None:
    """The design's "Celestial Anime Portraits" keeps its tags, trained words, creator, hashes and preview."""
    record = records(runner)["Celestial Anime Portraits"]
    model = LIBRARY / "anime" / "celestial-anime-portraits.safetensors"
    assert record["tags"] == ["anime", "portrait", "fantasy", "celestial", "watercolor"]
    assert record["trained_words"] == ["celestial portrait", "shimmering eyes"]
    assert (record["activation_text"], record["sd_version"]) == ("celestial portrait", "SD1.5")
    assert record["primary_file_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert record["primary_file_autov3"] == read_header(str(model)).metadata["sshs_model_hash"][:12]
    assert record["preview_path"] == str(LIBRARY / "anime" / "celestial-anime-portraits.preview.png")
    assert record["file_path"] == str(model)


def test_sample_orphans_are_the_orphan_model_and_the_sidecar_without_model(runner: CliRunner) -> None:
    """``lora orphans examples/library`` lists exactly the two planted orphans; the config.json is neither."""
    result = run(runner, "orphans", "--json", LIBRARY)
    assert result.exit_code == 0, result.output
    assert [(o["kind"], o["path"], o["output_name"], o["base_model"]) for o in json.loads(result.stdout)] == [
        ("model", str(LIBRARY / "unsorted" / "mystery-style.safetensors"), "mystery_style_v3", "SD 1.5"),
        ("sidecar", str(LIBRARY / "unsorted" / "pixel-knights.json"), None, None),
    ]


def test_quickstart_output_as_the_readme_shows_it(runner: CliRunner) -> None:
    """The plain import prints the summary line on stdout and the two problems on stderr; list prints 5 lines."""
    result = run(runner, "import", LIBRARY)
    assert result.exit_code == 1
    assert result.stdout.startswith("imported: 5 new, 0 updated, 0 unchanged, 1 skipped, 1 failed (1 orphans) in ")
    assert [line.split(": ")[1] for line in result.stderr.splitlines()] == ["not_metadata", "model_missing"]
    listed = run(runner, "list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == sorted(RECORDS)
    second = run(runner, "import", LIBRARY)
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("imported: 0 new, 0 updated, 5 unchanged, 0 skipped, 0 failed")

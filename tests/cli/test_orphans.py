"""`lora orphans`: model files without any sidecar, and sidecars without their model file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model, write_safetensors


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def orphans_json(runner: CliRunner, *args: Any) -> list[dict[str, Any]]:
    result = run(runner, "orphans", "--json", *args)
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


def found(runner: CliRunner, *args: Any) -> list[tuple[str, str]]:
    return [(o["kind"], o["path"]) for o in orphans_json(runner, *args)]


KOHYA = {
    "ss_output_name": "mystery_style_v3",
    "ss_base_model_version": "sd_v1",
    "ss_tag_frequency": json.dumps({"10_train": {"oil painting": 52, "impasto": 30}}),
}


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A catalogued model, an orphan model with a kohya header, a sidecar without model, and noise JSON."""
    root = tmp_path / "lib"
    write_model(root, "known", civitai_model("Known", file_name="known.safetensors"))
    write_safetensors(root / "unsorted" / "mystery.safetensors", KOHYA)
    write_json(root / "unsorted" / "ghost.json", civitai_model("Ghost", file_name="ghost.safetensors"))
    write_json(root / "diffusers" / "config.json", {"_class_name": "UNet2DConditionModel", "act_fn": "silu"})
    return root


def test_orphans_lists_models_without_sidecar_and_sidecars_without_model(runner: CliRunner, lib: Path) -> None:
    """The orphan model and the lonely sidecar are listed; the catalogued model and the noise JSON are not."""
    assert found(runner, lib) == [
        ("sidecar", str(lib / "unsorted" / "ghost.json")),
        ("model", str(lib / "unsorted" / "mystery.safetensors")),
    ]


def test_orphan_model_shows_what_its_header_says(runner: CliRunner, lib: Path) -> None:
    """A .safetensors orphan shows its ``ss_output_name``, base model and top training tags."""
    [model] = [o for o in orphans_json(runner, lib) if o["kind"] == "model"]
    assert (model["output_name"], model["base_model"], model["tags"]) == (
        "mystery_style_v3",
        "SD 1.5",
        ["oil painting", "impasto"],
    )
    assert model["size"] == (lib / "unsorted" / "mystery.safetensors").stat().st_size


def test_orphans_in_a_pipe_prints_tab_separated_lines(runner: CliRunner, lib: Path) -> None:
    """Plain output: kind, path, header name, base model, tags, detail."""
    result = run(runner, "orphans", lib)
    assert result.exit_code == 0, result.output
    assert [line.split("\t") for line in result.stdout.splitlines()] == [
        ["sidecar", str(lib / "unsorted" / "ghost.json"), "", "", "", "no model file named ghost.* beside it"],
        [
            "model",
            str(lib / "unsorted" / "mystery.safetensors"),
            "mystery_style_v3",
            "SD 1.5",
            "oil painting, impasto",
            "no metadata sidecar",
        ],
    ]


@pytest.mark.parametrize(
    ("suffix", "sidecar"),
    [
        (".json", civitai_model("Any", file_name="any.safetensors")),
        (".civitai.info", civitai_version("Any", file_name="any.safetensors")),
        (".civitai.info", {}),
        (".json", a1111(activation_text="any style")),
        (".metadata.json", {"model_name": "Any", "file_name": "any", "base_model": "SDXL 1.0"}),
        (".cm-info.json", {"ModelName": "Any", "VersionName": "v1", "Tags": []}),
    ],
    ids=["civitai-model", "civitai-version", "civitai-not-found", "a1111", "lora-manager", "stability-matrix"],
)
def test_model_with_a_sidecar_of_any_dialect_is_no_orphan(
    runner: CliRunner, tmp_path: Path, suffix: str, sidecar: dict[str, Any]
) -> None:
    """A sidecar of any of the five dialects (even Civitai Helper's ``{}``) keeps its model off the list."""
    lib = tmp_path / "lib"
    write_model(lib, "any", sidecar, suffix=suffix)
    write_safetensors(lib / "bare.safetensors", {})
    assert found(runner, lib) == [("model", str(lib / "bare.safetensors"))]


def test_model_beside_only_noise_json_is_an_orphan(runner: CliRunner, tmp_path: Path) -> None:
    """A ``NAME.json`` that is no LoRA metadata gives its model no metadata: the model is an orphan."""
    lib = tmp_path / "lib"
    write_model(lib, "unet", {"_class_name": "UNet2DConditionModel", "act_fn": "silu"})
    assert found(runner, lib) == [("model", str(lib / "unet.safetensors"))]


class _Tripwire:
    """Unpickling this creates a marker file: proof that somebody loaded the pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_pt_orphan_is_listed_without_being_opened(runner: CliRunner, tmp_path: Path) -> None:
    """A ``.pt`` orphan is listed by name and size only; the pickle inside is never loaded."""
    lib = tmp_path / "lib"
    lib.mkdir()
    marker = tmp_path / "unpickled"
    (lib / "old-embedding.pt").write_bytes(pickle.dumps(_Tripwire(marker)))
    [orphan] = orphans_json(runner, lib)
    assert (orphan["kind"], orphan["path"], orphan["output_name"]) == ("model", str(lib / "old-embedding.pt"), None)
    assert "never opened" in orphan["detail"]
    assert not marker.exists()


def test_orphans_are_the_same_before_and_after_an_import(runner: CliRunner, lib: Path) -> None:
    """The catalog only caches what the walk would find: an import changes nothing in the answer."""
    before = orphans_json(runner, lib)
    assert run(runner, "import", lib).exit_code == 1
    assert orphans_json(runner, lib) == before


def test_new_sidecar_takes_a_model_off_the_list(runner: CliRunner, lib: Path) -> None:
    """Writing a sidecar beside an orphan model (after an import cached it) removes it from the list."""
    run(runner, "import", lib)
    write_json(lib / "unsorted" / "mystery.civitai.info", civitai_version("Mystery", file_name="mystery.safetensors"))
    assert found(runner, lib) == [("sidecar", str(lib / "unsorted" / "ghost.json"))]


def test_orphans_honours_ignore_patterns(runner: CliRunner, lib: Path) -> None:
    """``--ignore`` leaves matching folders out."""
    assert found(runner, "--ignore", "unsorted/", lib) == []


def test_orphans_of_a_missing_folder_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    """A folder that is not there is a usage error, one line on stderr."""
    result = run(runner, "orphans", tmp_path / "nowhere")
    assert result.exit_code == 2
    assert "no such directory" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def orphans_at(runner: CliRunner, db: Path, library: Path) -> list[dict[str, Any]]:
    """``lora --db DB orphans --json LIBRARY``."""
    result = run(runner, "--db", db, "orphans", "--json", library)
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data


@pytest.fixture
def odd_lib(lib: Path) -> Path:
    """``lib`` plus names that look like the catalog's signature syntax, and a broken sidecar beside its model."""
    write_safetensors(lib / "odd" / "a|s:b:1:2.safetensors", KOHYA)
    write_json(lib / "odd" / "x:1:2|s:y.civitai.info", civitai_version("X", file_name="x.safetensors"))
    write_json(lib / "odd" / "lonely.metadata.json", {"model_name": "Lonely", "file_name": "lonely"})
    write_safetensors(lib / "odd" / "broken.safetensors", {})
    (lib / "odd" / "broken.civitai.info").write_text("{not json")
    return lib


def test_after_an_import_orphans_come_from_the_catalog_and_match_a_full_look(
    runner: CliRunner, odd_lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an unchanged library, unchanged folders are not grouped or read, and the findings are the same."""
    fresh = orphans_at(runner, tmp_path / "empty.db", odd_lib)
    assert run(runner, "--db", tmp_path / "full.db", "import", odd_lib).exit_code == 1  # the broken sidecar

    import lora_manager.services.orphans as orphans_service

    def no_reading(*args: Any) -> Any:
        raise AssertionError(f"read {args[0].key}")

    monkeypatch.setattr(orphans_service, "read_entry", no_reading)
    assert orphans_at(runner, tmp_path / "full.db", odd_lib) == fresh
    assert ("sidecar", str(odd_lib / "odd" / "x:1:2|s:y.civitai.info")) in [(o["kind"], o["path"]) for o in fresh]
    assert ("model", str(odd_lib / "odd" / "a|s:b:1:2.safetensors")) in [(o["kind"], o["path"]) for o in fresh]


def test_orphans_look_again_at_a_folder_that_changed_since_the_import(
    runner: CliRunner, odd_lib: Path, tmp_path: Path
) -> None:
    """A new orphan and a sidecar that found its model are seen, without another import."""
    assert run(runner, "--db", tmp_path / "full.db", "import", odd_lib).exit_code == 1
    write_safetensors(odd_lib / "odd" / "newcomer.safetensors", {})
    write_safetensors(odd_lib / "unsorted" / "ghost.safetensors", {})
    paths = [o["path"] for o in orphans_at(runner, tmp_path / "full.db", odd_lib)]
    assert str(odd_lib / "odd" / "newcomer.safetensors") in paths
    assert str(odd_lib / "unsorted" / "ghost.json") not in paths
    assert paths == [o["path"] for o in orphans_at(runner, tmp_path / "empty.db", odd_lib)]


def test_a_model_file_named_by_another_stems_sidecar_is_no_orphan_once_imported(runner: CliRunner, lib: Path) -> None:
    """Found by fuzzing: a record stands on a sidecar-less model file that a sidecar of another stem names."""
    write_safetensors(lib / "unsorted" / "real-file.safetensors", {})
    write_json(lib / "unsorted" / "named.json", civitai_model("Named", file_name="real-file.safetensors"))
    assert ("model", str(lib / "unsorted" / "real-file.safetensors")) in found(runner, lib)  # no catalog yet
    assert run(runner, "import", str(lib)).exit_code in (0, 1)
    assert ("model", str(lib / "unsorted" / "real-file.safetensors")) not in found(runner, lib)
    assert ("model", str(lib / "unsorted" / "mystery.safetensors")) in found(runner, lib)


@pytest.fixture
def links_out(tmp_path: Path) -> Path:
    """A model whose sidecar is a link out of the library, a model file linked to /dev/zero, and a catalogued
    model whose preview is a link out (in another folder, which stays unchanged after an import)."""
    root = tmp_path / "lib"
    write_safetensors(root / "m.safetensors", KOHYA)
    write_json(tmp_path / "outside" / "s.json", a1111(activation_text="q"))
    (tmp_path / "outside" / "p.png").write_bytes(b"\x89PNG")
    (root / "m.json").symlink_to(tmp_path / "outside" / "s.json")
    (root / "z.safetensors").symlink_to("/dev/zero")
    write_model(root / "good", "g", civitai_model("G", file_name="g.safetensors"))
    (root / "good" / "g.preview.png").symlink_to(tmp_path / "outside" / "p.png")
    return root


def link_lines(lib: Path) -> list[str]:
    return [
        f"{lib / 'good' / 'g.preview.png'}: unsafe_path: link leads out of the library",
        f"{lib / 'm.json'}: unsafe_path: link leads out of the library",
        f"{lib / 'z.safetensors'}: unsafe_path: link leads out of the library",
    ]


def test_orphans_name_file_links_out_of_the_library_and_exit_1(runner: CliRunner, links_out: Path) -> None:
    """As ``scan`` does: the links are named on stderr, the list may be short of them, so exit 1."""
    result = run(runner, "orphans", "--json", links_out)
    assert result.exit_code == 1, result.output
    assert sorted(result.stderr.splitlines()) == link_lines(links_out)
    [model] = json.loads(result.stdout)
    assert (model["kind"], model["path"]) == ("model", str(links_out / "m.safetensors"))
    assert "m.json is a link leading out of the library" in model["detail"]


def test_orphans_from_the_catalog_name_file_links_out_too(
    runner: CliRunner, links_out: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an import, unchanged folders answer from the catalog: the same findings, the same links, exit 1."""
    fresh = run(runner, "--db", catalog_url, "orphans", "--json", links_out)
    assert run(runner, "--db", catalog_url, "import", links_out).exit_code == 1

    import lora_manager.services.orphans as orphans_service

    def no_reading(*args: Any) -> Any:
        raise AssertionError(f"read {args[0].key}")

    monkeypatch.setattr(orphans_service, "read_entry", no_reading)
    stored = run(runner, "--db", catalog_url, "orphans", "--json", links_out)
    assert stored.exit_code == 1, stored.output
    assert sorted(stored.stderr.splitlines()) == link_lines(links_out)
    assert json.loads(stored.stdout) == json.loads(fresh.stdout)
    (links_out / "good" / "g.preview.png").unlink()
    (links_out / "good" / "g.preview.png").write_bytes(b"\x89PNG")
    monkeypatch.undo()
    again = run(runner, "--db", catalog_url, "orphans", links_out)
    assert sorted(again.stderr.splitlines()) == link_lines(links_out)[1:]

"""`lora show`: one record in full; unknown names exit 2 with suggestions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_model, write_model

NAME = "Celestial Anime Portraits"


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def shown(runner: CliRunner, *args: Any) -> dict[str, Any]:
    result = run(runner, "show", "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def version_file(folder: Path, version: str, published: str) -> None:
    """One version of the design's model: each model file has a JSON listing both versions."""
    data = civitai_model(
        NAME,
        version="v1.0",
        file_name="celestial-v1.0.safetensors",
        extra_versions=["v1.1"],
        tags=["anime", "portrait"],
        trained_words=["celestial portrait"],
    )
    data["modelVersions"][1]["files"][0]["name"] = "celestial-v1.1.safetensors"
    for v in data["modelVersions"]:
        v["publishedAt"] = published if v["name"] == version else "2020-01-01T00:00:00Z"
    write_model(folder, f"celestial-{version}", data)


@pytest.fixture
def lib(runner: CliRunner, tmp_path: Path) -> Path:
    """Two versions of the design's model (v1.1 the newer) and one unrelated model."""
    root = tmp_path / "lib"
    version_file(root, "v1.0", "2024-01-10T00:00:00Z")
    version_file(root, "v1.1", "2024-05-01T12:00:00Z")
    write_model(root, "mecha", civitai_model("Mecha Armor", file_name="mecha.safetensors"))
    result = run(runner, "import", root)
    assert result.exit_code == 0, result.output
    return root


def test_show_defaults_to_the_newest_version_and_names_the_others(runner: CliRunner, lib: Path) -> None:
    """Without ``--version`` the most recently published version is shown, with the other versions listed."""
    record = shown(runner, NAME)
    assert (record["name"], record["version"], record["other_versions"]) == (NAME, "v1.1", ["v1.0"])
    assert record["file_path"] == str(lib / "celestial-v1.1.safetensors")


def test_show_version_selects_that_version(runner: CliRunner, lib: Path) -> None:
    """``--version`` shows exactly that version."""
    record = shown(runner, NAME, "--version", "v1.0")
    assert (record["version"], record["file_path"]) == ("v1.0", str(lib / "celestial-v1.0.safetensors"))


def test_show_matches_a_name_differing_only_in_case(runner: CliRunner, lib: Path) -> None:
    """The name may be typed in any case."""
    assert shown(runner, NAME.upper())["name"] == NAME


def test_show_matches_a_name_in_another_case_beyond_ascii(runner: CliRunner, lib: Path) -> None:
    """SQLite folds ASCII letters only: 'ŁORA' and 'łora', 'STRASSE' and 'straße' are the same name to a user."""
    write_model(lib, "lora", civitai_model("Ünïcødé Łora Straße", file_name="lora.safetensors"))
    assert run(runner, "import", lib).exit_code == 0
    for typed in ("ünïcødé łora straße", "ÜNÏCØDÉ ŁORA STRASSE"):
        assert shown(runner, typed)["name"] == "Ünïcødé Łora Straße"
    assert run(runner, "set", "ünïcødé łora straße", "--weight", "0.5").exit_code == 0
    assert shown(runner, "Ünïcødé Łora Straße")["weight"] == 0.5


def test_show_json_is_the_full_record(runner: CliRunner, lib: Path) -> None:
    """``--json`` holds every column, the sidecars that fed it and the header metadata."""
    record = shown(runner, NAME)
    assert {"tags", "trained_words", "author_username", "primary_file_sha256", "weight", "activation_text"} <= set(
        record
    )
    assert record["sidecars"][0]["path"] == str(lib / "celestial-v1.1.json")
    assert record["header_metadata"]["ss_output_name"] == "celestial-v1.1"


def test_show_in_a_pipe_prints_one_key_and_value_per_line(runner: CliRunner, lib: Path) -> None:
    """Not on a terminal, each field is a ``key<TAB>value`` line; lists are comma-joined."""
    result = run(runner, "show", NAME)
    assert result.exit_code == 0, result.output
    fields = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    assert (fields["name"], fields["version"], fields["tags"]) == (NAME, "v1.1", "anime, portrait")
    assert fields["trained_words"] == "celestial portrait"
    assert fields["other_versions"] == "v1.0"


@pytest.mark.parametrize(
    ("args", "suggested"),
    [
        (["Celestial"], f"did you mean '{NAME}'?"),
        (["Celestial Anime Portrait"], f"did you mean '{NAME}'?"),
        (["Mecha Amror"], "did you mean 'Mecha Armor'?"),
    ],
    ids=["prefix", "near-miss", "typo"],
)
def test_unknown_name_exits_2_and_suggests_close_names(
    runner: CliRunner, lib: Path, args: list[str], suggested: str
) -> None:
    """An unknown name is one line on stderr, exit 2, naming the close matches."""
    result = run(runner, "show", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"lora: error: no LoRA named {args[0]!r}")
    assert suggested in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_unknown_name_without_anything_close_has_no_suggestion(runner: CliRunner, lib: Path) -> None:
    """With nothing similar in the catalog, the message says so without a "did you mean"."""
    result = run(runner, "show", "Zzyzx")
    assert result.exit_code == 2
    assert result.stderr == "lora: error: no LoRA named 'Zzyzx' in the catalog\n"


def test_unknown_version_exits_2_and_lists_the_versions_there_are(runner: CliRunner, lib: Path) -> None:
    """A known name with an unknown ``--version`` exits 2, names both, and says which versions exist."""
    result = run(runner, "show", NAME.lower(), "--version", "v9")
    assert result.exit_code == 2
    assert result.stderr == f"lora: error: no version 'v9' of {NAME!r} in the catalog; its versions: v1.0, v1.1\n"

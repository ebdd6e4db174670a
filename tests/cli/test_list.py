"""`lora list`: filters, sorting, JSON records keyed by the design's columns, plain lines in a pipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_model, write_model

DESIGN_COLUMNS = {
    "name",
    "version",
    "description",
    "author_username",
    "published_at",
    "tags",
    "trained_words",
    "triggers",
    "file_path",
    "weight",
    "active",
    "ordinal",
    "archetype",
    "primary_file_name",
    "primary_file_size_kb",
    "primary_file_sha256",
    "primary_file_download_url",
    "supports_generation",
    "sd_version",
    "nsfw_level",
    "activation_text",
    "stats",
    "extra",
    "json_file_path",
    "json_file_mtime",
    "json_file_size",
    "last_ingested_at",
    "created_at",
    "updated_at",
    "base_model",
}


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def listed(runner: CliRunner, *args: Any) -> list[str]:
    """The names ``lora list --json ARGS`` prints, in order."""
    result = run(runner, "list", "--json", *args)
    assert result.exit_code == 0, result.output
    return [r["name"] for r in json.loads(result.stdout)]


def model(folder: Path, stem: str, name: str, published: str | None, **fields: Any) -> None:
    data = civitai_model(name, file_name=f"{stem}.safetensors", **fields)
    if published is None:
        del data["modelVersions"][0]["publishedAt"]
    else:
        data["modelVersions"][0]["publishedAt"] = published
    write_model(folder, stem, data)


@pytest.fixture
def lib(runner: CliRunner, tmp_path: Path) -> Path:
    """Four records with different tags, base models, authors and dates (one without a date)."""
    root = tmp_path / "lib"
    model(
        root,
        "celestial",
        "Celestial Anime Portraits",
        "2024-05-01T12:00:00Z",
        version="v1.1",
        tags=["anime", "portrait", "fantasy", "celestial", "watercolor"],
        trained_words=["celestial portrait", "shimmering eyes"],
        base_model="SD 1.5",
        sha256="ab" * 32,
    )
    model(
        root,
        "mecha",
        "Mecha Armor",
        "2023-03-01T00:00:00Z",
        version="v2",
        tags=["Mecha", "sci-fi", "armor"],
        author="ironsmith",
        base_model="SDXL 1.0",
    )
    model(
        root,
        "ink",
        "Ink Wash Landscapes",
        "2024-09-10T08:30:00Z",
        tags=["landscape", "ink"],
        author="Brushwork",
        base_model="Pony",
        trained_words=["sumi-e"],
    )
    model(root, "eyes", "Anime Eyes", None, tags=["anime", "eyes"], base_model="SD 1.5")
    result = run(runner, "import", root)
    assert result.exit_code == 0, result.output
    return root


def test_list_prints_every_record_as_tab_separated_lines_in_a_pipe(runner: CliRunner, lib: Path) -> None:
    """Not on a terminal, each record is one line: name, version, base model, author, tags, weight, path."""
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        "Anime Eyes",
        "Celestial Anime Portraits",
        "Ink Wash Landscapes",
        "Mecha Armor",
    ]
    assert lines[1].split("\t") == [
        "Celestial Anime Portraits",
        "v1.1",
        "SD 1.5",
        "stargazer",
        "anime, portrait, fantasy, celestial, watercolor",
        "1.0",
        str(lib / "celestial.safetensors"),
    ]
    assert "─" not in result.stdout  # no table drawing in a pipe


def test_json_records_carry_the_design_column_names(runner: CliRunner, lib: Path) -> None:
    """``--json`` prints full records whose keys include the design's ``adapter`` columns and base_model."""
    result = run(runner, "list", "--json", "--search", "celestial")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert set(record) >= DESIGN_COLUMNS
    assert (record["tags"], record["trained_words"]) == (
        ["anime", "portrait", "fantasy", "celestial", "watercolor"],
        ["celestial portrait", "shimmering eyes"],
    )
    assert (record["author_username"], record["base_model"], record["primary_file_sha256"]) == (
        "stargazer",
        "SD 1.5",
        "ab" * 32,
    )
    assert record["file_path"] == str(lib / "celestial.safetensors")


def test_tags_are_anded_and_ignore_case(runner: CliRunner, lib: Path) -> None:
    """Each ``--tag`` narrows the list further; tags match whatever their case."""
    assert listed(runner, "--tag", "ANIME") == ["Anime Eyes", "Celestial Anime Portraits"]
    assert listed(runner, "--tag", "anime", "--tag", "Portrait") == ["Celestial Anime Portraits"]
    assert listed(runner, "--tag", "mecha") == ["Mecha Armor"]
    assert listed(runner, "--tag", "anime", "--tag", "mecha") == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--base-model", "sd 1.5"], ["Anime Eyes", "Celestial Anime Portraits"]),
        (["--base-model", "Pony"], ["Ink Wash Landscapes"]),
        (["--base-model", "SDXL"], []),
        (["--author", "IRONSMITH"], ["Mecha Armor"]),
        (["--author", "brushwork"], ["Ink Wash Landscapes"]),
        (
            ["--tag", "anime", "--base-model", "SD 1.5", "--author", "stargazer"],
            ["Anime Eyes", "Celestial Anime Portraits"],
        ),
    ],
    ids=["base-model", "base-model-pony", "base-model-exact", "author", "author-case", "combined"],
)
def test_base_model_and_author_filters_match_whole_values_in_any_case(
    runner: CliRunner, lib: Path, args: list[str], expected: list[str]
) -> None:
    """``--base-model`` and ``--author`` compare whole values, ignoring case."""
    assert listed(runner, *args) == expected


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("WASH", ["Ink Wash Landscapes"]),
        ("shimmering", ["Celestial Anime Portraits"]),
        ("sci-fi", ["Mecha Armor"]),
        ("ironsmith", ["Mecha Armor"]),
        ("eyes.safetensors", ["Anime Eyes"]),
        ("%", []),
        ("_", []),
    ],
    ids=["name", "trained-word", "tag", "author", "file-name", "percent-is-literal", "underscore-is-literal"],
)
def test_search_matches_text_in_any_field(runner: CliRunner, lib: Path, needle: str, expected: list[str]) -> None:
    """``--search`` finds text in the name, tags, trigger words, author or file name; wildcards are literal."""
    assert listed(runner, "--search", needle) == expected


def test_sort_descending_by_published_at_puts_unknown_dates_last(runner: CliRunner, lib: Path) -> None:
    """``--sort -published_at`` lists the newest first and records without a date at the end."""
    assert listed(runner, "--sort", "-published_at") == [
        "Ink Wash Landscapes",
        "Celestial Anime Portraits",
        "Mecha Armor",
        "Anime Eyes",
    ]
    assert listed(runner, "--sort", "published_at")[:3] == [
        "Mecha Armor",
        "Celestial Anime Portraits",
        "Ink Wash Landscapes",
    ]


def test_limit_caps_the_number_of_records(runner: CliRunner, lib: Path) -> None:
    """``--limit N`` prints the first N records of the sort order."""
    assert listed(runner, "--sort", "-published_at", "--limit", "2") == [
        "Ink Wash Landscapes",
        "Celestial Anime Portraits",
    ]
    result = run(runner, "list", "--limit", "1")
    assert result.stdout.splitlines()[0].startswith("Anime Eyes\t")
    assert len(result.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sort", "bogus"], "choose one of"),
        (["--sort=--name"], "choose one of"),
        (["--sort=---name"], "choose one of"),
        (["--limit", "0"], "Invalid value"),
    ],
    ids=["unknown-sort", "double-dash-sort", "triple-dash-sort", "zero-limit"],
)
def test_bad_list_options_exit_2(runner: CliRunner, lib: Path, args: list[str], message: str) -> None:
    """An unknown sort field or a limit below 1 is a usage error."""
    result = run(runner, "list", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert result.stdout == ""


def test_list_on_an_empty_catalog_prints_nothing(runner: CliRunner) -> None:
    """A new catalog lists no records: nothing in a pipe, ``[]`` as JSON."""
    plain = run(runner, "list")
    assert (plain.exit_code, plain.stdout) == (0, "")
    assert json.loads(run(runner, "list", "--json").stdout) == []


def test_missing_filter_lists_only_records_whose_files_are_gone(runner: CliRunner, lib: Path) -> None:
    """``--missing`` lists the records marked missing, and plain ``list`` still shows them."""
    for name in ("ink.json", "ink.safetensors"):
        (lib / name).unlink()
    assert run(runner, "import", lib).exit_code == 0
    assert listed(runner, "--missing") == ["Ink Wash Landscapes"]
    assert len(listed(runner)) == 4


def test_a_search_text_too_long_for_a_pattern_is_a_usage_error(runner: CliRunner, lib: Path) -> None:
    """SQLite refuses a LIKE pattern past 50,000 bytes: that is the argument's fault, not the database's."""
    result = runner.invoke(app, ["list", "--search", "x" * 60_000])
    assert result.exit_code == 2 and "--search: at most 10,000 characters" in result.stderr
    assert runner.invoke(app, ["list", "--search", "x" * 10_000]).exit_code == 0


@pytest.mark.parametrize(
    "items",
    [[], [{}], [{"a": 1}], [{"a": "line\nbreak", "b": [1, {"c": None}], "d": "ünïcode"}, {"e": []}, 3, "x"]],
    ids=["empty", "empty-object", "one", "several"],
)
def test_a_streamed_json_array_prints_what_the_whole_array_would(
    items: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``list --json`` writes its records as they come; scripts must not see a difference."""
    from lora_manager.cli import output

    output.print_json_array(iter(items))
    assert capsys.readouterr().out == json.dumps(items, ensure_ascii=False, indent=2) + "\n"


def test_list_json_streams_every_record_as_the_catalog_holds_them(runner: CliRunner, lib: Path, db_path: Path) -> None:
    """The streamed array equals every record, in order, as the library call returns them."""
    from lora_manager.db.engine import create_catalog_engine, database_url
    from lora_manager.services.catalog import ListQuery, iter_adapters, list_adapters

    printed = json.loads(runner.invoke(app, ["list", "--json"]).stdout)
    engine = create_catalog_engine(database_url(str(db_path)), create=False)
    try:
        assert printed == list_adapters(engine, ListQuery()) and len(printed) == 4
        narrow = list(iter_adapters(engine, ListQuery(), fields=("name", "tags")))
        assert narrow == [{"name": r["name"], "tags": r["tags"]} for r in printed]
    finally:
        engine.dispose()


def test_base_model_filter_finds_base_models_other_tools_spelled_their_own_way(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Lora-Manager's "sd_v1" and "SD1.5" are stored as "SD 1.5", so ``--base-model "SD 1.5"`` finds them."""
    root = tmp_path / "lib"
    for stem, base_model in (("raw", "sd_v1"), ("short", "SD1.5"), ("xl", "SDXL")):
        write_model(root, stem, {"model_name": stem, "file_name": stem, "base_model": base_model}, ".metadata.json")
    assert run(runner, "import", root).exit_code == 0
    assert listed(runner, "--base-model", "SD 1.5", "--sort", "name") == ["raw", "short"]
    assert listed(runner, "--base-model", "SDXL 1.0") == ["xl"]

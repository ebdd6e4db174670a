"""Values a sidecar or a file may hold that no catalog stores as they are: each costs that value, never the run.

Found by fuzzing: an integer past 64 bits (after Python's decoder read a NaN), nesting deeper
than the serialiser goes, a time with no UTC equivalent, a NUL character (PostgreSQL refuses
it in text), a file dated after 2262. Each ran on both databases; before, each stopped the
whole import with "unexpected ..." or "database error".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db.jsontext import MAX_DEPTH, dumps, storable
from lora_manager.services import reading
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import civitai_model, write_model, write_safetensors


def _library(tmp_path: Path, bad_sidecar_text: str, metadata: dict[str, str] | None = None) -> Path:
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    write_safetensors(lib / "bad.safetensors", metadata or {})
    (lib / "bad.json").write_text(bad_sidecar_text, encoding="utf-8")
    return lib


def _import_twice(engine: Engine, lib: Path) -> dict[str, dict[str, object]]:
    first = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (first.counts["new"], first.counts["failed"]) == (2, 0), first.problems
    again = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (again.counts["unchanged"], again.counts["updated"]) == (2, 0)
    return {str(r["name"]): r for r in list_adapters(engine, ListQuery())}


def _sidecar(**extra: object) -> str:
    body = json.dumps(civitai_model("Bad", file_name="bad.safetensors"))
    return body[:-1] + "".join(f', "{k}": {v}' for k, v in extra.items()) + "}"


def test_an_integer_past_64_bits_is_kept_as_its_digits(engine: Engine, tmp_path: Path) -> None:
    """A NaN makes orjson refuse the file; Python's decoder then gives a 30-digit integer."""
    lib = _library(tmp_path, _sidecar(x="NaN", big="123456789012345678901234567890"))
    rows = _import_twice(engine, lib)
    assert sorted(rows) == ["Bad", "Good"]
    assert "123456789012345678901234567890" in json.dumps(rows["Bad"]["extra"])


def test_nesting_deeper_than_the_serialiser_goes_is_cut_off(engine: Engine, tmp_path: Path) -> None:
    lib = _library(tmp_path, _sidecar(deep="[" * 300 + "]" * 300))
    assert sorted(_import_twice(engine, lib)) == ["Bad", "Good"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_time_with_no_utc_equivalent_is_left_out(engine: Engine, tmp_path: Path, when: str) -> None:
    doc = civitai_model("Bad", file_name="bad.safetensors")
    doc["modelVersions"][0]["publishedAt"] = when
    lib = _library(tmp_path, json.dumps(doc))
    rows = _import_twice(engine, lib)
    assert rows["Bad"]["published_at"] is None


def test_nul_characters_in_kept_json_and_in_header_metadata_are_dropped(engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL refuses U+0000 in text and JSON: it is dropped on both databases alike."""
    lib = _library(tmp_path, _sidecar(note='"a\\u0000b"'), metadata={"ss_x\x00y": "v\x00w"})
    rows = _import_twice(engine, lib)
    assert "\x00" not in json.dumps(rows["Bad"], default=str).replace("\\u0000", "\x00")
    assert "ab" in json.dumps(rows["Bad"]["extra"])


def test_a_file_dated_after_2262_is_imported_and_hashed_and_then_unchanged(
    engine: Engine, catalog_url: str, tmp_path: Path
) -> None:
    """Its mtime in nanoseconds is past 64 bits: the walk, the fingerprint, the rows and ``lora hash`` all cope."""
    lib = _library(tmp_path, json.dumps(civitai_model("Bad", file_name="bad.safetensors")))
    late = 10_413_792_000 * 10**9  # 2300-01-01
    for name in ("bad.json", "bad.safetensors"):
        os.utime(lib / name, ns=(late, late))
    if os.stat(lib / "bad.json").st_mtime_ns != late:
        pytest.skip("this file system cannot hold a time after 2262")
    rows = _import_twice(engine, lib)
    assert sorted(rows) == ["Bad", "Good"]
    for _ in range(2):  # hashed once, then current
        result = CliRunner().invoke(app, ["--db", catalog_url, "hash", "--json"])
        assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hashes"] == []


def test_storable_makes_what_orjson_refuses_writable_and_leaves_the_rest_as_it_is() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(MAX_DEPTH + 10):
        node.append([])
        node = node[0]  # type: ignore[assignment]
    value = {"big": 2**70, "small": -(2**70), "nan": float("nan"), "nul\x00key": "a\x00b", "deep": deep, "ok": [1, "x"]}
    text = dumps(value)
    decoded = json.loads(text)
    assert decoded["big"] == str(2**70) and decoded["small"] == str(-(2**70)) and decoded["nan"] is None
    assert decoded["nulkey"] == "ab" and decoded["ok"] == [1, "x"]
    assert text.count("[") == MAX_DEPTH  # "deep" is at depth 1: cut where the limit is reached
    plain = {"name": "Café ✓", "n": 2**63 - 1, "f": 1.5, "l": [None, True]}
    assert storable(plain) == plain and dumps(plain) == json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def test_an_unforeseen_error_while_reading_costs_that_entry_alone(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug meeting a file nobody imagined: the entry fails, named, and the others are imported."""
    lib = _library(tmp_path, json.dumps(civitai_model("Bad", file_name="bad.safetensors")))
    original = reading.merged_fields

    def merged_fields(*args: object, **kwargs: object) -> object:
        if any(getattr(p, "name", None) == "Bad" for p in args[0]):  # type: ignore[attr-defined]
            raise RuntimeError("a case nobody foresaw")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "merged_fields", merged_fields)
    report = run_import(engine, ImportOptions(roots=[str(lib)], workers=1))
    assert (report.counts["new"], report.counts["failed"]) == (1, 1)
    [problem] = report.problems
    assert problem.path.endswith("bad.json") and "RuntimeError: a case nobody foresaw" in problem.message
    assert [r["name"] for r in list_adapters(engine, ListQuery())] == ["Good"]


def test_a_value_the_database_refuses_costs_that_entry_alone(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a value slip past the parsers, the batch is written entry by entry and the refused one fails, named."""
    lib = _library(tmp_path, json.dumps(civitai_model("Bad", file_name="bad.safetensors")))
    for i in range(3):
        write_model(lib, f"more{i}", civitai_model(f"More {i}", file_name=f"more{i}.safetensors"))
    original = reading.fields_row

    def fields_row(fields: dict[str, object]) -> dict[str, object]:
        row = original(fields)
        if row["name"] == "Bad":
            row["civitai_model_id"] = 10**30  # past any integer column
        return row

    monkeypatch.setattr(reading, "fields_row", fields_row)
    report = run_import(engine, ImportOptions(roots=[str(lib)], workers=1))
    assert (report.counts["new"], report.counts["failed"]) == (4, 1)
    [problem] = report.problems
    assert problem.path.endswith("bad.json") and problem.kind == "db_error"
    assert sorted(str(r["name"]) for r in list_adapters(engine, ListQuery())) == ["Good", "More 0", "More 1", "More 2"]
    again = run_import(engine, ImportOptions(roots=[str(lib)], workers=1))
    assert (again.counts["new"], again.counts["updated"], again.counts["unchanged"]) == (0, 0, 4)  # stored as failed


@pytest.mark.parametrize("odd", ["--7", "7-", "٣", "+5", "99999999999999999999"])
def test_an_id_that_only_looks_numeric_is_left_out_and_the_record_kept(
    engine: Engine, tmp_path: Path, odd: str
) -> None:
    """Found by fuzzing: ``"id": "--7"`` passed a digits check and then failed int(), losing the whole record."""
    doc = civitai_model("Bad", file_name="bad.safetensors")
    doc["id"] = odd
    doc["modelVersions"][0]["id"] = odd
    lib = _library(tmp_path, json.dumps(doc))
    rows = _import_twice(engine, lib)
    assert rows["Bad"]["civitai_model_id"] is None and rows["Bad"]["civitai_version_id"] is None

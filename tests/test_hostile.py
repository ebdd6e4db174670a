"""Hostile libraries: whatever the files are named or hold, the run goes on and nothing hangs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from lora_manager.cli import app
from tests.builders import civitai_model, write_model, write_safetensors
from tests.waiting import answers_at_once


def _import(runner: CliRunner, lib: Path) -> dict[str, object]:
    result = runner.invoke(app, ["import", str(lib), "--json"])
    assert result.exit_code in (0, 1), result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def _names(runner: CliRunner) -> list[str]:
    return [r["name"] for r in json.loads(runner.invoke(app, ["list", "--json"]).stdout)]


def test_a_file_name_that_is_not_utf8_is_reported_and_the_rest_imported(runner: CliRunner, tmp_path: Path) -> None:
    """Bytes the file system allows but no database stores: that file is skipped, named readably."""
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    bad = os.fsencode(lib) + b"/bad\xff"
    write_safetensors(Path(os.fsdecode(bad + b".safetensors")), {})
    Path(os.fsdecode(bad + b".json")).write_text(json.dumps(civitai_model("Bad")), encoding="utf-8")
    data = _import(runner, lib)
    problems = data["problems"]
    assert isinstance(problems, list)
    assert sorted(p["kind"] for p in problems) == ["unsafe_path", "unsafe_path"]
    assert all("\ufffd" in p["path"] and "UTF-8" in p["message"] for p in problems)
    assert _names(runner) == ["Good"]
    errors = runner.invoke(app, ["errors", "--last-run", "--json"])
    assert errors.exit_code == 0, errors.output
    assert len(json.loads(errors.stdout)["failures"]) == 2


def test_lone_surrogate_escapes_in_json_are_stored_as_replacement_characters(runner: CliRunner, tmp_path: Path) -> None:
    """``"\\ud800"`` is valid to Python's decoder but storable nowhere: it becomes U+FFFD."""
    lib = tmp_path / "lib"
    write_model(lib, "odd", sidecar=None)
    raw = '{"name": "Odd \\ud800", "tags": ["\\udfff"], "modelVersions": [{"name": "v1", "\\ud800k": NaN}]}'
    (lib / "odd.json").write_text(raw, encoding="utf-8")
    data = _import(runner, lib)
    assert data["new"] == 1 and data["failed"] == 0
    assert _names(runner) == ["Odd \ufffd"]


def test_a_fifo_posing_as_a_sidecar_is_not_opened(runner: CliRunner, tmp_path: Path) -> None:
    """Opening a FIFO would block forever: only regular files are read."""
    lib = tmp_path / "lib"
    write_model(lib, "m", civitai_model("M", file_name="m.safetensors"))
    os.mkfifo(lib / "m.civitai.info")
    os.mkfifo(lib / "x.safetensors")
    data = _import(runner, lib)
    assert data["new"] == 1
    assert _names(runner) == ["M"]


def test_a_link_that_cannot_be_followed_is_reported_with_the_reason(runner: CliRunner, tmp_path: Path) -> None:
    """A link to itself or to nothing: "cannot stat the file" says why (it said nothing more)."""
    lib = tmp_path / "lib"
    write_model(lib, "m", civitai_model("M", file_name="m.safetensors"))
    (lib / "loop.json").symlink_to("loop.json")
    (lib / "gone.json").symlink_to("nothing-here.json")
    result = runner.invoke(app, ["import", str(lib)])
    assert result.exit_code == 1, result.output
    assert f"{lib / 'loop.json'}: unreadable: cannot stat the file: Too many levels of symbolic links" in result.stderr
    assert f"{lib / 'gone.json'}: unreadable: cannot stat the file: No such file or directory" in result.stderr


def test_lora_errors_keeps_listing_walk_problems_after_a_quiet_rerun(runner: CliRunner, tmp_path: Path) -> None:
    """A folder link out of the library belongs to no entry; `lora errors` still lists it."""
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    (tmp_path / "elsewhere").mkdir()
    (lib / "linked").symlink_to(tmp_path / "elsewhere")
    _import(runner, lib)
    _import(runner, lib)
    listed = json.loads(runner.invoke(app, ["errors", "--json"]).stdout)
    assert [(p["path"], p["category"]) for p in listed] == [(str(lib / "linked"), "unsafe_path")]


def test_an_invalid_ignore_pattern_is_a_usage_error_naming_it(runner: CliRunner, tmp_path: Path) -> None:
    """A pattern pathspec cannot compile exits 2 with one line, not an "unexpected error"."""
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    result = runner.invoke(app, ["import", str(lib), "--ignore", "a/[z-a]"])
    assert result.exit_code == 2
    assert "ignore pattern" in result.stderr and "unexpected" not in result.stderr
    (lib / ".loraignore").write_text("b/[z-a]\n", encoding="utf-8")
    again = runner.invoke(app, ["import", str(lib)])
    assert again.exit_code == 2 and ".loraignore" in again.stderr
    assert json.loads(runner.invoke(app, ["list", "--json"]).stdout) == []


def test_files_swapped_for_fifos_after_the_walk_are_reported_not_waited_on(tmp_path: Path) -> None:
    """Between the walk and the read a file can become a FIFO: reading and hashing refuse it at once."""
    import pytest

    from lora_manager.discovery import walk
    from lora_manager.paths import resolve_root
    from lora_manager.services.file_hashes import hash_file
    from lora_manager.services.reading import EntryResult, read_entry

    lib = tmp_path / "lib"
    write_model(lib, "m", civitai_model("M", file_name="m.safetensors"))
    write_model(lib, "n", civitai_model("N", file_name="n.safetensors"))
    root = resolve_root(lib)
    m, n = walk(root).entries
    for name in ("m.json", "n.safetensors"):
        (lib / name).unlink()
        os.mkfifo(lib / name)
    results = answers_at_once(lambda: [read_entry(e, root) for e in (m, n)], "reading")
    assert isinstance(results, list)
    by_key: dict[str, EntryResult] = {r.key: r for r in results}
    assert [(p.kind, p.message) for p in by_key[m.key].problems] == [("unreadable", "cannot read: not a regular file")]
    assert by_key[n.key].status == "ok"  # its metadata is read; the model's header is the problem
    assert [p.kind for p in by_key[n.key].problems] == ["unreadable"]
    with pytest.raises(OSError, match="not a regular file"):
        hash_file(str(lib / "n.safetensors"))


def _write_header(path: Path, raw: bytes) -> None:
    import struct

    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))


def test_one_hostile_header_costs_its_file_alone_in_orphans_import_and_hash(runner: CliRunner, tmp_path: Path) -> None:
    """A tag count past a float's range and metadata nested 1,000 deep once ended these commands (exit 2)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    frequency = '{"a": {"x": 0.5}, "b": {"x": 1' + "0" * 400 + "}}"
    _write_header(lib / "overflow.safetensors", json.dumps({"__metadata__": {"ss_tag_frequency": frequency}}).encode())
    _write_header(lib / "deep.safetensors", b'{"__metadata__": {"x": ' + b"[" * 1000 + b"]" * 1000 + b"}}")
    write_model(lib, "plain", None)
    write_model(lib, "described", civitai_model("Described"))
    _write_header(lib / "described.safetensors", b'{"__metadata__": {"x": ' + b"[" * 1000 + b"]" * 1000 + b"}}")

    orphans = runner.invoke(app, ["orphans", str(lib), "--json"])
    assert orphans.exit_code == 0, orphans.output
    listed = {Path(o["path"]).name: o for o in json.loads(orphans.stdout)}
    assert set(listed) == {"overflow.safetensors", "deep.safetensors", "plain.safetensors"}
    assert listed["overflow.safetensors"]["tags"] == ["x"]

    data = _import(runner, lib)
    assert data["failed"] == 0 and _names(runner) == ["Described"]
    hashed = runner.invoke(app, ["hash", "--json"])
    assert hashed.exit_code == 0, hashed.output
    assert json.loads(hashed.stdout)["hashed"] == 4

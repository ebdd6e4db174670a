"""Links out of the library found where a file is opened: a file swapped for one after the walk is never read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.db import open_catalog
from lora_manager.db.schema import import_run
from lora_manager.discovery import walk
from lora_manager.paths import LeadsOut, open_regular, resolve_root
from lora_manager.services.file_hashes import hash_file
from lora_manager.services.reading import EntryResult, read_entry
from tests.builders import civitai_model, write_json, write_model, write_safetensors
from tests.cli.test_hash import rows
from tests.waiting import answers_at_once

SECRET = "OUTSIDE-SECRET"


def _library(tmp_path: Path) -> tuple[Path, Path]:
    """``lib/`` and, beside it, ``outside/`` holding a secret sidecar and a secret model file."""
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    write_json(outside / "secret.json", civitai_model(SECRET, file_name="m.safetensors"))
    write_safetensors(outside / "secret.safetensors", {"ss_output_name": SECRET, "modelspec.title": SECRET}, 4096)
    return lib, outside


def _swap_for_link(path: Path, target: str) -> None:
    """Replace ``path`` by a link to ``target`` in one rename, as a hostile tool would."""
    tmp = path.with_name(".swap")
    os.symlink(target, tmp)
    os.replace(tmp, path)


def test_open_regular_inside_refuses_links_out_absolute_and_relative(tmp_path: Path) -> None:
    """A link to a file outside ``inside`` raises ``LeadsOut``, whether its target is absolute or relative."""
    lib, outside = _library(tmp_path)
    lib.mkdir()
    os.symlink(outside / "secret.json", lib / "absolute.json")
    os.symlink("../outside/secret.json", lib / "relative.json")
    root = resolve_root(lib)
    for name in ("absolute.json", "relative.json"):
        with pytest.raises(LeadsOut, match="leads out of the library"):
            open_regular(str(lib / name), inside=root)


def test_open_regular_inside_refuses_a_file_below_a_directory_link_out(tmp_path: Path) -> None:
    """The last component need not be the link: a directory swapped for a link out is caught on the descriptor."""
    lib, outside = _library(tmp_path)
    lib.mkdir()
    os.symlink(outside, lib / "sub")
    with pytest.raises(LeadsOut):
        open_regular(str(lib / "sub" / "secret.json"), inside=resolve_root(lib))


def test_open_regular_inside_reads_plain_files_and_links_inside(tmp_path: Path) -> None:
    """A plain file and a link to another file of the library open as before."""
    lib = tmp_path / "lib"
    write_json(lib / "a" / "plain.json", {"x": 1})
    (lib / "b").mkdir()
    os.symlink("../a/plain.json", lib / "b" / "link.json")
    root = resolve_root(lib)
    for path in (lib / "a" / "plain.json", lib / "b" / "link.json"):
        with open_regular(str(path), inside=root) as f:
            assert json.loads(f.read()) == {"x": 1}
    with open_regular(str(lib / "a" / "plain.json"), inside=str(lib / "a" / "plain.json")) as f:
        assert f.read() == b'{"x": 1}'  # ``inside`` may be the file itself: no link allowed at all


def test_open_regular_inside_still_refuses_a_fifo_without_waiting(tmp_path: Path) -> None:
    """The root check does not change the FIFO guarantee: refused at once, never waited on."""
    lib = tmp_path / "lib"
    lib.mkdir()
    os.mkfifo(lib / "pipe.json")
    error = answers_at_once(lambda: open_regular(str(lib / "pipe.json"), inside=resolve_root(lib)), "open_regular")
    assert isinstance(error, OSError)
    assert error.strerror == "not a regular file"


def _read_after_swap(tmp_path: Path, name: str, target: str) -> tuple[Path, EntryResult]:
    """Walk a library of one model ``m``, swap its file ``name`` for a link to ``target``, then read the entry."""
    lib, _ = _library(tmp_path)
    write_model(lib, "m", civitai_model("Inside", file_name="m.safetensors"))
    root = resolve_root(lib)
    (entry,) = walk(root).entries
    _swap_for_link(lib / name, target)
    return lib, read_entry(entry, root)


def test_sidecar_swapped_for_a_link_out_after_the_walk_is_not_read(tmp_path: Path) -> None:
    """Walk, then swap the sidecar for a link to an outside file: the read refuses it and catalogues nothing of it."""
    lib, result = _read_after_swap(tmp_path, "m.json", "../outside/secret.json")
    assert result.status == "failed"
    assert result.row is None
    assert [(p.path, p.kind) for p in result.problems] == [(str(lib / "m.json"), "unsafe_path")]
    assert "leads out of the library" in result.problems[0].message


def test_model_file_swapped_for_a_link_out_after_the_walk_has_no_header_read(tmp_path: Path) -> None:
    """Walk, then swap the model file for a link to an outside safetensors: its header is refused as unsafe_path."""
    lib, result = _read_after_swap(tmp_path, "m.safetensors", "../outside/secret.safetensors")
    assert result.status == "ok" and result.row is not None  # the sidecar is in the library and read
    assert [(p.path, p.kind, p.message) for p in result.problems] == [
        (str(lib / "m.safetensors"), "unsafe_path", "link leads out of the library; not followed")
    ]
    assert SECRET not in repr(result.row)


def test_hash_file_inside_refuses_a_link_out(tmp_path: Path) -> None:
    """Hashing with the root given refuses a file that is really outside it, before reading a byte."""
    lib, _ = _library(tmp_path)
    lib.mkdir()
    os.symlink("../outside/secret.safetensors", lib / "m.safetensors")
    with pytest.raises(LeadsOut):
        hash_file(str(lib / "m.safetensors"), inside=resolve_root(lib))


def test_lora_hash_does_not_hash_a_model_file_replaced_by_a_link_out(runner: CliRunner, tmp_path: Path) -> None:
    """After an import, a model file swapped for a link out is reported as unsafe_path; a link inside is hashed."""
    db = str(tmp_path / "catalog.db")
    lib, outside = _library(tmp_path)
    out_model = write_model(lib, "out", civitai_model("Out", file_name="out.safetensors"))
    in_model = write_model(lib, "in", civitai_model("In", file_name="in.safetensors"))
    write_safetensors(lib / "other" / "target.safetensors", {"ss_output_name": "target"}, 2048)
    assert runner.invoke(app, ["--db", db, "import", str(lib)]).exit_code == 0
    size_before = rows(db)[str(out_model)]["size"]
    _swap_for_link(out_model, "../outside/secret.safetensors")
    _swap_for_link(in_model, "other/target.safetensors")
    result = runner.invoke(app, ["--db", db, "hash", "--json"])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    secret_sha = hashlib.sha256((outside / "secret.safetensors").read_bytes()).hexdigest()
    assert secret_sha not in result.stdout
    assert summary["problems"] == [
        {"path": str(out_model), "kind": "unsafe_path", "message": "link leads out of the library; not followed"}
    ]
    stored = rows(db)
    assert stored[str(out_model)]["sha256"] is None
    assert stored[str(out_model)]["size"] == size_before  # not even the outside file's size is recorded
    target_sha = hashlib.sha256((lib / "other" / "target.safetensors").read_bytes()).hexdigest()
    assert stored[str(in_model)]["sha256"] == target_sha


def test_lora_hash_refuses_a_file_whose_folder_became_a_link_out(runner: CliRunner, tmp_path: Path) -> None:
    """A folder swapped for a link out passes the stat by name; the open proves where it landed and refuses it."""
    db = str(tmp_path / "catalog.db")
    lib, outside = _library(tmp_path)
    model = write_model(lib / "sub", "secret", civitai_model("Sub", file_name="secret.safetensors"))
    assert runner.invoke(app, ["--db", db, "import", str(lib)]).exit_code == 0
    (lib / "sub" / "secret.json").unlink()
    model.unlink()
    (lib / "sub").rmdir()
    os.symlink(outside, lib / "sub")
    result = runner.invoke(app, ["--db", db, "hash"])
    assert result.exit_code == 1, result.output
    assert f"{model}: unsafe_path: link leads out of the library; not followed" in result.stderr
    assert rows(db)[str(model)]["sha256"] is None


def test_lora_hash_without_a_recorded_root_follows_no_link(runner: CliRunner, tmp_path: Path) -> None:
    """A catalog that records no import of the file's folder: any link is refused, plain files are hashed."""
    db = str(tmp_path / "catalog.db")
    lib, _ = _library(tmp_path)
    plain = write_model(lib, "plain", civitai_model("Plain", file_name="plain.safetensors"))
    linked = write_model(lib, "linked", civitai_model("Linked", file_name="linked.safetensors"))
    write_safetensors(lib / "other" / "target.safetensors", {"ss_output_name": "target"}, 2048)
    assert runner.invoke(app, ["--db", db, "import", str(lib)]).exit_code == 0
    engine = open_catalog(db)
    try:
        with engine.begin() as conn:
            conn.execute(delete(import_run))
    finally:
        engine.dispose()
    _swap_for_link(linked, "other/target.safetensors")
    result = runner.invoke(app, ["--db", db, "hash", "--json"])
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["problems"]
    assert [(p["path"], p["kind"]) for p in problems] == [(str(linked), "unsafe_path")]
    assert "no import of a folder holding it is recorded" in problems[0]["message"]
    stored = rows(db)
    assert stored[str(linked)]["sha256"] is None
    assert stored[str(plain)]["sha256"] == hashlib.sha256(plain.read_bytes()).hexdigest()


def test_an_orphan_model_header_swapped_for_a_link_out_is_not_read(tmp_path: Path) -> None:
    """``lora orphans`` reads orphan model headers to say what they are: never through a link out."""
    from lora_manager.services.orphans import _model_orphan

    lib, outside = _library(tmp_path)
    secret = write_safetensors(outside / "secret.safetensors", {"ss_output_name": "SECRET"})
    orphan = write_safetensors(lib / "orphan.safetensors", {"ss_output_name": "mine"})
    root = resolve_root(lib)
    assert _model_orphan(str(orphan), orphan.stat().st_size, root).output_name == "mine"
    _swap_for_link(orphan, str(secret))
    found = _model_orphan(str(orphan), secret.stat().st_size, root)
    assert found.output_name is None and "leads out of the library" in found.detail


def test_verify_and_duplicates_do_not_vouch_for_a_file_swapped_for_a_link_out(
    runner: CliRunner, tmp_path: Path
) -> None:
    """After hashing, two copies are swapped for links to copies outside kept with the same size and mtime:
    no hash in the catalog describes what the links lead to, so neither is verified nor a duplicate."""
    import shutil

    db = str(tmp_path / "catalog.db")
    lib, outside = _library(tmp_path)
    first = write_model(lib / "a", "copy")
    sha = hashlib.sha256(first.read_bytes()).hexdigest()
    write_json(lib / "a" / "copy.json", civitai_model("Copy A", file_name="copy.safetensors", sha256=sha))
    second = lib / "b" / "copy.safetensors"
    second.parent.mkdir(parents=True)
    shutil.copy2(first, second)
    write_json(lib / "b" / "copy.json", civitai_model("Copy B", file_name="copy.safetensors", sha256=sha))
    assert runner.invoke(app, ["--db", db, "import", str(lib)]).exit_code == 0
    assert runner.invoke(app, ["--db", db, "hash"]).exit_code == 0
    before = json.loads(runner.invoke(app, ["--db", db, "duplicates", "--json"]).stdout)
    assert len(before["copies"]) == 1
    assert json.loads(runner.invoke(app, ["--db", db, "verify", "--json"]).stdout)["ok"] == 2
    for i, model in enumerate((first, second)):
        kept = outside / f"kept-{i}.safetensors"
        shutil.copy2(model, kept)  # same bytes, same size, same mtime
        _swap_for_link(model, str(kept))
    after = json.loads(runner.invoke(app, ["--db", db, "duplicates", "--json"]).stdout)
    assert after["copies"] == [] and after["freeable_bytes"] == 0
    verified = json.loads(runner.invoke(app, ["--db", db, "verify", "--json"]).stdout)
    assert verified["ok"] == 0
    assert sorted(verified["unverified_files"]) == sorted([str(first), str(second)])


def test_a_folder_is_inside_by_what_the_kernel_says_it_is_whatever_its_depth(tmp_path: Path) -> None:
    """``directory_is_inside`` answers as ``is_inside`` does (a link out is out, a link within is in, a
    missing folder by its path), for a folder at any depth, without resolving it component by component."""
    from lora_manager.paths import directory_is_inside, is_inside, resolve_root

    lib, outside = tmp_path / "lib", tmp_path / "outside"
    deep = lib.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    outside.mkdir()
    (lib / "out").symlink_to(outside)
    (lib / "in").symlink_to(deep)
    root = resolve_root(lib)
    cases = {deep: True, lib / "out": False, lib / "in": True, lib / "gone": True, outside: False, lib: True}
    for path, inside in cases.items():
        assert directory_is_inside(str(path), root) is inside is is_inside(str(path), root), path

"""The walk: grouping files into entries, signatures, safety, ignore patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_manager.discovery import classify, load_ignore, resolve_root, walk
from lora_manager.errors import LoraError
from tests.builders import write_json, write_safetensors


def test_classify_strips_only_the_last_extension_and_known_sidecar_suffixes() -> None:
    """`foo.v2.safetensors` has stem `foo.v2`; compound sidecar suffixes come off whole."""
    assert classify("foo.v2.safetensors") == ("model", "foo.v2")
    assert classify("foo.v2.civitai.info") == ("sidecar", "foo.v2")
    assert classify("foo.v2.metadata.json") == ("sidecar", "foo.v2")
    assert classify("foo.v2.cm-info.json") == ("sidecar", "foo.v2")
    assert classify("foo.v2.json") == ("sidecar", "foo.v2")
    assert classify("foo.preview.png") == ("preview", "foo")
    assert classify("FOO.SAFETENSORS") == ("model", "FOO")
    assert classify("notes.txt") is None
    assert classify(".json") is None


def test_walk_groups_a_model_with_all_its_sidecars_and_previews(tmp_path: Path) -> None:
    """One entry per stem, holding the model, every sidecar dialect and the preview."""
    write_safetensors(tmp_path / "a" / "foo.v2.safetensors", {})
    for suffix in (".json", ".civitai.info", ".metadata.json", ".cm-info.json"):
        write_json(tmp_path / "a" / f"foo.v2{suffix}", {})
    (tmp_path / "a" / "foo.v2.preview.png").write_bytes(b"png")
    (entry,) = walk(resolve_root(tmp_path)).entries
    assert entry.stem == "foo.v2"
    assert entry.model is not None and entry.model.name == "foo.v2.safetensors"
    assert sorted(f.name for f in entry.sidecars) == sorted(
        f"foo.v2{s}" for s in (".json", ".civitai.info", ".metadata.json", ".cm-info.json")
    )
    assert entry.previews == ["foo.v2.preview.png"]


def test_signature_changes_with_size_or_mtime_and_not_otherwise(tmp_path: Path) -> None:
    """An older mtime (a file restored from backup) is a change too: equality, not `>`."""
    write_safetensors(tmp_path / "m.safetensors", {})
    sidecar = write_json(tmp_path / "m.json", {"name": "x"})
    root = resolve_root(tmp_path)
    before = walk(root).entries[0].signature
    assert walk(root).entries[0].signature == before
    st = sidecar.stat()
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    assert walk(root).entries[0].signature != before


def test_walk_is_sorted_and_survives_a_symlink_loop(tmp_path: Path) -> None:
    """A directory link back to its parent is entered once; entries come out in key order."""
    write_safetensors(tmp_path / "b" / "z.safetensors", {})
    write_safetensors(tmp_path / "a" / "y.safetensors", {})
    (tmp_path / "b" / "loop").symlink_to(tmp_path)
    keys = [e.key for e in walk(resolve_root(tmp_path)).entries]
    assert keys == sorted(keys)
    assert [os.path.basename(k) for k in keys] == ["y", "z"]


def test_links_leading_out_of_the_root_are_not_followed(tmp_path: Path) -> None:
    """A file or folder link to outside the library is reported, never read."""
    outside = tmp_path / "outside"
    write_safetensors(outside / "secret.safetensors", {})
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "linked_dir").symlink_to(outside)
    (lib / "evil.safetensors").symlink_to(outside / "secret.safetensors")
    result = walk(resolve_root(lib))
    assert [p for p, kind, _ in result.problems if kind == "unsafe_path"] == [str(lib / "linked_dir")]
    (entry,) = result.entries
    assert entry.models == [] and entry.unsafe[0][0] == "evil.safetensors"


def test_ignore_patterns_and_loraignore_use_gitignore_syntax(tmp_path: Path) -> None:
    """`--ignore` patterns and the root's .loraignore both exclude files and folders."""
    write_safetensors(tmp_path / "_trash" / "old.safetensors", {})
    write_safetensors(tmp_path / "keep" / "good.safetensors", {})
    write_safetensors(tmp_path / "keep" / "draft.safetensors", {})
    (tmp_path / ".loraignore").write_text("_trash/\n")
    root = resolve_root(tmp_path)
    stems = [e.stem for e in walk(root, load_ignore(root, ["draft.*"])).entries]
    assert stems == ["good"]


def test_resolve_root_refuses_missing_paths_and_files(tmp_path: Path) -> None:
    """A missing root is a usage error that hints at an unmounted drive."""
    with pytest.raises(LoraError, match="mounted"):
        resolve_root(tmp_path / "nope")
    file = tmp_path / "f.json"
    file.write_text("{}")
    with pytest.raises(LoraError, match="not a directory"):
        resolve_root(file)

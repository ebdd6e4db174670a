"""The import plan: which entries are read, and in which order, without holding them all at once."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Engine

from lora_manager.db import open_catalog
from lora_manager.discovery import walk
from lora_manager.paths import resolve_root
from lora_manager.services.import_report import ImportOptions
from lora_manager.services.importer import run_import
from lora_manager.services.planning import RootPlan, plan_root
from tests.builders import civitai_model, write_model

# Folders and stems whose keys interleave: "a/b/x" sorts between "a/a" and "a/c", "a-b" before "a/".
LAYOUT = {
    "a": ["a", "c", "zz"],
    "a/b": ["x", "y"],
    "a/b/c": ["q"],
    "a-b": ["m"],
    "a/bb": ["n"],
    "a/b-": ["o"],
    "z": ["k"],
}


def _library(root: Path, layout: dict[str, list[str]]) -> None:
    for folder, stems in layout.items():
        for stem in stems:
            write_model(root / folder, stem, civitai_model(f"{folder}/{stem}", file_name=f"{stem}.safetensors"))


def _plan(db: Path, root: str) -> RootPlan:
    """The plan of an import of ``root`` into the catalog ``db``, as it stands."""
    engine = open_catalog(str(db))
    try:
        with engine.connect() as conn:
            return plan_root(conn, root, ImportOptions(roots=[root]))
    finally:
        engine.dispose()


def test_new_folders_are_grouped_lazily_yet_read_in_key_order(tmp_path: Path) -> None:
    """A first import groups no new folder up front, and hands out every entry in the order of their keys."""
    _library(tmp_path / "lib", LAYOUT)
    root = resolve_root(tmp_path / "lib")
    plan = _plan(tmp_path / "catalog.db", root)
    assert plan.todo == [] and len(plan.lazy_dirs) == len(LAYOUT)
    assert plan.todo_count == sum(len(stems) for stems in LAYOUT.values())
    expected = sorted(e.key for e in walk(root).entries)
    assert [e.key for e in plan.todo_in_key_order()] == expected
    assert plan.stale_dirs == set()
    assert all(plan.in_todo(key) for key in expected)


def test_known_and_new_folders_merge_in_key_order_and_a_folder_changed_meanwhile_goes_stale(tmp_path: Path) -> None:
    """Entries of changed known folders and of new folders interleave by key; a new folder that changes
    between the walk and its reading is looked at in full next time."""
    lib = tmp_path / "lib"
    _library(lib, {"a": ["a", "c"], "z": ["k"]})
    engine = open_catalog(str(tmp_path / "catalog.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        _library(lib, {"a": ["b"], "a/b": ["x"], "a/d": ["y"], "y": ["j"]})  # known "a" changed, three new folders
        root = resolve_root(lib)
        with engine.connect() as conn:
            plan = plan_root(conn, root, ImportOptions(roots=[root]))
    finally:
        engine.dispose()
    assert [e.key for e in plan.todo] == [str(lib / "a" / "b")]
    assert set(plan.lazy_dirs) == {str(lib / "a" / "b"), str(lib / "a" / "d"), str(lib / "y")}
    _library(lib, {"a/d": ["late"]})  # after the walk, before the reading
    keys = [e.key for e in plan.todo_in_key_order()]
    assert keys == sorted(keys)
    assert keys[:2] == [str(lib / "a" / "b"), str(lib / "a" / "b" / "x")]
    assert plan.stale_dirs == {str(lib / "a" / "d")}


def test_a_new_folder_swapped_for_a_link_out_of_the_library_before_its_turn_gives_nothing(tmp_path: Path) -> None:
    """Grouped late, a new folder is checked again: a link leading out of the library is not followed."""
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    _library(lib, {"a": ["x"], "b": ["y"]})
    _library(outside, {"b": ["secret"]})
    root = resolve_root(lib)
    plan = _plan(tmp_path / "catalog.db", root)
    shutil.rmtree(lib / "b")
    (lib / "b").symlink_to(outside / "b")
    assert [e.key for e in plan.todo_in_key_order()] == [str(lib / "a" / "x")]
    assert plan.stale_dirs == {str(lib / "b")}


def test_force_groups_unchanged_folders_lazily_and_loads_their_stored_state_batch_by_batch(tmp_path: Path) -> None:
    """``--force`` holds no entry nor stored state of an unchanged folder up front (memory stays flat at any
    size); a changed folder is looked at in full as without it; every entry is still read, in key order."""
    lib = tmp_path / "lib"
    _library(lib, LAYOUT)
    engine = open_catalog(str(tmp_path / "catalog.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        _library(lib, {"z": ["new"]})  # a known folder changed
        root = resolve_root(lib)
        with engine.connect() as conn:
            plan = plan_root(conn, root, ImportOptions(roots=[root], force=True))
            unchanged = {str(lib / folder) for folder in LAYOUT if folder != "z"}
            assert [e.key for e in plan.todo] == [str(lib / "z" / "k"), str(lib / "z" / "new")]
            assert set(plan.lazy_dirs) == plan.reread_dirs == unchanged
            assert set(plan.stored) == {str(lib / "z" / "k")}  # the changed folder's, loaded at once
            keys = [e.key for e in plan.todo_in_key_order()]
            assert keys == sorted(e.key for e in walk(root).entries) and all(plan.in_todo(k) for k in keys)
            batch = [str(lib / "a" / "a"), str(lib / "a" / "c"), str(lib / "z" / "new")]
            plan.load_stored(conn, batch)
            assert set(plan.stored) == {str(lib / "z" / "k"), str(lib / "a" / "a"), str(lib / "a" / "c")}
            assert plan.stored[str(lib / "a" / "a")].name == "a/a"
            plan.let_go_stored(batch)
            assert set(plan.stored) == {str(lib / "z" / "k")}
    finally:
        engine.dispose()
    assert plan.stale_dirs == set()


def test_only_a_folder_with_a_file_that_cannot_be_stat_ed_is_looked_at_again_by_a_no_op_import(
    engine: Engine, tmp_path: Path
) -> None:
    """Its problem is found again each run; every other folder stays clean; once the file goes, so does the cost."""
    lib = tmp_path / "lib"
    _library(lib, LAYOUT)
    (lib / "a" / "b" / "loop.json").symlink_to("loop.json")
    root = resolve_root(lib)
    options = ImportOptions(roots=[root])
    for _ in range(2):
        report = run_import(engine, options)
        assert [(p.path, p.kind) for p in report.problems] == [(str(lib / "a" / "b" / "loop.json"), "unreadable")]
        assert (report.counts["updated"], report.counts["failed"]) == (0, 1)
        with engine.connect() as conn:
            plan = plan_root(conn, root, options)
        assert set(plan.fingerprints) == {str(lib / "a" / "b")}  # looked at; every other folder is clean
        assert plan.todo == [] and plan.stale_dirs == {str(lib / "a" / "b")}
    (lib / "a" / "b" / "loop.json").unlink()
    assert run_import(engine, options).problems == []
    with engine.connect() as conn:
        plan = plan_root(conn, root, options)
    assert (plan.fingerprints, plan.stale_dirs, plan.walk_problems) == ({}, set(), [])


def test_a_looping_link_added_to_a_known_folder_is_found_again_by_the_next_import(
    engine: Engine, tmp_path: Path
) -> None:
    """Added later, the link is found by a look at its stem alone; that folder too is looked at again next time."""
    lib = tmp_path / "lib"
    _library(lib, LAYOUT)
    root = resolve_root(lib)
    options = ImportOptions(roots=[root])
    run_import(engine, options)
    (lib / "z" / "loop.json").symlink_to("loop.json")
    with engine.connect() as conn:
        assert plan_root(conn, root, options).fingerprints.keys() == {str(lib / "z")}
    for _ in range(2):
        report = run_import(engine, options)
        assert [(p.path, p.kind) for p in report.problems] == [(str(lib / "z" / "loop.json"), "unreadable")]

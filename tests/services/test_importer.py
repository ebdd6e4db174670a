"""The importer's rules, on real files and real catalogs (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from lora_manager.db.schema import adapter, entry, import_failure, import_run
from lora_manager.services.catalog import ListQuery, list_adapters, set_user_state
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model


def _import(engine: Engine, root: Path, **options: object):  # type: ignore[no-untyped-def]
    return run_import(engine, ImportOptions(roots=[str(root)], **options))  # type: ignore[arg-type]


def _rows(engine: Engine) -> list[dict[str, object]]:
    return list_adapters(engine, ListQuery())


def test_second_import_of_unchanged_tree_writes_nothing_and_opens_nothing(engine: Engine, tmp_path: Path) -> None:
    """Unchanged sidecars are not opened: garbage with the same size and mtime goes unnoticed."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors", tags=["anime"]))
    sidecar = lib / "a.json"
    first = _import(engine, lib)
    assert first.counts["new"] == 1
    before = _rows(engine)
    st = sidecar.stat()
    sidecar.write_bytes(b"x" * st.st_size)
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = _import(engine, lib)
    assert (second.counts["new"], second.counts["updated"], second.counts["unchanged"]) == (0, 0, 1)
    assert second.problems == []
    assert _rows(engine) == before


def test_a_sidecar_restored_with_an_older_mtime_is_re_read(engine: Engine, tmp_path: Path) -> None:
    """Change detection compares for inequality, so a backup restore is noticed."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors", tags=["old"]))
    _import(engine, lib)
    sidecar = write_json(lib / "a.json", civitai_model("Alpha", file_name="a.safetensors", tags=["new"]))
    st = sidecar.stat()
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns - 86_400 * 10**9))
    report = _import(engine, lib)
    assert report.counts["updated"] == 1
    assert _rows(engine)[0]["tags"] == ["new"]


def test_a_record_without_version_upserts_idempotently(engine: Engine, tmp_path: Path) -> None:
    """NULL is distinct in a UNIQUE index, so the key uses version_key; two forced imports keep one row."""
    lib = tmp_path / "lib"
    write_model(lib, "plain", a1111(activation_text="trig", weight=0.8))
    _import(engine, lib)
    _import(engine, lib, force=True)
    rows = _rows(engine)
    assert [(r["name"], r["version"], r["weight"]) for r in rows] == [("plain", None, 0.8)]


def test_user_state_survives_re_import_of_changed_metadata(engine: Engine, tmp_path: Path) -> None:
    """active, ordinal, archetype and a user-set weight are never overwritten by an upsert."""
    lib = tmp_path / "lib"
    write_model(lib, "a", a1111(activation_text="one", weight=0.5))
    write_json(lib / "a.civitai.info", civitai_version("Alpha", file_name="a.safetensors"))
    _import(engine, lib)
    set_user_state(engine, "Alpha", None, {"active": True, "ordinal": 3, "archetype": "hero", "weight": 0.9})
    write_json(lib / "a.json", a1111(activation_text="two", weight=0.6))
    assert _import(engine, lib).counts["updated"] == 1
    (row,) = _rows(engine)
    assert row["activation_text"] == "two"
    assert (row["active"], row["ordinal"], row["archetype"]) == (True, 3, "hero")
    assert (row["weight"], row["weight_source"]) == (0.9, "user")


def test_duplicate_identity_goes_to_the_first_path_and_does_not_flip(engine: Engine, tmp_path: Path) -> None:
    """Two entries claiming one (name, version): the first in path order wins, on every run."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "copy", civitai_model("Same", file_name="copy.safetensors"))
    first = _import(engine, lib)
    assert _rows(engine)[0]["file_path"].endswith("b/copy.safetensors")
    write_model(lib / "a", "orig", civitai_model("Same", file_name="orig.safetensors"))
    second = _import(engine, lib)
    assert first.counts["new"] == 1 and second.counts["updated"] == 1
    assert [r["file_path"].split("lib/")[1] for r in _rows(engine)] == ["a/orig.safetensors"]
    write_json(lib / "b" / "copy.json", civitai_model("Same", file_name="copy.safetensors", tags=["touched"]))
    third = _import(engine, lib)
    assert third.counts["duplicates"] == 1
    assert [r["file_path"].split("lib/")[1] for r in _rows(engine)] == ["a/orig.safetensors"]
    assert _import(engine, lib).counts["unchanged"] == 1


def test_when_the_winner_vanishes_the_duplicate_takes_over(engine: Engine, tmp_path: Path) -> None:
    """A duplicate waiting for an identity is re-read when its holder goes away."""
    lib = tmp_path / "lib"
    write_model(lib / "a", "orig", civitai_model("Same", file_name="orig.safetensors"))
    write_model(lib / "b", "copy", civitai_model("Same", file_name="copy.safetensors"))
    _import(engine, lib)
    for name in ("orig.safetensors", "orig.json"):
        (lib / "a" / name).unlink()
    _import(engine, lib)
    (row,) = _rows(engine)
    assert row["file_path"].endswith("b/copy.safetensors") and row["missing_since"] is None


def test_a_row_let_go_and_taken_over_in_one_batch_is_not_left_missing(engine: Engine, tmp_path: Path) -> None:
    """The holder loses its model file while a new entry later in the same batch claims its identity:
    the row goes to the newcomer and is not marked missing (the marking used to run after the take-over)."""
    lib = tmp_path / "lib"
    write_model(lib / "a", "holder", civitai_model("Same", file_name="holder.safetensors"))
    _import(engine, lib)
    (lib / "a" / "holder.safetensors").unlink()
    write_model(lib / "b", "newcomer", civitai_model("Same", file_name="newcomer.safetensors"))
    second = _import(engine, lib)
    assert second.counts["missing"] == 1
    (row,) = _rows(engine)
    assert row["file_path"].endswith("b/newcomer.safetensors") and row["missing_since"] is None


def test_renamed_identity_leaves_no_old_row_and_keeps_user_state(engine: Engine, tmp_path: Path) -> None:
    """A sidecar edited to name another (name, version) moves its row; nothing lingers."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", version="v1", file_name="a.safetensors"))
    _import(engine, lib)
    set_user_state(engine, "Alpha", "v1", {"active": True})
    write_json(lib / "a.json", civitai_model("Alpha", version="v2", file_name="a.safetensors"))
    _import(engine, lib)
    assert [(r["name"], r["version"], r["active"]) for r in _rows(engine)] == [("Alpha", "v2", True)]


@pytest.mark.parametrize(("batch_size", "preload"), [(1000, False), (2, False), (2, True)])
def test_an_identity_a_row_was_renamed_away_from_is_new_when_claimed_later_in_the_run(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int, preload: bool
) -> None:
    """``a`` moves its row to Beta; ``b``, later in the same run, claims Alpha: a new row, counted new, in
    the same batch, in a later one, and with every owner loaded before the run (as big imports do)."""
    from lora_manager.services import decisions

    if preload:
        monkeypatch.setattr(decisions, "PRELOAD_OWNERS", 0)
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    _import(engine, lib)
    set_user_state(engine, "Alpha", "v1.0", {"active": True})
    write_json(lib / "a.json", civitai_model("Beta", file_name="a.safetensors"))
    write_model(lib / "later", "b", civitai_model("Alpha", file_name="b.safetensors"))
    write_model(lib / "later", "c", civitai_model("Gamma", file_name="c.safetensors"))
    report = _import(engine, lib, batch_size=batch_size)
    assert (report.counts["updated"], report.counts["new"]) == (1, 2)
    rows = [(r["name"], r["primary_file_name"], r["active"]) for r in _rows(engine)]
    assert sorted(rows) == [
        ("Alpha", "b.safetensors", False),
        ("Beta", "a.safetensors", True),
        ("Gamma", "c.safetensors", False),
    ]


@pytest.mark.parametrize("force", [False, True])
def test_a_holder_outside_the_root_demoted_to_duplicate_is_not_counted_unchanged(
    engine: Engine, tmp_path: Path, force: bool
) -> None:
    """Found by fuzzing: A/y, imported alone, takes Shared from B/x (outside the root, later in path order):
    B/x is counted a duplicate, and "unchanged" stays 0 (it went to -1: B/x was never counted unchanged)."""
    lib = tmp_path / "lib"
    write_model(lib / "A", "y", civitai_model("Other", file_name="y.safetensors"))
    write_model(lib / "B", "x", civitai_model("Shared", file_name="x.safetensors"))
    _import(engine, lib)
    write_json(lib / "A" / "y.json", civitai_model("Shared", file_name="y.safetensors"))
    report = _import(engine, lib / "A", force=force)
    counts = report.counts
    assert (counts["updated"], counts["unchanged"], counts["duplicates"]) == (1, 0, 1)


def test_vanished_files_are_marked_missing_then_pruned_on_request(engine: Engine, tmp_path: Path) -> None:
    """Rows of deleted entries get missing_since; only --prune deletes them; a return clears the mark."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    write_model(lib, "b", civitai_model("Beta", file_name="b.safetensors"))
    _import(engine, lib)
    saved = (lib / "b.json").read_bytes()
    (lib / "b.json").unlink()
    report = _import(engine, lib)
    assert report.counts["missing"] == 1
    assert [r["name"] for r in list_adapters(engine, ListQuery(missing=True))] == ["Beta"]
    (lib / "b.json").write_bytes(saved)
    _import(engine, lib)
    assert list_adapters(engine, ListQuery(missing=True)) == []
    (lib / "b.json").unlink()
    _import(engine, lib)
    pruned = _import(engine, lib, prune=True)
    assert pruned.counts["pruned"] == 1
    assert [r["name"] for r in _rows(engine)] == ["Alpha"]


def test_prune_refuses_an_empty_root(engine: Engine, tmp_path: Path) -> None:
    """An unmounted NAS looks like an empty folder: it must not wipe the catalog."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    _import(engine, lib)
    for f in lib.iterdir():
        f.unlink()
    from lora_manager.errors import LoraError

    with pytest.raises(LoraError, match="empty"):
        _import(engine, lib, prune=True)
    assert [r["name"] for r in _rows(engine)] == ["Alpha"]
    assert list_adapters(engine, ListQuery(missing=True)) == []


def test_every_run_and_every_failed_file_is_recorded(engine: Engine, tmp_path: Path) -> None:
    """import_run holds start, end, counts; import_failure the file, category and message."""
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    (lib / "broken.json").write_text("{not json")
    write_json(lib / "lonely.civitai.info", civitai_version("Lonely", file_name="lonely.safetensors"))
    report = _import(engine, lib)
    assert report.failed
    with engine.connect() as conn:
        run = conn.execute(select(import_run)).one()
        failures = conn.execute(select(import_failure.c.path, import_failure.c.category)).all()
    assert run.status == "completed" and run.finished_at is not None and run.counts["new"] == 1
    assert sorted((Path(p).name, c) for p, c in failures) == [
        ("broken.json", "invalid_json"),
        ("lonely.civitai.info", "model_missing"),
    ]
    with engine.connect() as conn:
        assert conn.execute(select(adapter.c.name)).scalars().all() == ["Good"]


def test_a_broken_second_sidecar_costs_only_that_file(engine: Engine, tmp_path: Path) -> None:
    """One bad sidecar of a model is reported; the record still comes from the good one."""
    lib = tmp_path / "lib"
    write_model(lib, "a", sidecar=None)
    write_json(lib / "a.civitai.info", civitai_version("Alpha", file_name="a.safetensors"))
    (lib / "a.json").write_text('{"activation text": ')
    report = _import(engine, lib)
    assert report.counts["new"] == 1 and [p.kind for p in report.problems] == ["invalid_json"]
    assert [r["name"] for r in _rows(engine)] == ["Alpha"]


def test_dry_run_writes_nothing_but_reports_what_would_happen(engine: Engine, tmp_path: Path) -> None:
    """--dry-run is the same plan without the writes (no rows, no run record)."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    report = _import(engine, lib, dry_run=True)
    assert report.counts["new"] == 1 and [o.action for o in report.outcomes] == ["new"]
    assert _rows(engine) == []
    with engine.connect() as conn:
        assert conn.execute(select(import_run)).all() == []


def test_editing_adding_or_deleting_one_sidecar_changes_exactly_that_record(engine: Engine, tmp_path: Path) -> None:
    """In a folder of many models, each change to one sidecar re-reads that model alone."""
    lib = tmp_path / "lib"
    for i in range(6):
        write_model(lib, f"m{i}", civitai_model(f"Model {i}", file_name=f"m{i}.safetensors", tags=["a"]))
    _import(engine, lib)
    before = {r["name"]: r for r in _rows(engine)}

    def changed() -> set[str]:
        after = {r["name"]: r for r in _rows(engine)}
        return {n for n in after if after[n] != before.get(n)} | (before.keys() - after.keys())

    write_json(lib / "m2.json", civitai_model("Model 2", file_name="m2.safetensors", tags=["edited"]))
    report = _import(engine, lib)
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 5)
    assert changed() == {"Model 2"}
    before = {r["name"]: r for r in _rows(engine)}
    write_json(lib / "m4.json", a1111(activation_text="added words", weight=0.6))
    write_json(lib / "m4.civitai.info", civitai_version("Model 4", file_name="m4.safetensors"))
    (lib / "m4.json").unlink()
    write_json(lib / "m4.json", a1111(activation_text="added words", weight=0.6))
    report = _import(engine, lib)
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 5)
    assert changed() == {"Model 4"} and _rows(engine)[4]["activation_text"] == "added words"
    before = {r["name"]: r for r in _rows(engine)}
    (lib / "m4.json").unlink()
    report = _import(engine, lib)
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, 5)
    assert changed() == {"Model 4"} and _rows(engine)[4]["activation_text"] is None


def test_a_sidecar_naming_a_model_file_of_another_stem_finds_it_when_it_appears(engine: Engine, tmp_path: Path) -> None:
    """A sidecar whose model is missing is read again when a model file it names arrives."""
    lib = tmp_path / "lib"
    write_model(lib, "other", civitai_model("Other", file_name="other.safetensors"))
    write_json(lib / "named.json", civitai_model("Named", file_name="real-file.safetensors"))
    first = _import(engine, lib)
    assert [p.kind for p in first.problems] == ["model_missing"]
    write_model(lib, "real-file", sidecar=None)
    second = _import(engine, lib)
    assert second.counts["new"] == 1 and not second.failed
    assert sorted(r["name"] for r in _rows(engine)) == ["Named", "Other"]


def test_editing_a_sidecar_that_names_another_stems_model_keeps_that_model(engine: Engine, tmp_path: Path) -> None:
    """Only the edited entry is looked at again, and it still finds the sidecar-less model file it names."""
    lib = tmp_path / "lib"
    write_model(lib, "other", civitai_model("Other", file_name="other.safetensors"))
    write_model(lib, "real-file", sidecar=None)
    write_json(lib / "named.json", civitai_model("Named", file_name="real-file.safetensors"))
    first = _import(engine, lib)
    assert first.counts["new"] == 2 and not first.problems
    write_json(lib / "named.json", civitai_model("Named", file_name="real-file.safetensors", description="edited"))
    second = _import(engine, lib)
    counts = second.counts
    assert (counts["new"], counts["updated"], counts["unchanged"], counts["orphans"]) == (0, 1, 1, 1)
    assert not second.problems
    [named] = [r for r in _rows(engine) if r["name"] == "Named"]
    assert named["description"] == "edited" and str(named["file_path"]).endswith("real-file.safetensors")


def test_a_root_inside_another_root_is_imported_once(engine: Engine, tmp_path: Path) -> None:
    """``lora import lib lib/sub lib``: each model once, counted once."""
    lib = tmp_path / "lib"
    write_model(lib, "top", civitai_model("Top", file_name="top.safetensors"))
    write_model(lib / "sub", "inner", civitai_model("Inner", file_name="inner.safetensors"))
    report = run_import(engine, ImportOptions(roots=[str(lib / "sub"), str(lib), str(lib)]))
    assert report.counts["new"] == 2 and sum(report.counts.values()) == 2
    again = run_import(engine, ImportOptions(roots=[str(lib), str(lib / "sub")]))
    assert again.counts["unchanged"] == 2 and sum(again.counts.values()) == 2


@pytest.mark.parametrize("new_name", ["lib2", "alib"])  # sorting after the old path, and before it
def test_a_moved_library_imported_under_its_new_path_takes_its_records_along(
    engine: Engine, tmp_path: Path, new_name: str
) -> None:
    """Found by fuzzing: the old paths are never walked again, so their holders looked alive forever."""
    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    write_model(lib / "sub", "beta", a1111(activation_text="beta"))
    _import(engine, lib)
    set_user_state(engine, "Alpha", "v1.0", {"weight": 0.4, "active": True})
    moved = lib.rename(tmp_path / new_name)
    report = _import(engine, moved)
    assert (report.counts["new"], report.counts["updated"], report.counts["duplicates"]) == (0, 2, 0)
    assert not report.problems
    rows = {r["name"]: r for r in _rows(engine)}
    assert all(str(r["file_path"]).startswith(str(moved)) for r in rows.values())
    assert (rows["Alpha"]["weight"], rows["Alpha"]["active"]) == (0.4, True)  # the user's state came along
    again = _import(engine, moved)
    assert again.counts["unchanged"] == 2 and not again.problems


def test_a_folder_renamed_inside_the_library_is_not_counted_missing(engine: Engine, tmp_path: Path) -> None:
    """Its entries vanish and come back under the new name in the same run: updated, not missing."""
    lib = tmp_path / "lib"
    for stem in ("a", "b"):
        write_model(lib / "old", stem, civitai_model(stem.upper(), file_name=f"{stem}.safetensors"))
    _import(engine, lib)
    (lib / "old").rename(lib / "new")
    report = _import(engine, lib)
    assert (report.counts["updated"], report.counts["missing"]) == (2, 0)
    assert all("/new/" in str(r["file_path"]) and r["missing_since"] is None for r in _rows(engine))


@pytest.mark.parametrize("change", ["add", "remove"])
def test_a_sidecar_added_to_or_removed_from_a_named_model_updates_the_sidecar_that_named_it(
    engine: Engine, tmp_path: Path, change: str
) -> None:
    """A model-less sidecar may name a sidecar-less model file: when that model gains or loses a
    sidecar of its own, the other entry is looked at again, as a fresh import would see it."""
    lib = tmp_path / "lib"
    write_model(lib, "other", civitai_model("Other", file_name="other.safetensors"))
    write_json(lib / "named.json", civitai_model("Named", file_name="real-file.safetensors"))
    own = lib / "real-file.civitai.info"
    write_model(lib, "real-file", sidecar=None)
    if change == "remove":
        write_json(own, civitai_version("Real", file_name="real-file.safetensors"))
    _import(engine, lib)
    if change == "add":
        write_json(own, civitai_version("Real", file_name="real-file.safetensors"))
    else:
        own.unlink()
    _import(engine, lib)
    fresh = tmp_path / "fresh.db"
    from lora_manager.db import open_catalog

    other_engine = open_catalog(str(fresh))
    try:
        _import(other_engine, lib, force=True)
        expected = sorted((r["name"], r["file_path"], r["missing_since"] is None) for r in _rows(other_engine))
    finally:
        other_engine.dispose()
    got = sorted(
        (r["name"], r["file_path"], r["missing_since"] is None) for r in _rows(engine) if not r["missing_since"]
    )
    assert got == [e for e in expected if e[2]]


def test_a_failed_leftover_sidecar_does_not_mark_the_record_another_entry_took_over_missing(
    engine: Engine, tmp_path: Path
) -> None:
    """Found by fuzzing: the leftover still held the row's id and marked it missing whenever it was
    read again; --prune then deleted the live record and its state."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "g", civitai_model("S", file_name="g.safetensors"))
    _import(engine, lib)
    set_user_state(engine, "S", "v1.0", {"ordinal": 4})
    (lib / "b" / "g.safetensors").unlink()  # S is left missing, its sidecar a failure (model_missing)
    _import(engine, lib)
    write_model(lib / "a", "s", civitai_model("S", file_name="s.safetensors"))  # takes S over
    _import(engine, lib)
    os.utime(lib / "b" / "g.json", ns=(1, 1))  # the leftover is read again
    report = _import(engine, lib, prune=True)
    assert (report.counts["missing"], report.counts["pruned"]) == (0, 0)
    [row] = _rows(engine)
    assert (row["file_path"], row["missing_since"], row["ordinal"]) == (str(lib / "a" / "s.safetensors"), None, 4)


def test_a_duplicate_takes_over_when_the_winner_under_another_root_goes_away(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: the winner's row was left missing under one root, and the duplicate under
    the other was never read again."""
    first, second = _winner_gone_under_another_root(engine, tmp_path, also_second=False)
    for _ in range(2):
        run_import(engine, ImportOptions(roots=[str(first), str(second)]))
    rows = {r["name"]: r for r in _rows(engine)}
    assert (rows["X"]["file_path"], rows["X"]["missing_since"]) == (str(second / "b.safetensors"), None)


def test_a_library_renamed_and_renamed_back_is_looked_at_again(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: its folders' fingerprints outlived the move, so it looked unchanged on its return."""
    lib = tmp_path / "r2"
    write_model(lib, "c", civitai_model("C", file_name="c.safetensors"))
    _import(engine, lib)
    moved = lib.rename(tmp_path / "r0")
    _import(engine, moved)
    back = moved.rename(lib)
    _import(engine, back)
    [row] = _rows(engine)
    assert (row["file_path"], row["missing_since"]) == (str(lib / "c.safetensors"), None)


def test_a_stranded_duplicate_in_a_folder_looked_at_in_part_takes_over(engine: Engine, tmp_path: Path) -> None:
    """The waiting duplicate's folder changed elsewhere (one other sidecar edited): it is still found and read."""
    first, second = _winner_gone_under_another_root(engine, tmp_path, also_second=True)
    _import(engine, first)  # X is left missing
    write_json(second / "c.json", civitai_model("C", file_name="c.safetensors", description="edited"))
    report = _import(engine, second)
    assert report.counts["updated"] == 2 and not [p for p in report.problems if p.kind == "duplicate"]
    rows = {r["name"]: r for r in _rows(engine)}
    assert (rows["X"]["file_path"], rows["X"]["missing_since"]) == (str(second / "b.safetensors"), None)
    again = _import(engine, second)
    assert again.counts["unchanged"] == 2 and again.counts["duplicates"] == 0


def _winner_gone_under_another_root(engine: Engine, tmp_path: Path, also_second: bool) -> tuple[Path, Path]:
    """``r1/a`` holds X and ``r2/b`` waits as its duplicate (beside ``r2/c`` with ``also_second``);
    then ``r1/a`` is deleted and ``r1/k`` added, nothing imported since."""
    first, second = tmp_path / "r1", tmp_path / "r2"
    write_model(first, "a", civitai_model("X", file_name="a.safetensors"))
    write_model(second, "b", civitai_model("X", file_name="b.safetensors"))
    if also_second:
        write_model(second, "c", civitai_model("C", file_name="c.safetensors"))
    _import(engine, first)
    _import(engine, second)
    for f in first.iterdir():
        f.unlink()
    write_model(first, "k", civitai_model("K", file_name="k.safetensors"))
    return first, second


def test_a_record_left_missing_by_an_identity_clash_is_deleted_by_prune(engine: Engine, tmp_path: Path) -> None:
    """README: the old record is marked missing with the user's state; ``--prune`` deletes it."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    write_model(lib, "b", civitai_model("Beta", file_name="b.safetensors"))
    _import(engine, lib)
    write_json(lib / "b.json", civitai_model("Alpha", file_name="b.safetensors"))
    _import(engine, lib)
    assert sorted((r["name"], r["missing_since"] is None) for r in _rows(engine)) == [("Alpha", True), ("Beta", False)]
    assert _import(engine, lib, prune=True).counts["pruned"] == 1
    assert [r["name"] for r in _rows(engine)] == ["Alpha"]


def test_an_entry_that_takes_over_an_identity_keeps_its_tags_and_link_on_that_record(
    engine: Engine, tmp_path: Path
) -> None:
    """An entry whose old record is kept missing (an identity clash) names two rows once it takes
    over the identity it clashed with: its tags and its entry must follow the live one."""
    from lora_manager.db.schema import entry

    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors"))
    write_model(lib, "b", civitai_model("Beta", file_name="b.safetensors", tags=["old"]))
    _import(engine, lib)
    write_json(lib / "b.json", civitai_model("Alpha", file_name="b.safetensors", tags=["mine"]))
    _import(engine, lib)  # Alpha is a's: b is a duplicate, Beta kept missing for b's return
    (lib / "a.json").unlink()
    _import(engine, lib)  # a lets Alpha go: b takes it over

    live = {r["name"]: r for r in _rows(engine) if r["missing_since"] is None}
    assert set(live) == {"Alpha"}
    assert live["Alpha"]["tags"] == ["mine"]
    assert [r["name"] for r in list_adapters(engine, ListQuery(tags=["mine"]))] == ["Alpha"]
    with engine.connect() as conn:
        held = conn.execute(select(entry.c.adapter_id).where(entry.c.key == str(lib.resolve() / "b"))).scalar()
    assert held == live["Alpha"]["id"]


def test_a_record_taken_over_and_renamed_is_never_touched_by_the_entry_that_held_it_first(
    engine: Engine, tmp_path: Path
) -> None:
    """b/x loses its model file (its record is left missing), a/y takes that identity over and
    then moves the record to another; b/x, read again, still remembers the row, but the row is
    a/y's now: b/x must leave it be (it used to mark a/y's record missing)."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "x", civitai_model("Alpha", file_name="x.safetensors"))
    _import(engine, lib)
    (lib / "b" / "x.safetensors").unlink()
    _import(engine, lib)  # b/x: model_missing, Alpha left missing
    write_model(lib / "a", "y", civitai_model("Alpha", file_name="y.safetensors"))
    _import(engine, lib)  # a/y takes the missing Alpha over
    write_json(lib / "a" / "y.json", civitai_model("Gamma", file_name="y.safetensors"))
    _import(engine, lib)  # a/y moves its record to Gamma
    write_json(lib / "b" / "x.json", civitai_model("Alpha", file_name="x.safetensors", tags=["again"]))
    _import(engine, lib)  # b/x read again, its model still missing

    live = [(r["name"], r["entry_key"]) for r in _rows(engine) if r["missing_since"] is None]
    assert live == [("Gamma", str(lib.resolve() / "a" / "y"))]


def test_an_entry_that_vanishes_leaves_the_record_another_entry_took_over_alone(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: a/m lost its sidecar (its record left missing), b/m took the record over;
    when a/m's model then went, the import marked b/m's live record missing, for good."""
    lib = tmp_path / "lib"
    write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))
    _import(engine, lib)
    (lib / "a" / "m.json").unlink()
    _import(engine, lib)  # a/m: an orphan; Alpha left missing
    write_model(lib / "b", "m", civitai_model("Alpha", file_name="m.safetensors"))
    _import(engine, lib)  # b/m takes Alpha over
    (lib / "a" / "m.safetensors").unlink()

    report = _import(engine, lib)  # a/m vanishes

    assert report.counts["missing"] == 0
    assert [(r["entry_key"], r["missing_since"]) for r in _rows(engine)] == [(str(lib.resolve() / "b" / "m"), None)]
    assert _import(engine, lib, prune=True).counts["pruned"] == 0


def test_a_failed_holder_that_moves_to_another_identity_lets_its_duplicates_take_the_old_one(
    engine: Engine, tmp_path: Path
) -> None:
    """Found by fuzzing: a/m's sidecar broke (it keeps its record), then named another model; b/m,
    a duplicate of the old identity, was not read again, so Alpha was gone until the next run."""
    lib = tmp_path / "lib"
    for folder in ("a", "b"):
        write_model(lib / folder, "m", civitai_model("Alpha", file_name="m.safetensors"))
    _import(engine, lib)  # a/m holds Alpha, b/m is its duplicate
    (lib / "a" / "m.json").write_text("{broken", encoding="utf-8")
    _import(engine, lib)  # a/m failed: keeps Alpha
    write_json(lib / "a" / "m.json", civitai_model("Gamma", file_name="m.safetensors"))

    report = _import(engine, lib)

    # a/m's row moves to Gamma (user state goes with the file); b/m's Alpha is a new row.
    assert (report.counts["updated"], report.counts["new"], report.counts["failed"]) == (1, 1, 0)
    assert sorted((r["name"], r["entry_key"]) for r in _rows(engine) if r["missing_since"] is None) == [
        ("Alpha", str(lib.resolve() / "b" / "m")),
        ("Gamma", str(lib.resolve() / "a" / "m")),
    ]
    assert _import(engine, lib).counts["unchanged"] == 2


def test_a_holder_demoted_to_duplicate_keeps_its_other_problems(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: b/m, holding Alpha with a broken second sidecar, lost Alpha to a new a/m and
    with it the record of its broken sidecar (``lora errors`` showed only the duplicate)."""
    lib = tmp_path / "lib"
    write_model(lib / "b", "m", civitai_model("Alpha", file_name="m.safetensors"))
    (lib / "b" / "m.civitai.info").write_bytes(b"")
    _import(engine, lib)
    write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))

    _import(engine, lib)  # a/m, earlier in path order, takes Alpha; b/m is demoted

    with engine.connect() as conn:
        status, problems = conn.execute(
            select(entry.c.status, entry.c.problems).where(entry.c.key == str(lib.resolve() / "b" / "m"))
        ).one()
    assert status == "duplicate"
    assert sorted(p["kind"] for p in problems) == ["duplicate", "invalid_json"]


def test_an_import_stopped_between_batches_leaves_no_stale_counts_behind(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: a batch changed an entry's status (ok -> failed), the run stopped before saving its
    directories, and the next runs counted that entry by the directory's old counts (2 ok, not 1 ok
    and 1 failed), for good."""
    lib = tmp_path / "lib"
    for stem in ("a", "b", "c"):
        write_model(lib, stem, civitai_model(f"Model {stem}", file_name=f"{stem}.safetensors"))
    _import(engine, lib)
    (lib / "a.json").write_text("{broken", encoding="utf-8")  # ok -> failed
    (lib / "b.json").unlink()  # ok -> orphan
    stopped = run_import(engine, ImportOptions(roots=[str(lib)], batch_size=1), should_stop=lambda: True)
    assert stopped.interrupted

    _import(engine, lib)
    again = _import(engine, lib)

    assert (again.counts["unchanged"], again.counts["orphans"]) == (1, 1)  # c; b (a's failure is counted apart)
    with engine.connect() as conn:
        statuses = sorted(conn.execute(select(entry.c.status)).scalars())
    assert statuses == ["failed", "ok", "orphan"]


def test_a_sidecar_that_breaks_keeps_its_last_good_record_until_put_right(engine: Engine, tmp_path: Path) -> None:
    """README: a half-written sidecar is reported and never erases the record; fixed, it is read again."""
    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors", tags=["one"]))
    _import(engine, lib)
    (lib / "a.json").write_text('{"name": "Alpha", "modelVersions": [', encoding="utf-8")
    broken = _import(engine, lib)
    assert broken.counts["failed"] == 1 and [p.kind for p in broken.problems] == ["invalid_json"]
    [kept] = _rows(engine)
    assert (kept["name"], kept["tags"], kept["missing_since"]) == ("Alpha", ["one"], None)
    write_json(lib / "a.json", civitai_model("Alpha", file_name="a.safetensors", tags=["two"]))
    assert _import(engine, lib).counts["updated"] == 1
    assert [r["tags"] for r in _rows(engine)] == [["two"]]


def test_a_model_file_passing_to_another_entry_is_not_marked_gone(engine: Engine, tmp_path: Path) -> None:
    """``x.civitai.info`` naming ``a.safetensors`` renamed to ``a.civitai.info``: entry ``x`` vanishes, but
    its model file is still entry ``a``'s (unchanged, so not written again): it was flagged missing, and
    ``duplicates`` stopped seeing it until the next ``lora hash``."""
    from lora_manager.db.schema import model_file
    from tests.builders import write_safetensors

    lib = tmp_path / "lib"
    write_safetensors(lib / "a.safetensors")
    write_json(lib / "x.civitai.info", civitai_version("A Model", file_name="a.safetensors"))
    write_model(lib / "other", "b", civitai_model("B"))  # the library never looks empty
    _import(engine, lib)
    (lib / "x.civitai.info").rename(lib / "a.civitai.info")
    report = _import(engine, lib)
    assert report.counts["updated"] == 1 and report.counts["missing"] == 0
    a_file = model_file.c.path == str((lib / "a.safetensors").resolve())
    with engine.connect() as conn:
        assert conn.execute(select(model_file.c.missing_since).where(a_file)).one() == (None,)
    (lib / "a.civitai.info").unlink()
    (lib / "a.safetensors").unlink()
    _import(engine, lib)
    with engine.connect() as conn:  # a file really gone still is
        assert conn.execute(select(model_file.c.missing_since).where(a_file)).scalar_one() is not None


def test_a_model_file_let_go_by_an_entry_read_again_is_marked_gone(engine: Engine, tmp_path: Path) -> None:
    """``foo.civitai.info`` names ``bar.safetensors``, which is deleted: entry ``bar`` vanishes while ``foo``
    (read again, now without a model) still held the file when the vanished were handled."""
    from lora_manager.db.schema import model_file
    from tests.builders import write_safetensors

    lib = tmp_path / "lib"
    write_safetensors(lib / "bar.safetensors")
    write_json(lib / "foo.civitai.info", civitai_version("Foo", file_name="bar.safetensors"))
    write_model(lib / "other", "b", civitai_model("B"))
    _import(engine, lib)
    (lib / "bar.safetensors").unlink()
    _import(engine, lib)
    with engine.connect() as conn:
        gone = model_file.c.path == str((lib / "bar.safetensors").resolve())
        assert conn.execute(select(model_file.c.missing_since).where(gone)).scalar_one() is not None


def _model_files(engine: Engine) -> dict[str, bool]:
    """Each ``model_file`` row's path -> whether it is marked missing."""
    from lora_manager.db.schema import model_file

    with engine.connect() as conn:
        return {p: m is not None for p, m in conn.execute(select(model_file.c.path, model_file.c.missing_since))}


def test_a_model_file_deleted_beside_its_sidecar_is_marked_gone(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: a/m's model file was deleted and its sidecar kept; a/m, read again, lost the file
    but its ``model_file`` row stayed present (``lora hash`` called it vanished; a fresh import has none)."""
    lib = tmp_path / "lib"
    model = write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))
    other = write_model(lib / "b", "n", civitai_model("Beta", file_name="n.safetensors"))
    _import(engine, lib)
    model.unlink()

    report = _import(engine, lib)

    assert report.counts["missing"] == 1
    assert _model_files(engine) == {str(model.resolve()): True, str(other.resolve()): False}


def test_a_model_file_let_go_by_a_sidecar_naming_it_stays_while_its_own_entry_holds_it(
    engine: Engine, tmp_path: Path
) -> None:
    """``x.civitai.info`` names ``a.safetensors``; ``a.json`` appears, so ``a`` has the file and ``x`` none:
    the file ``x`` let go of is ``a``'s, and present (each entry in a batch of its own)."""
    from tests.builders import write_safetensors

    lib = tmp_path / "lib"
    model = write_safetensors(lib / "a.safetensors")
    write_json(lib / "x.civitai.info", civitai_version("X", file_name="a.safetensors"))
    _import(engine, lib)
    write_json(lib / "a.json", civitai_model("Alpha", file_name="a.safetensors"))

    report = _import(engine, lib, batch_size=1)

    assert report.counts["new"] == 1 and report.counts["missing"] == 1  # Alpha; X, now without a model
    assert _model_files(engine) == {str(model.resolve()): False}


def test_a_sidecar_broken_as_its_model_file_is_deleted_leaves_its_record_missing(
    engine: Engine, tmp_path: Path
) -> None:
    """Found by fuzzing: a broken sidecar keeps its last good record only while its model file is there;
    broken in the same run as the model was deleted, the record stayed live (a fresh import has none)."""
    lib = tmp_path / "lib"
    model = write_model(lib / "z", "m", civitai_model("Alpha", file_name="m.safetensors"))
    write_model(lib / "b", "n", civitai_model("Beta", file_name="n.safetensors"))
    _import(engine, lib)
    model.unlink()
    (lib / "z" / "m.json").write_text("{", encoding="utf-8")

    report = _import(engine, lib)

    assert report.counts["missing"] == 1 and [p.kind for p in report.problems] == ["invalid_json"]
    assert sorted((r["name"], r["missing_since"] is not None) for r in _rows(engine)) == [
        ("Alpha", True),
        ("Beta", False),
    ]
    assert _model_files(engine)[str(model.resolve())] is True


def test_a_broken_sidecar_keeps_its_record_while_the_model_file_it_named_is_there(
    engine: Engine, tmp_path: Path
) -> None:
    """``x.civitai.info`` names ``a.safetensors``: broken, it cannot say so, yet the file is still beside it,
    so the last good record stays (a model file found by name is there as much as one of its stem)."""
    from tests.builders import write_safetensors

    lib = tmp_path / "lib"
    write_safetensors(lib / "a.safetensors")
    write_json(lib / "x.civitai.info", civitai_version("X", file_name="a.safetensors", trained_words=["kept"]))
    _import(engine, lib)
    (lib / "x.civitai.info").write_text("{", encoding="utf-8")

    report = _import(engine, lib)

    assert report.counts["failed"] == 1 and report.counts["missing"] == 0
    assert [(r["name"], r["trained_words"], r["missing_since"]) for r in _rows(engine)] == [("X", ["kept"], None)]


def test_many_sidecars_without_models_beside_many_models_without_sidecars_store_short_signatures(
    engine: Engine, tmp_path: Path
) -> None:
    """Each model-less entry's signature listed every sidecar-less model of its folder (N x M names stored:
    3 GB at 8,000 of each). Past 32 it holds their digest: a sidecar still finds the file it names, a
    change to any neighbour still has them read again, and a broken one keeps its record while its file is there."""
    from sqlalchemy import func, select

    from lora_manager.db.schema import entry
    from lora_manager.entries import MAX_LISTED_NEIGHBOURS
    from tests.builders import write_safetensors

    lib = tmp_path / "lib"
    count = MAX_LISTED_NEIGHBOURS + 8
    for i in range(count):
        write_safetensors(lib / f"model-{i}.safetensors")
        write_json(lib / f"info-{i}.civitai.info", civitai_version(f"Info {i}", file_name=f"model-{i}.safetensors"))
    assert _import(engine, lib).counts["new"] == count
    with engine.connect() as conn:
        assert conn.execute(select(func.max(func.length(entry.c.signature)))).scalar_one() < 200
    assert {r["name"]: r["file_path"].rsplit("/", 1)[1] for r in _rows(engine)} == {
        f"Info {i}": f"model-{i}.safetensors" for i in range(count)
    }
    assert _import(engine, lib).counts["unchanged"] == count
    write_safetensors(lib / "model-0.safetensors", tensor_bytes=2048)  # one neighbour changes: every sidecar may care
    report = _import(engine, lib)
    assert report.counts["unchanged"] + report.counts["updated"] == count and report.counts["unchanged"] < count
    (lib / "model-2.safetensors").unlink()
    report = _import(engine, lib)
    assert report.counts["missing"] == 1 and report.counts["failed"] == 1  # Info 2 names a file that is gone
    (lib / "info-1.civitai.info").write_text("{", encoding="utf-8")  # broken: only the disk says its file is there
    report = _import(engine, lib)
    assert report.counts["failed"] == 1 and report.counts["missing"] == 0
    assert {r["name"] for r in _rows(engine) if r["missing_since"] is not None} == {"Info 2"}


def test_a_failed_holder_that_loses_its_identity_stays_failed(engine: Engine, tmp_path: Path) -> None:
    """Found by fuzzing: z/m's sidecar broke (it kept its last good record), then a new a/m, earlier in path
    order, claimed the identity: z/m became a ``duplicate``, where a fresh import has it failed, with
    its broken sidecar in ``lora errors`` and nothing about a duplicate."""
    from lora_manager.services.catalog import known_problems

    lib = tmp_path / "lib"
    write_model(lib / "z", "m", civitai_model("Alpha", file_name="m.safetensors"))
    _import(engine, lib)
    (lib / "z" / "m.json").write_text("{", encoding="utf-8")
    _import(engine, lib)  # z/m failed: keeps Alpha
    write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))

    report = _import(engine, lib)

    assert (report.counts["updated"], report.counts["duplicates"], report.counts["failed"]) == (1, 0, 0)
    held = str(lib.resolve() / "z" / "m")
    assert [(r["name"], r["entry_key"], r["missing_since"]) for r in _rows(engine)] == [
        ("Alpha", str(lib.resolve() / "a" / "m"), None)
    ]
    with engine.connect() as conn:
        row = conn.execute(select(entry.c.status, entry.c.adapter_id).where(entry.c.key == held)).one()
    assert tuple(row) == ("failed", None)
    assert [(p["path"], p["category"], p["entry_status"]) for p in known_problems(engine)] == [
        (str(lib.resolve() / "z" / "m.json"), "invalid_json", "failed")
    ]
    assert _import(engine, lib).counts["unchanged"] == 1


def _model_deleted_as_its_sidecar_broke(engine: Engine, tmp_path: Path) -> Path:
    """A library whose z/m ('Alpha') lost its model file in the run its sidecar broke, imported before and after."""
    lib = tmp_path / "lib"
    model = write_model(lib / "z", "m", civitai_model("Alpha", file_name="m.safetensors"))
    _import(engine, lib)
    model.unlink()
    (lib / "z" / "m.json").write_text("{", encoding="utf-8")
    _import(engine, lib)
    return lib


def _assert_failed_with_its_sidecar_an_orphan(engine: Engine, lib: Path) -> None:
    """z/m is failed in ``lora errors``, and its model-less sidecar in ``lora orphans``."""
    from lora_manager.services.catalog import known_problems
    from lora_manager.services.orphans import find_orphans

    sidecar = str(lib.resolve() / "z" / "m.json")
    assert [(p["path"], p["category"], p["entry_status"]) for p in known_problems(engine)] == [
        (sidecar, "invalid_json", "failed")
    ]
    assert [(o.kind, o.path) for o in find_orphans(engine, [str(lib)])] == [("sidecar", sidecar)]


def test_a_failed_entry_without_its_model_file_is_listed_after_its_identity_is_claimed(
    engine: Engine, tmp_path: Path
) -> None:
    """Found by fuzzing: z/m's sidecar broke as its model was deleted, then a/m claimed its identity; z/m
    became a ``duplicate``, so ``lora errors`` named a duplicate and ``lora orphans`` left its sidecar out."""
    lib = _model_deleted_as_its_sidecar_broke(engine, tmp_path)
    write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))

    _import(engine, lib)

    _assert_failed_with_its_sidecar_an_orphan(engine, lib)
    assert [(r["name"], r["missing_since"]) for r in _rows(engine)] == [("Alpha", None)]


def test_a_failed_holder_without_its_model_file_stays_failed_and_its_sidecar_an_orphan_when_demoted(
    engine: Engine, tmp_path: Path
) -> None:
    """A catalog an earlier release left with z/m failed (broken sidecar, model deleted) yet holding a live
    record: a/m claiming that identity made z/m a ``duplicate``, out of ``lora orphans``."""
    lib = _model_deleted_as_its_sidecar_broke(engine, tmp_path)
    with engine.begin() as conn:  # as that release left it: the record live
        conn.execute(update(adapter).values(missing_since=None))
    write_model(lib / "a", "m", civitai_model("Alpha", file_name="m.safetensors"))

    _import(engine, lib)

    _assert_failed_with_its_sidecar_an_orphan(engine, lib)
    assert [(r["entry_key"], r["missing_since"]) for r in _rows(engine)] == [(str(lib.resolve() / "a" / "m"), None)]


def test_a_broken_sidecar_does_not_hold_a_record_left_missing(engine: Engine, tmp_path: Path) -> None:
    """z/m's model went (Alpha left missing), then came back as its sidecar broke: z/m held Alpha all the
    same, so zz/m, later in path order, was made a duplicate of a missing record (a fresh import has it ok)."""
    lib = tmp_path / "lib"
    model = write_model(lib / "z", "m", civitai_model("Alpha", file_name="m.safetensors"))
    write_model(lib / "b", "n", civitai_model("Beta", file_name="n.safetensors"))
    _import(engine, lib)
    model.unlink()
    _import(engine, lib)  # z/m: model_missing, Alpha left missing
    write_model(lib / "z", "m")
    (lib / "z" / "m.json").write_text("{", encoding="utf-8")
    write_model(lib / "zz", "m", civitai_model("Alpha", file_name="m.safetensors"))

    report = _import(engine, lib)

    assert report.counts["duplicates"] == 0
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(entry.c.key, entry.c.status)).all())
    assert statuses[str(lib.resolve() / "zz" / "m")] == "ok"
    assert sorted((r["name"], r["entry_key"], r["missing_since"]) for r in _rows(engine)) == [
        ("Alpha", str(lib.resolve() / "zz" / "m"), None),
        ("Beta", str(lib.resolve() / "b" / "n"), None),
    ]


def test_tags_kept_by_an_edit_are_not_read_again_and_changed_ones_follow(engine: Engine, tmp_path: Path) -> None:
    """A description edit keeps the stored tag list: ``adapter_tag`` is neither read nor written.
    A list that changes (in case, order or content) is compared with ``adapter_tag`` as before."""
    from sqlalchemy import event

    from lora_manager.db.schema import adapter_tag

    lib = tmp_path / "lib"
    write_model(lib, "a", civitai_model("Alpha", file_name="a.safetensors", tags=["Anime", "style"]))
    write_model(lib, "b", civitai_model("Beta", file_name="b.safetensors", tags=["x"]))
    _import(engine, lib)
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    write_json(
        lib / "a.json", civitai_model("Alpha", file_name="a.safetensors", tags=["Anime", "style"], description="new")
    )
    assert _import(engine, lib).counts["updated"] == 1
    assert not [s for s in sent if "adapter_tag" in s]
    assert [r["description"] for r in _rows(engine)] == ["new", "<p>Beta</p>"]

    write_json(lib / "a.json", civitai_model("Alpha", file_name="a.safetensors", tags=["style", "ANIME"]))
    write_json(lib / "b.json", civitai_model("Beta", file_name="b.safetensors", tags=["X", "new"]))
    assert _import(engine, lib).counts["updated"] == 2
    assert [s for s in sent if "adapter_tag" in s]  # the lists differ: compared with what adapter_tag holds
    with engine.connect() as conn:
        ids = dict(conn.execute(select(adapter.c.name, adapter.c.id)).all())
        held = set(conn.execute(select(adapter_tag.c.adapter_id, adapter_tag.c.tag)).all())
    assert held == {(ids["Alpha"], "anime"), (ids["Alpha"], "style"), (ids["Beta"], "x"), (ids["Beta"], "new")}
    assert [r["name"] for r in list_adapters(engine, ListQuery(tags=["new"]))] == ["Beta"]


def test_a_folder_record_is_kept_as_a_patch_until_many_files_differ_and_each_edit_is_seen_alone(
    engine: Engine, tmp_path: Path
) -> None:
    """After an edit the folder's row holds a patch of its full record (kept apart, unchanged); the
    next edit elsewhere in the folder is grouped alone. Past ``PATCH_FILES`` files the record is
    stored in full again."""
    from lora_manager.db import directories
    from lora_manager.db.schema import directory, directory_files
    from lora_manager.discovery import walk
    from lora_manager.listings import PATCH_FILES

    lib = tmp_path / "lib"
    stems = [f"m{i:02}" for i in range(PATCH_FILES + 4)]
    for stem in stems:
        write_model(lib, stem, a1111(activation_text=stem))
    _import(engine, lib)
    folder = str(lib.resolve())

    def stored() -> tuple[bytes | None, bytes | None]:
        with engine.connect() as conn:
            patch = conn.execute(select(directory.c.patch).where(directory.c.path == folder)).scalar()
            base = conn.execute(select(directory_files.c.files).where(directory_files.c.path == folder)).scalar()
        return (bytes(patch) if patch is not None else None), (bytes(base) if base is not None else None)

    def edit(stem: str) -> None:
        write_json(lib / f"{stem}.json", a1111(activation_text=f"{stem} edited, longer"))

    patch, base = stored()
    assert patch == b"" and base is not None
    edit("m00")
    assert _import(engine, lib).counts["updated"] == 1
    assert stored() == (stored()[0], base) and len(stored()[0] or b"") == 12  # one file's change; the base as it was
    edit("m01")
    with engine.connect() as conn:  # the walk pairs the files with the patched record: m01 alone changed
        known = {p: fp for p, (fp, _) in directories.load_directories(conn, folder).items()}
        looked = walk(folder, known=known, previous=directories.StoredDirectories(conn))
    assert looked.partial == {folder: {"m01"}}
    assert _import(engine, lib).counts["updated"] == 1
    assert len(stored()[0] or b"") == 24

    for stem in stems[2 : PATCH_FILES + 1]:  # 17 files differ from the base now: it is stored in full
        edit(stem)
    assert _import(engine, lib).counts["updated"] == PATCH_FILES - 1
    patch, new_base = stored()
    assert patch == b"" and new_base not in (None, base)
    edit(stems[-1])
    report = _import(engine, lib)
    assert (report.counts["updated"], report.counts["unchanged"]) == (1, len(stems) - 1)
    assert len(stored()[0] or b"") == 12

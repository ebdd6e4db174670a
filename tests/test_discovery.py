"""The walk: grouping files into entries, signatures, safety, ignore patterns."""

from __future__ import annotations

import os
import random
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from lora_manager.discovery import WalkResult, walk
from lora_manager.entries import MAX_LISTED_NEIGHBOURS, Entry, FileStat, Neighbours, classify, signs_neighbour
from lora_manager.errors import LoraError
from lora_manager.ignore import load_ignore
from lora_manager.listings import (
    PATCH_FILES,
    changed_files,
    changed_names,
    compare,
    files_record,
    names_digest,
    pack_names,
    patch_for,
    patched,
)
from lora_manager.paths import resolve_root
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


def _rewalk_after(root: str, change: Callable[[], None]) -> WalkResult:
    """Walk ``root``, apply ``change``, and walk again with the first walk's fingerprints and listings."""
    first = walk(root)
    change()
    asked: list[str] = []

    class Previous:
        def stored(self, directory: str) -> tuple[bytes | None, bytes | None]:
            asked.append(directory)
            return b"", first.files.get(directory)  # the record in full: no patch

        def names(self, directory: str) -> bytes | None:
            return first.names.get(directory)

    second = walk(root, known=first.fingerprints, previous=Previous())
    assert sorted(asked) == sorted(set(first.fingerprints) - set(second.clean))  # every changed folder, once
    return second


def test_a_changed_sidecar_regroups_only_its_own_entry(tmp_path: Path) -> None:
    """In a folder that changed, only the stems whose files changed are grouped again."""
    for stem in ("alpha", "beta", "gamma"):
        write_safetensors(tmp_path / "dir" / f"{stem}.safetensors", {})
        write_json(tmp_path / "dir" / f"{stem}.civitai.info", {"name": stem})
    write_safetensors(tmp_path / "other" / "delta.safetensors", {})
    root = resolve_root(tmp_path)
    second = _rewalk_after(root, lambda: write_json(tmp_path / "dir" / "beta.civitai.info", {"name": "beta, edited"}))
    assert [e.stem for e in second.entries] == ["beta"]
    assert second.partial == {str(tmp_path / "dir"): {"beta"}}
    assert str(tmp_path / "other") in second.clean and str(tmp_path / "dir") not in second.clean


def test_an_edited_sidecar_without_its_model_is_regrouped_alone_with_the_whole_folders_lonely_models(
    tmp_path: Path,
) -> None:
    """A sidecar-less model of another stem is a neighbour of an edited model-less sidecar, as in a full look."""
    folder = tmp_path / "dir"
    write_safetensors(folder / "lonely.safetensors", {})
    write_safetensors(folder / "paired.safetensors", {})
    write_json(folder / "paired.civitai.info", {"name": "paired"})
    write_json(folder / "renamed.civitai.info", {"name": "renamed", "files": [{"name": "lonely.safetensors"}]})
    root = resolve_root(tmp_path)
    second = _rewalk_after(root, lambda: write_json(folder / "renamed.civitai.info", {"name": "renamed, edited"}))
    assert second.partial == {str(folder): {"renamed"}}
    [entry] = second.entries
    assert [f.name for f in entry.neighbours] == ["lonely.safetensors"]
    [full] = [e for e in walk(root).entries if e.stem == "renamed"]
    assert entry.signature == full.signature


def test_a_changed_model_file_regroups_the_whole_folder(tmp_path: Path) -> None:
    """A sidecar may name any model file of its folder, so a model change means a full look."""
    for stem in ("alpha", "beta"):
        write_safetensors(tmp_path / f"{stem}.safetensors", {})
        write_json(tmp_path / f"{stem}.civitai.info", {"name": stem})
    root = resolve_root(tmp_path)
    second = _rewalk_after(root, lambda: write_safetensors(tmp_path / "alpha.safetensors", {"x": "longer now"}))
    assert [e.stem for e in second.entries] == ["alpha", "beta"] and second.partial == {}


@pytest.mark.parametrize("odd", ["a],[b", 'q"z', "é ✓ 名前", "line\nbreak", "back\\slash"])
def test_names_of_any_shape_still_diff_right(tmp_path: Path, odd: str) -> None:
    """An edited file is found by its place among the files, whatever its name holds."""
    write_safetensors(tmp_path / f"{odd}.safetensors", {})
    write_json(tmp_path / f"{odd}.civitai.info", {"name": "odd"})
    write_safetensors(tmp_path / "plain.safetensors", {})
    write_json(tmp_path / "plain.civitai.info", {"name": "plain"})
    root = resolve_root(tmp_path)
    second = _rewalk_after(root, lambda: write_json(tmp_path / f"{odd}.civitai.info", {"name": "odd, edited"}))
    assert [e.stem for e in second.entries] == [odd]
    third = _rewalk_after(root, lambda: write_json(tmp_path / "plain.civitai.info", {"name": "plain, edited"}))
    assert [e.stem for e in third.entries] == ["plain"]


def test_a_sidecar_or_preview_added_or_removed_regroups_only_its_own_entry(tmp_path: Path) -> None:
    """The stored names pair the files by name when some were added or removed; a model file added means a full look."""
    for stem in ("alpha", "beta", "gamma"):
        write_safetensors(tmp_path / f"{stem}.safetensors", {})
        write_json(tmp_path / f"{stem}.civitai.info", {"name": stem})
    root = resolve_root(tmp_path)
    added = _rewalk_after(root, lambda: write_json(tmp_path / "alpha.metadata.json", {"notes": "new"}))
    assert [e.stem for e in added.entries] == ["alpha"] and added.partial == {str(tmp_path): {"alpha"}}
    preview = _rewalk_after(root, lambda: (tmp_path / "gamma.preview.png").write_bytes(b"png"))
    assert [e.stem for e in preview.entries] == ["gamma"] and [e.previews for e in preview.entries] == [
        ["gamma.preview.png"]
    ]
    removed = _rewalk_after(root, lambda: (tmp_path / "beta.civitai.info").unlink())
    assert [e.stem for e in removed.entries] == ["beta"] and removed.partial == {str(tmp_path): {"beta"}}
    model = _rewalk_after(root, lambda: write_safetensors(tmp_path / "delta.safetensors", {}))
    assert [e.stem for e in model.entries] == ["alpha", "beta", "delta", "gamma"] and model.partial == {}


def test_a_folder_whose_stored_names_are_missing_or_not_its_own_is_looked_at_in_full(tmp_path: Path) -> None:
    """Names that do not match the stored record (or none at all) cannot pair files: every entry is compared."""
    for stem in ("alpha", "beta"):
        write_safetensors(tmp_path / f"{stem}.safetensors", {})
        write_json(tmp_path / f"{stem}.civitai.info", {"name": stem})
    root = resolve_root(tmp_path)
    first = walk(root)
    write_json(tmp_path / "alpha.metadata.json", {"notes": "new"})
    for stored_names in (None, pack_names(b"other\0names"), b"not zlib"):

        class Previous:
            def stored(self, directory: str) -> tuple[bytes | None, bytes | None]:
                return b"", first.files.get(directory)

            def names(self, directory: str, stored: bytes | None = stored_names) -> bytes | None:
                return stored

        again = walk(root, known=first.fingerprints, previous=Previous())
        assert [e.stem for e in again.entries] == ["alpha", "beta"] and again.partial == {}


def _record(rows: list[tuple[str, int, int, bool]]) -> bytes:
    names = "\0".join(r[0] for r in rows).encode()
    return files_record(names_digest("", names), array("q", [v for r in rows for v in r[1:]]).tobytes())


def test_changed_files_names_the_places_that_differ_and_refuses_what_it_cannot_tell() -> None:
    """Same record: nothing; a size, mtime or link changed: its place; other names or a foreign value: None."""
    rows = [("a.json", 1, 5, False), ("a.safetensors", 9, 5, False), ("b.json", 2, 5, False)]
    before = _record(rows)
    assert changed_files(before, before) == []
    assert changed_files(before, _record([rows[0], rows[1], ("b.json", 3, 5, False)])) == [2]
    assert changed_files(before, _record([rows[0], ("a.safetensors", 9, 5, True), rows[2]])) == [1]
    assert changed_files(before, _record(rows[:2])) is None  # a file gone
    assert changed_files(before, _record([("a.jsoN", 1, 5, False), *rows[1:]])) is None  # renamed
    assert changed_files(b"", before) is None
    assert changed_files(before[:-1], before[:-1]) is None  # not whole files


def _walk_with_stored_record(root: str, known: dict[str, str], record: Callable[[str], bytes | None]) -> WalkResult:
    class Previous:
        def stored(self, directory: str) -> tuple[bytes | None, bytes | None]:
            return b"", record(directory)

        def names(self, directory: str) -> bytes | None:
            return None

    return walk(root, known=known, previous=Previous())


def test_a_record_that_shows_no_change_while_the_fingerprint_does_means_a_look_at_the_whole_folder(
    tmp_path: Path,
) -> None:
    """A record keeps one value a file, which a change could leave as it was: the fingerprint, which
    hashes the numbers themselves, says the folder changed, so every entry of it is compared."""
    for stem in ("alpha", "beta"):
        write_safetensors(tmp_path / f"{stem}.safetensors", {})
        write_json(tmp_path / f"{stem}.civitai.info", {"name": stem})
    root = resolve_root(tmp_path)
    now = walk(root)
    stale = {d: "an older fingerprint" for d in now.fingerprints}
    again = _walk_with_stored_record(root, stale, now.files.get)  # a record equal to today's
    assert [e.stem for e in again.entries] == ["alpha", "beta"] and again.partial == {}


def test_a_record_stored_by_an_older_release_24_bytes_a_file_means_one_look_at_the_whole_folder(
    tmp_path: Path,
) -> None:
    """Before 0012 a record held each file's three numbers: it never matches today's, so the folder is
    looked at in full (and its record is stored anew by the import)."""
    for stem in ("alpha", "beta"):
        write_safetensors(tmp_path / f"{stem}.safetensors", {})
        write_json(tmp_path / f"{stem}.civitai.info", {"name": stem})
    root = resolve_root(tmp_path)
    first = walk(root)
    names = b"\0".join(p.name.encode() for p in sorted(tmp_path.iterdir()))
    numbers = array("q", [v for p in sorted(tmp_path.iterdir()) for v in (p.stat().st_size, p.stat().st_mtime_ns, 0)])
    old_record = first.files[root][:16] + numbers.tobytes()
    assert old_record[:16] == names_digest("", names)  # the same names: only the record's size differs
    sidecar = tmp_path / "alpha.civitai.info"
    st = sidecar.stat()
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = _walk_with_stored_record(root, first.fingerprints, lambda d: old_record)
    assert [e.stem for e in again.entries] == ["alpha", "beta"] and again.partial == {}
    assert len(again.files[root]) == 16 + 8 * 4  # stored anew, 8 bytes a file


def test_a_records_value_changes_with_any_of_a_files_numbers_even_together() -> None:
    """Size, mtime and link flag changing at once by the same few bits do not cancel out (the size and
    flag are multiplied before they are mixed in)."""
    base = ("a.json", 1000, 1_700_000_000_000_000_000, False)
    changes = [
        (base[0], base[1] + 1, base[2] + 1, base[3]),
        (base[0], base[1] ^ 1, base[2] ^ 1, True),
        (base[0], base[1], base[2] ^ 1, True),
        (base[0], base[1] ^ 2, base[2] ^ 2, base[3]),
        (base[0], base[1] + 2**32, base[2], base[3]),
    ]
    for changed in changes:
        assert changed_files(_record([base]), _record([changed])) == [0], changed


def test_changed_names_pairs_files_by_name_and_refuses_names_that_are_not_the_records() -> None:
    """Added, removed and changed files are named; stored names that do not fit the record give None."""
    rows = [("a.json", 1, 5, False), ("a.safetensors", 9, 5, False), ("b.json", 2, 5, False)]
    now_rows = [("a.json", 1, 6, False), ("a.safetensors", 9, 5, False), ("c.json", 3, 5, False)]
    before, now = _record(rows), _record(now_rows)
    names = "\0".join(r[0] for r in rows).encode()
    now_names = "\0".join(r[0] for r in now_rows).encode()
    assert changed_names(before, pack_names(names), now, now_names, "") == {"a.json", "b.json", "c.json"}
    assert changed_names(before, pack_names(names), now, now_names, "*.bak\n") is None  # other ignore rules
    assert changed_names(before, pack_names(b"x\0y\0z"), now, now_names, "") is None  # not the record's names
    assert changed_names(before, pack_names(b"a.json"), now, now_names, "") is None
    assert changed_names(before, b"not zlib", now, now_names, "") is None
    assert changed_names(_record([]), pack_names(b""), now, now_names, "") == {"a.json", "a.safetensors", "c.json"}


def test_a_patch_gives_back_the_record_it_was_made_for_and_refuses_what_it_cannot_stand_for() -> None:
    """A patch holds the files that differ from the full record; past ``PATCH_FILES`` of them, or against
    a record of other names, there is none (the record is stored in full). A patch that does not fit
    its base gives no record (the folder is looked at in full)."""
    rows = [(f"m{i:02}.json", 100 + i, 5, False) for i in range(PATCH_FILES + 2)]
    base = _record(rows)
    one = _record([rows[0], (rows[1][0], 999, 6, False), *rows[2:]])
    patch = patch_for(base, one)
    assert patch is not None and len(patch) == 12 and patched(base, patch) == one
    assert patch_for(base, base) == b"" and patched(base, b"") == base
    many = _record([(name, size + 1, mtime, link) for name, size, mtime, link in rows])
    assert patch_for(base, many) is None  # every file differs: more than PATCH_FILES
    assert patch_for(_record(rows[1:]), one) is None and patch_for(None, one) is None  # other names; no base
    beyond = (len(rows)).to_bytes(4, "little") + b"\0" * 8  # a file past the record's last
    assert patched(base, beyond) is None and patched(base, patch[:-1]) is None and patched(None, patch) is None


def test_changed_files_agrees_with_comparing_every_file() -> None:
    """Random folders and random edits: the block comparison finds exactly the files that differ."""
    rng = random.Random(7)
    for _ in range(400):
        names = sorted({f"f{rng.randint(0, 10**6)}.json" for _ in range(rng.randint(0, 300))})
        rows = [(n, rng.randint(1, 10**6), rng.randint(10**18, 2 * 10**18), False) for n in names]
        edited = list(rows)
        for _ in range(rng.randint(0, 4) if rows else 0):
            i = rng.randrange(len(rows))
            name, size, mtime, link = edited[i]
            edited[i] = rng.choice(
                [(name, size + 1, mtime, link), (name, size, mtime + 1, link), (name, size, mtime, True)]
            )
        want = [i for i, (a, b) in enumerate(zip(rows, edited, strict=True)) if a != b]
        assert changed_files(_record(rows), _record(edited)) == want


def test_compare_answers_as_the_patched_record_compared_in_full_would() -> None:
    """``compare`` compares ``now`` with the base once; its answers equal those of the stored record
    built by ``patched`` and compared whole, and of ``patch_for``: for no record, a record in full, a
    patch (a patched file changed again, changed back to its base value, or not at all; a position
    patched twice), a patch that does not fit, a malformed base, and other names."""
    rng = random.Random(11)

    def edit(rows: list[tuple[str, int, int, bool]], count: int) -> list[tuple[str, int, int, bool]]:
        out = list(rows)
        for _ in range(count):
            i = rng.randrange(len(out))
            name, size, mtime, link = out[i]
            out[i] = rng.choice([(name, size + 1, mtime, link), (name, size, mtime + 1, link), rows[i]])
        return out

    cases = 0
    for _ in range(600):
        rows = [
            (f"f{i:04}.json", rng.randint(1, 10**6), rng.randint(10**18, 2 * 10**18), False)
            for i in range(rng.randint(1, 70))
        ]
        base = _record(rows)
        last = _record(edit(rows, rng.randint(0, 5)))  # what the last import saw
        patch = rng.choice([None, b"", patch_for(base, last), patch_for(base, last), b"\x01\x02"])
        if patch and rng.random() < 0.2:
            patch += patch[:12]  # the first position patched twice: the later value stands
        now_rows = edit(rows, rng.randint(0, 5))
        now = _record(now_rows) if rng.random() < 0.9 else _record(now_rows[1:])  # sometimes other names
        stored_base = base if rng.random() < 0.95 else base[:-1]  # sometimes a base that is no record
        before = None if patch is None else patched(stored_base, patch)
        want_places = changed_files(before, now) if before is not None else None
        got = compare(patch, stored_base, now)
        assert got == (before, want_places, patch_for(stored_base, now)), (rows, patch, now_rows)
        cases += before is not None and bool(patch) and want_places is not None
    assert cases > 50  # the patched path ran, not only the trivial ones
    assert compare(None, None, _record(rows)) == (None, None, None)


@pytest.mark.parametrize("suffix", [".civitai.json", ".api_info.json", ".metadata.json", ".cm-info.json"])
def test_a_longer_sidecar_suffix_gives_way_to_a_model_of_the_full_stem(tmp_path: Path, suffix: str) -> None:
    """``weird.civitai.json`` beside ``weird.civitai.safetensors`` is that model's A1111 file (as it was
    before ``.civitai.json`` became a sidecar name), also when the walk looks at only what changed."""
    stem = "weird" + suffix[: -len(".json")]
    write_safetensors(tmp_path / f"{stem}.safetensors")
    write_json(tmp_path / f"{stem}.json", {"activation text": "w"})
    write_safetensors(tmp_path / "plain.safetensors")
    write_json(tmp_path / f"plain{suffix}", {"activation text": "p"})
    root = resolve_root(tmp_path)
    grouped = {e.stem: ([m.name for m in e.models], [s.name for s in e.sidecars]) for e in walk(root).entries}
    assert grouped == {
        stem: ([f"{stem}.safetensors"], [f"{stem}.json"]),
        "plain": (["plain.safetensors"], [f"plain{suffix}"]),
    }

    def touch() -> None:  # the sidecar changes: only its stems are grouped again, to the full stem still
        path = tmp_path / f"{stem}.json"
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    again = _rewalk_after(root, touch)
    assert [(e.stem, [s.name for s in e.sidecars], [m.name for m in e.models]) for e in again.entries] == [
        (stem, [f"{stem}.json"], [f"{stem}.safetensors"])
    ]


@pytest.mark.parametrize("change", ["its-preview", "the-short-stems-preview"])
def test_a_partial_look_groups_a_longer_suffix_sidecar_as_a_full_look_does(tmp_path: Path, change: str) -> None:
    """A change to ``weird.civitai``'s preview must regroup its ``weird.civitai.json`` with it; a new
    ``weird.png`` must not make a model-less entry ``weird`` of that file."""
    write_safetensors(tmp_path / "weird.civitai.safetensors")
    write_json(tmp_path / "weird.civitai.json", {"activation text": "w"})
    (tmp_path / "weird.civitai.png").write_bytes(b"png")
    write_safetensors(tmp_path / "other.safetensors")
    root = resolve_root(tmp_path)

    def apply() -> None:
        if change == "its-preview":
            (tmp_path / "weird.civitai.png").write_bytes(b"a bigger png")
        else:
            (tmp_path / "weird.png").write_bytes(b"png")

    again = _rewalk_after(root, apply)
    grouped = [(e.stem, [m.name for m in e.models], [s.name for s in e.sidecars]) for e in again.entries]
    assert grouped == (
        [("weird.civitai", ["weird.civitai.safetensors"], ["weird.civitai.json"])] if change == "its-preview" else []
    )


def test_a_new_folder_counts_a_longer_suffix_sidecar_with_the_model_it_belongs_to(tmp_path: Path) -> None:
    """The count of a folder read later (progress, the readers' share) is that of its entries."""
    write_safetensors(tmp_path / "b" / "weird.civitai.safetensors")
    write_json(tmp_path / "b" / "weird.civitai.json", {"activation text": "w"})
    write_safetensors(tmp_path / "b" / "plain.safetensors")
    write_json(tmp_path / "b" / "plain.civitai.json", {"activation text": "p"})
    result = walk(resolve_root(tmp_path), known={}, defer_new=True)
    assert list(result.deferred.values()) == [2]


def test_a_signature_reads_back_as_the_files_it_was_made_of() -> None:
    """``signed_files`` is the one reader of ``Entry.signature``'s format: previews and unsafe names are no files
    (``signed_links_out`` reads the unsafe names)."""
    from lora_manager.entries import Entry, FileStat, Neighbours, signed_files, signed_links_out, signs_neighbour

    entry = Entry("/lib/a", "m")
    entry.models.append(FileStat("m.safetensors", 10, -5))
    entry.sidecars += [FileStat("m.json", 20, 7), FileStat("m:odd.civitai.info", 30, 8)]
    entry.previews.append("m.png")
    entry.unsafe.append(("m.pt", "link leads out of the library"))
    assert list(signed_files(entry.signature)) == [
        ("m", "m.safetensors", "10", "-5"),
        ("s", "m.json", "20", "7"),
        ("s", "m:odd.civitai.info", "30", "8"),
    ]
    assert signed_links_out(entry.signature) == ["m.pt"]
    lonely = Entry("/lib/a", "x")
    lonely.sidecars.append(FileStat("x.json", 1, 2))
    lonely.neighbours = Neighbours((FileStat("y.safetensors", 3, 4),))
    assert list(signed_files(lonely.signature)) == [("s", "x.json", "1", "2"), ("n", "y.safetensors", "3", "4")]
    assert signs_neighbour(lonely.signature, "y.safetensors") is True
    assert signs_neighbour(lonely.signature, "z.safetensors") is False


def test_past_32_neighbours_a_signature_holds_their_digest_not_their_list() -> None:
    """A folder of many sidecars without models beside many models without sidecars: each model-less
    entry's signature stays short (it was the whole list: S x M names stored), yet any change to any
    neighbour still changes it, and the digest is made once for the folder."""
    files = tuple(FileStat(f"m{i}.safetensors", i, 1000 + i) for i in range(MAX_LISTED_NEIGHBOURS + 1))
    shared = Neighbours(files)
    a, b = Entry("/lib/a", "x"), Entry("/lib/a", "y")
    for e in (a, b):
        e.sidecars.append(FileStat(f"{e.stem}.json", 1, 2))
        e.neighbours = shared
    assert a.signature.startswith("s:x.json:1:2|N:") and a.signature.endswith(f":{len(files)}")
    assert len(a.signature) < 100 and a.signature.split("|")[1] == b.signature.split("|")[1]
    assert signs_neighbour(a.signature, "m0.safetensors") is None  # the digest cannot tell
    touched = Neighbours((*files[:-1], FileStat(files[-1].name, files[-1].size, files[-1].mtime_ns + 1)))
    a.neighbours = touched
    assert a.signature != b.signature
    assert shared.by_name()["m3.safetensors"] is files[3] and list(shared.mtimes_since(1000 + len(files) - 3)) == [
        1000 + len(files) - 1,
        1000 + len(files) - 2,
    ]


def test_entries_survive_the_trip_to_the_reader_process(tmp_path: Path) -> None:
    """Entries go to the reader pickled: every field comes back, and a folder's neighbours stay one object."""
    import pickle

    lib = tmp_path / "lib"
    for name in ("lonely.safetensors", "other.safetensors", "a.json", "b.json", "c.safetensors", "c.preview.png"):
        write_json(lib / name, {}) if name.endswith(".json") else write_safetensors(lib / name)
    entries = walk(resolve_root(str(lib))).entries
    back: list[Entry] = pickle.loads(pickle.dumps(entries, pickle.HIGHEST_PROTOCOL))
    fields = ("directory", "stem", "key", "models", "sidecars", "previews", "unsafe", "signature")
    assert [[getattr(e, f) for f in fields] for e in back] == [[getattr(e, f) for f in fields] for e in entries]
    model_less = [e for e in back if not e.models]
    assert [e.stem for e in model_less] == ["a", "b"] and model_less[0].neighbours is model_less[1].neighbours
    assert [f.name for f in model_less[0].neighbours] == ["c.safetensors", "lonely.safetensors", "other.safetensors"]
    assert back[2].previews == ["c.preview.png"] and back[2].models == [
        FileStat("c.safetensors", *_stat(lib / "c.safetensors"))
    ]


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns

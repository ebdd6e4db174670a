"""Hashing model files: the one-pass hashes, and the service's selection, storage and interruption."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from lora_manager.db.schema import model_file
from lora_manager.services.file_hashes import CHUNK, FileChanged, hash_file
from lora_manager.services.hashing import HashOptions, HashReport, run_hashing
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import NOT_REGULAR, civitai_version, replace_with_not_regular, write_model, write_safetensors
from tests.waiting import answers_at_once


def tensor_bytes_of(path: Path) -> bytes:
    """The bytes after the 8+N header, read the plain way."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return data[8 + length :]


def stored(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        return {r.path: dict(r._mapping) for r in conn.execute(select(model_file))}


def library(root: Path, count: int, tensor_bytes: int = 4096) -> list[Path]:
    """``count`` catalogued LoRAs with distinct weights; returns their model files."""
    return [
        write_model(root, f"m{i}", civitai_version(f"Model {i}", file_name=f"m{i}.safetensors"), ".civitai.info")
        if i % 2
        else write_safetensors(root / f"m{i}.safetensors", {"ss_output_name": f"m{i}"}, tensor_bytes + i)
        for i in range(count)
    ]


@pytest.mark.parametrize("metadata_bytes", [100, 3 * CHUNK], ids=["small-header", "header-over-3-chunks"])
def test_autov3_computed_over_tensor_data_equals_sha256_of_bytes_after_header(
    tmp_path: Path, metadata_bytes: int
) -> None:
    """One read gives the file's SHA256 and the SHA256 of ``file[8+N:]``, wherever the header ends."""
    path = write_safetensors(tmp_path / "a.safetensors", {"notes": "x" * metadata_bytes}, tensor_bytes=CHUNK + 4097)
    result = hash_file(str(path)).as_row(str(path))
    expected = hashlib.sha256(tensor_bytes_of(path)).hexdigest()
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (result["tensor_sha256"], result["autov3"], result["autov3_source"]) == (expected, expected[:12], "computed")
    assert result["autov2"] == result["sha256"][:10]


def test_autov3_recorded_in_the_header_is_taken_without_a_second_hash(tmp_path: Path) -> None:
    """``sshs_model_hash`` gives AutoV3 (source ``header``); ``always`` hashes the tensor data anyway."""
    path = write_safetensors(tmp_path / "a.safetensors", {"sshs_model_hash": "AB" * 32}, tensor_bytes=8192)
    plain = hash_file(str(path)).as_row(str(path))
    assert (plain["autov3"], plain["autov3_source"], plain["tensor_sha256"]) == ("ab" * 6, "header", None)
    forced = hash_file(str(path), tensor="always").as_row(str(path))
    assert forced["tensor_sha256"] == hashlib.sha256(tensor_bytes_of(path)).hexdigest()
    assert forced["autov3_source"] == "computed"


@pytest.mark.parametrize(
    ("name", "content"),
    [("a.pt", b"pickle" * 1000), ("b.safetensors", b"\xff" * 64), ("c.safetensors", b"")],
    ids=["pickle", "bad-header", "empty"],
)
def test_files_without_a_safetensors_header_get_sha256_only(tmp_path: Path, name: str, content: bytes) -> None:
    """A pickle is never parsed, and a broken header yields no AutoV3 rather than a wrong one."""
    path = tmp_path / name
    path.write_bytes(content)
    result = hash_file(str(path))
    assert result.sha256 == hashlib.sha256(content).hexdigest()
    assert (result.tensor_sha256, result.header_autov3) == (None, None)


def test_a_file_written_to_while_it_is_read_is_refused(tmp_path: Path) -> None:
    """The stat before and after must agree: a file growing under the reader yields no hash."""
    path = write_safetensors(tmp_path / "a.safetensors", {}, tensor_bytes=3 * CHUNK)

    def append(_n: int) -> None:
        with open(path, "ab") as f:
            f.write(b"more")

    with pytest.raises(FileChanged):
        hash_file(str(path), on_bytes=append)


def test_hashing_stores_lowercase_hashes_with_the_stat_they_describe(engine: Engine, tmp_path: Path) -> None:
    """Catalogued files and orphans alike get sha256, AutoV3 and the size/mtime they were read at."""
    files = library(tmp_path / "lib", 4)
    run_import(engine, ImportOptions(roots=[str(tmp_path / "lib")]))
    report = run_hashing(engine, HashOptions(threads=2))
    assert (len(report.hashed), report.current, report.problems) == (4, 0, [])
    rows = stored(engine)
    for path in files:
        row = rows[str(path)]
        st = path.stat()
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["tensor_sha256"] == hashlib.sha256(tensor_bytes_of(path)).hexdigest()
        assert (row["hashed_size"], row["hashed_mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        assert row["hashed_at"] is not None and row["autov3_source"] == "computed"


def test_interrupted_hashing_keeps_completed_work_and_the_next_run_resumes(engine: Engine, tmp_path: Path) -> None:
    """A stop after the first stored batch keeps that batch; the next run hashes only the rest."""
    lib = tmp_path / "lib"
    library(lib, 6)
    run_import(engine, ImportOptions(roots=[str(lib)]))

    def hashed_rows() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(model_file.c.sha256.is_not(None))).scalar_one())

    first = run_hashing(engine, HashOptions(threads=1, batch_files=1), should_stop=lambda: hashed_rows() >= 1)
    assert first.interrupted
    kept = {p: r["hashed_at"] for p, r in stored(engine).items() if r["sha256"]}
    assert 1 <= len(kept) == len(first.hashed) < 6
    second = run_hashing(engine, HashOptions(threads=1))
    assert not second.interrupted
    assert (len(second.hashed), second.current) == (6 - len(kept), len(kept))
    assert {p: r["hashed_at"] for p, r in stored(engine).items() if p in kept} == kept


def test_a_file_changed_since_import_is_restatted_and_rehashed(engine: Engine, tmp_path: Path) -> None:
    """``lora hash`` compares with the disk, not with the catalog's last import."""
    lib = tmp_path / "lib"
    (path,) = library(lib, 1)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    run_hashing(engine, HashOptions())
    path.write_bytes(path.read_bytes() + b"tail")
    report = run_hashing(engine, HashOptions())
    row = stored(engine)[str(path)]
    assert len(report.hashed) == 1
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (row["size"], row["hashed_size"]) == (path.stat().st_size, path.stat().st_size)


def test_a_vanished_file_is_skipped_reported_and_marked_missing(engine: Engine, tmp_path: Path) -> None:
    """A file gone since the import is no failure: it is reported and flagged, the rest is hashed."""
    lib = tmp_path / "lib"
    gone, kept = library(lib, 2)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    gone.unlink()
    report = run_hashing(engine, HashOptions())
    assert (report.vanished, report.problems, len(report.hashed)) == ([str(gone)], [], 1)
    assert stored(engine)[str(gone)]["missing_since"] is not None
    assert stored(engine)[str(kept)]["sha256"] is not None


def test_a_file_known_to_be_missing_is_not_reported_again(engine: Engine, tmp_path: Path) -> None:
    """A model file the catalog marked missing (by ``lora hash`` or an import) is said to vanish once, not every run."""
    lib = tmp_path / "lib"
    gone, _kept, deleted = library(lib, 3)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    gone.unlink()
    assert run_hashing(engine, HashOptions()).vanished == [str(gone)]
    deleted.unlink()
    run_import(engine, ImportOptions(roots=[str(lib)]))  # marks its model_file row missing
    assert stored(engine)[str(deleted)]["missing_since"] is not None
    again = run_hashing(engine, HashOptions())
    assert (again.vanished, again.problems, again.current) == ([], [], 1)


def test_tensor_only_pass_keeps_the_sha256_and_adds_the_tensor_hash(engine: Engine, tmp_path: Path) -> None:
    """``tensor='always'`` later reads a header-AutoV3 file again for its tensor hash only."""
    lib = tmp_path / "lib"
    path = write_safetensors(lib / "a.safetensors", {"sshs_model_hash": json.dumps("0" * 64)[1:-1]}, 4096)
    (lib / "b.safetensors").write_bytes(b"\xff" * 64)  # no header: nothing more to compute for it
    run_import(engine, ImportOptions(roots=[str(lib)]))
    run_hashing(engine, HashOptions())
    before = stored(engine)[str(path)]
    report = run_hashing(engine, HashOptions(tensor="always"))
    after = stored(engine)[str(path)]
    assert (len(report.hashed), report.current) == (1, 1)
    assert (after["sha256"], after["hashed_at"]) == (before["sha256"], before["hashed_at"])
    assert after["tensor_sha256"] == hashlib.sha256(tensor_bytes_of(path)).hexdigest()
    assert len(run_hashing(engine, HashOptions(tensor="always")).hashed) == 0


def test_a_model_file_that_cannot_be_stated_fails_that_file_only(engine: Engine, tmp_path: Path) -> None:
    """An unusable path (a link loop: the import cannot stat it either) is a per-file problem; the rest is hashed."""
    lib = tmp_path / "lib"
    broken, fine = library(lib, 2)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    broken.unlink()
    broken.symlink_to(broken.name)
    report = run_hashing(engine, HashOptions())
    assert [(p.path, p.kind) for p in report.problems] == [(str(broken), "unreadable")]
    assert [h["path"] for h in report.hashed] == [str(fine)]


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_model_file_replaced_by_no_regular_file_after_the_import_vanishes_once(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    """A FIFO, device or folder where a model file was is gone, as if deleted: said once, marked missing, unopened."""
    lib = tmp_path / "lib"
    orphan, catalogued = library(lib, 2)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    replace_with_not_regular(orphan, kind)
    report = answers_at_once(lambda: run_hashing(engine, HashOptions()), "lora hash")
    assert isinstance(report, HashReport)
    assert (report.vanished, report.problems, [h["path"] for h in report.hashed]) == (
        [str(orphan)],
        [],
        [str(catalogued)],
    )
    assert stored(engine)[str(orphan)]["missing_since"] is not None
    again = run_hashing(engine, HashOptions())
    assert (again.vanished, again.problems, again.current) == ([], [], 1)


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_model_file_the_import_saw_turn_into_no_regular_file_stays_quietly_missing(
    engine: Engine, tmp_path: Path, kind: str
) -> None:
    """After an import marked it missing (with a sidecar or without), ``lora hash`` only looks for it, on every run."""
    lib = tmp_path / "lib"
    orphan, catalogued = library(lib, 2)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    for path in (orphan, catalogued):
        replace_with_not_regular(path, kind)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    assert all(row["missing_since"] is not None for row in stored(engine).values())
    for _ in range(2):
        report = answers_at_once(lambda: run_hashing(engine, HashOptions()), "lora hash")
        assert isinstance(report, HashReport)
        assert (report.vanished, report.problems, report.hashed) == ([], [], [])


def test_a_model_file_whose_folder_became_a_file_vanishes_once(engine: Engine, tmp_path: Path) -> None:
    """A folder above the file replaced by a file (ENOTDIR) is no file there either: said once, then quiet."""
    lib = tmp_path / "lib"
    (model,) = library(lib / "sub", 1)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    shutil.rmtree(lib / "sub")
    (lib / "sub").write_bytes(b"not a folder")
    report = run_hashing(engine, HashOptions())
    assert (report.vanished, report.problems) == ([str(model)], [])
    assert stored(engine)[str(model)]["missing_since"] is not None
    again = run_hashing(engine, HashOptions())
    assert (again.vanished, again.problems) == ([], [])


def test_a_model_file_swapped_for_a_fifo_after_the_stat_vanishes_unopened(engine: Engine, tmp_path: Path) -> None:
    """Swapped between the plan's stat and the open, it is reported as vanished, not as a failure, and not waited on."""
    lib = tmp_path / "lib"
    big = write_safetensors(lib / "big.safetensors", {"ss_output_name": "big"}, 8192)
    small = write_safetensors(lib / "small.safetensors", {"ss_output_name": "small"}, 64)
    run_import(engine, ImportOptions(roots=[str(lib)]))

    def swap(_: object) -> None:  # one thread, largest first: the small file is not opened yet
        if not small.is_fifo():
            replace_with_not_regular(small, "fifo")

    report = answers_at_once(lambda: run_hashing(engine, HashOptions(threads=1), progress=swap), "lora hash")
    assert isinstance(report, HashReport)
    assert (report.vanished, report.problems, [h["path"] for h in report.hashed]) == ([str(small)], [], [str(big)])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_reported_and_the_rest_hashed(engine: Engine, tmp_path: Path) -> None:
    """Permission denied is a per-file problem, not the end of the run."""
    lib = tmp_path / "lib"
    locked, fine = library(lib, 2)
    run_import(engine, ImportOptions(roots=[str(lib)]))
    locked.chmod(0)
    try:
        report = run_hashing(engine, HashOptions())
    finally:
        locked.chmod(0o644)
    assert [p.path for p in report.problems] == [str(locked)]
    assert [h["path"] for h in report.hashed] == [str(fine)]

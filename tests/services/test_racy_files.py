"""Files written again within the tick of their mtime (which keeps it): read only once the tick is over.

Size-and-mtime change detection never opens a file whose size and mtime are as stored. On a
file system that keeps mtimes in whole seconds (FAT, ext3, HFS+, many SMB servers), a file
rewritten at the same size within the second after the import read it would keep its old
content in the catalog for good. These tests make such a file with an mtime of whole seconds
and rewrite it in place, same size and same mtime, while the import (or ``lora hash``) runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

from lora_manager.mtimes import COARSE_TICK_NS, FINE_TICK_NS, SECOND_NS, settled_at, wait_until_settled
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.file_hashes import hash_file
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import civitai_model, write_model

NOW = 1_700_000_000 * SECOND_NS + 123_456_789


def test_an_mtime_is_settled_once_its_tick_is_over() -> None:
    fine = NOW - 10_000_000  # written 10 ms ago, at a sub-second mtime
    assert settled_at(fine, NOW) == fine + FINE_TICK_NS
    assert settled_at(NOW - FINE_TICK_NS, NOW) == NOW  # its tick is over
    whole = NOW - NOW % SECOND_NS  # a coarse file system: whole seconds, maybe even ones
    assert settled_at(whole, NOW) == whole + COARSE_TICK_NS
    assert settled_at(whole - COARSE_TICK_NS, NOW) == NOW
    assert settled_at(NOW + SECOND_NS // 2, NOW) == NOW + SECOND_NS // 2 + FINE_TICK_NS  # a clock a little ahead
    assert settled_at(NOW + 3600 * SECOND_NS, NOW) == NOW  # a clock set wrong: nothing to wait for
    assert settled_at(-5, NOW) == NOW  # a wrapped mtime past 2262 (see listings.int64)


def test_waiting_ends_after_the_tick_of_a_file_just_written(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{}", encoding="utf-8")
    mtime = path.stat().st_mtime_ns
    wait_until_settled([mtime])
    assert time.time_ns() >= settled_at(mtime, mtime)


def _whole_second_file(path: Path, content: bytes) -> int:
    """``content`` at ``path`` with an mtime of the current whole second, as a coarse file system gives it."""
    path.write_bytes(content)
    mtime = time.time_ns() // SECOND_NS * SECOND_NS
    os.utime(path, ns=(mtime, mtime))
    return mtime


def _rewrite_soon(path: Path, content: bytes, mtime: int) -> threading.Thread:
    """Rewrite ``path`` in place 0.2 s from now, same size, and put its mtime back (one tick, one mtime)."""
    assert len(content) == path.stat().st_size

    def rewrite() -> None:
        time.sleep(0.2)
        with path.open("r+b") as f:
            f.write(content)
        os.utime(path, ns=(mtime, mtime))

    thread = threading.Thread(target=rewrite)
    thread.start()
    return thread


def test_a_sidecar_rewritten_in_its_mtimes_tick_is_imported_as_rewritten(engine: Engine, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    write_model(lib, "a")
    first, second = (
        json.dumps(civitai_model("Alpha", file_name="a.safetensors", tags=[tag])).encode() for tag in ("aaaa", "bbbb")
    )
    sidecar = lib / "a.json"
    mtime = _whole_second_file(sidecar, first)
    writer = _rewrite_soon(sidecar, second, mtime)
    try:
        report = run_import(engine, ImportOptions(roots=[str(lib)]))
    finally:
        writer.join()
    assert report.counts["new"] == 1
    assert sidecar.stat().st_mtime_ns == mtime  # nothing a stat shows tells the two contents apart
    assert [r["tags"] for r in list_adapters(engine, ListQuery())] == [["bbbb"]]
    again = run_import(engine, ImportOptions(roots=[str(lib)]))
    assert (again.counts["unchanged"], again.counts["updated"]) == (1, 0)


def test_a_model_file_rewritten_in_its_mtimes_tick_is_hashed_as_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    mtime = _whole_second_file(path, b"\x00" * 4096)
    writer = _rewrite_soon(path, b"\x01" * 4096, mtime)
    try:
        result = hash_file(str(path))
    finally:
        writer.join()
    assert result.as_row(str(path))["sha256"] == hashlib.sha256(b"\x01" * 4096).hexdigest()


def test_a_sidecar_that_changed_size_since_the_walk_is_read_as_it_is_now(tmp_path: Path) -> None:
    """The walk's size sizes the read, not what is read: a sidecar that grew since is read in full
    up to the limit (past it, refused as too large), and one that shrank is read as it is."""
    from lora_manager.discovery import walk
    from lora_manager.paths import resolve_root
    from lora_manager.services.reading import read_entry

    lib = tmp_path / "lib"
    for stem in ("grew", "past", "shrank"):
        write_model(lib, stem, civitai_model(stem.title(), file_name=f"{stem}.safetensors"))
    root = resolve_root(lib)
    entries = {e.stem: e for e in walk(root).entries}
    limit = 64 * 1024
    longer = civitai_model("Grew", file_name="grew.safetensors", description="x" * 20_000)
    (lib / "grew.json").write_text(json.dumps(longer), encoding="utf-8")
    (lib / "past.json").write_text(json.dumps({**longer, "description": "x" * 2 * limit}), encoding="utf-8")
    (lib / "shrank.json").write_text(json.dumps(civitai_model("S", file_name="shrank.safetensors")), encoding="utf-8")
    grew, past, shrank = (read_entry(entries[s], root, limit) for s in ("grew", "past", "shrank"))
    assert grew.status == "ok" and grew.row is not None and "x" * 20_000 in grew.row["description"]
    assert [(p.kind, p.message) for p in past.problems] == [("too_large", f"over the sidecar limit of {limit} bytes")]
    assert shrank.status == "ok" and shrank.row is not None and shrank.row["name"] == "S"

"""Reading changed entries: in this process or in reader processes, the same results in the same order."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from lora_manager.db import open_catalog
from lora_manager.discovery import walk
from lora_manager.entries import Entry
from lora_manager.paths import resolve_root
from lora_manager.services import batching
from lora_manager.services.batching import POOL_CHUNK, read_batches
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.importer import ImportOptions, run_import
from lora_manager.services.results import EntryResult
from tests.builders import civitai_model, write_json, write_model


def _library(root: Path, count: int) -> Path:
    for i in range(count):
        write_model(root / f"f{i % 3}", f"m{i:03}", civitai_model(f"Model {i}", file_name=f"m{i:03}.safetensors"))
    write_json(root / "f0" / "lonely.json", civitai_model("Lonely"))  # a sidecar without its model
    return root


def test_reader_processes_give_what_this_process_gives_in_order_and_in_batches(tmp_path: Path) -> None:
    """Two reader processes, read ahead two batches deep: the same results, in key order, batch by batch."""
    root = resolve_root(_library(tmp_path / "lib", 2 * POOL_CHUNK + 7))
    entries = walk(root).entries
    alone = list(read_batches(list(entries), len(entries), root, 150, 1 << 20, workers=1))
    pooled = list(read_batches(list(entries), len(entries), root, 150, 1 << 20, workers=2))
    assert [len(b) for b in alone] == [150, 150, 108]
    assert [len(b) for b in pooled] == [200, 200, 8]  # whole chunks of POOL_CHUNK make up a batch
    flat = [r for b in pooled for r in b]
    assert [(r.key, r.status, r.row, r.problems) for r in flat] == [
        (r.key, r.status, r.row, r.problems) for b in alone for r in b
    ]
    assert [r.key for r in flat] == sorted(e.key for e in entries)


def test_a_batch_ends_once_its_sidecars_hold_the_byte_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed, a sidecar takes tens of times its size: a batch ends at ``BATCH_BYTES`` of sidecars (a reader's
    chunk at a quarter of it), in this process and in reader processes alike, with the same results in order."""
    root = resolve_root(_library(tmp_path / "lib", 30))
    entries = walk(root).entries
    size = max(sum(f.size for f in e.sidecars) for e in entries)
    budget = 8 * size
    monkeypatch.setattr(batching, "BATCH_BYTES", budget)
    held = {e.key: sum(f.size for f in e.sidecars) for e in entries}
    alone = list(read_batches(list(entries), len(entries), root, 150, 1 << 20, workers=1))
    pooled = list(read_batches(list(entries), len(entries), root, 150, 1 << 20, workers=2))
    assert len(alone) > 1 and all(sum(held[r.key] for r in b[:-1]) < budget for b in alone)
    assert len(pooled) > 1 and all(sum(held[r.key] for r in b) < budget + budget // 4 + size for b in pooled)
    assert [r.key for b in pooled for r in b] == [r.key for b in alone for r in b] == sorted(e.key for e in entries)


def test_an_import_read_by_reader_processes_equals_one_read_here(tmp_path: Path) -> None:
    """The catalog does not depend on where entries were read or how batches fell."""
    lib = _library(tmp_path / "lib", 40)
    records = []
    for name, workers, batch in (("here.db", 1, 1000), ("pooled.db", 2, 7)):
        engine = open_catalog(str(tmp_path / name))
        try:
            report = run_import(engine, ImportOptions(roots=[str(lib)], workers=workers, batch_size=batch))
            assert report.counts["new"] == 40 and report.counts["failed"] == 1
            rows = list_adapters(engine, ListQuery())
            volatile = ("id", "created_at", "updated_at", "last_ingested_at")
            records.append([{k: v for k, v in r.items() if k not in volatile} for r in rows])
        finally:
            engine.dispose()
    assert records[0] == records[1]


def test_results_already_read_take_their_place_among_the_readers_results(tmp_path: Path) -> None:
    """Entries read ahead (``ready``) are not read again, here or by reader processes, and keep their place."""
    root = resolve_root(_library(tmp_path / "lib", POOL_CHUNK + 50))
    entries = walk(root).entries
    alone = [r for b in read_batches(list(entries), len(entries), root, 150, 1 << 20, workers=1) for r in b]
    ahead = {r.key: r for r in alone[::3]}
    asked: list[str] = []

    def ready(entry: Entry) -> EntryResult | None:
        asked.append(entry.key)
        return ahead.get(entry.key)

    for workers in (1, 2):
        asked.clear()
        flat = [r for b in read_batches(list(entries), len(entries), root, 150, 1 << 20, workers, ready) for r in b]
        assert [(r.key, r.status, r.row) for r in flat] == [(r.key, r.status, r.row) for r in alone]
        assert all(flat[i] is ahead[alone[i].key] for i in range(0, len(alone), 3))  # taken, not read again
        assert asked == [e.key for e in entries]


def test_reader_processes_start_from_the_parallel_threshold_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README says: a large import is read by a pool of readers, a small one in this process."""
    root = resolve_root(_library(tmp_path / "lib", 24))
    entries = walk(root).entries
    monkeypatch.setattr(batching, "PARALLEL_THRESHOLD", 20)
    monkeypatch.setattr(batching.os, "cpu_count", lambda: 2)
    for count, pooled in ((len(entries), True), (19, False)):
        before = set(multiprocessing.active_children())
        batches = read_batches(list(entries[:count]), count, root, 10, 1 << 20)
        first = next(batches)
        started = set(multiprocessing.active_children()) - before
        assert bool(started) is pooled
        assert len(first) + sum(len(b) for b in batches) == count

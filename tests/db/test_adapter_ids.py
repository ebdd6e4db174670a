"""``upsert_adapters`` answers each row's id: what the entries it writes next point at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from lora_manager.db import repository as repo
from lora_manager.db.key_ranges import CHUNK
from lora_manager.db.rows import adapter_row, record_row
from lora_manager.db.schema import adapter
from lora_manager.models import AdapterRecord

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def _row(name: str, version: str | None, key: str) -> dict[str, Any]:
    record = AdapterRecord(name=name, version=version, file_path=f"/lib/{key}.safetensors")
    return adapter_row(record_row(record), f"/lib/{key}", NOW)


def test_new_rows_past_a_chunk_of_names_and_rows_already_there_each_get_their_own_id(engine: Engine) -> None:
    """Names repeat across versions, one row has no version, and one identity exists already."""
    with engine.begin() as conn:
        kept = repo.upsert_adapters(conn, [_row("Model 0", "v1", "kept")], all_new=True)["/lib/kept"]
    rows = [_row(f"Model {i // 2}", f"v{i % 2}", f"m{i}") for i in range(2 * CHUNK + 10)]
    rows.append(_row("Solo", None, "solo"))
    with engine.begin() as conn:
        ids = repo.upsert_adapters(conn, rows, all_new=True)
    with engine.connect() as conn:
        stored = {(n, v): i for i, n, v in conn.execute(select(adapter.c.id, adapter.c.name, adapter.c.version_key))}
    assert len(ids) == len(rows) and len(set(ids.values())) == len(rows)
    for row in rows:
        assert ids[row["entry_key"]] == stored[(row["name"], row["version_key"])]
    assert ids["/lib/m1"] == kept  # ("Model 0", "v1"): the row the first import made, updated
    assert ids["/lib/solo"] == stored[("Solo", "")]

"""The stored listing of a folder, read straight from the driver on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Engine

from lora_manager.db import repository as repo


def test_a_stored_listing_is_read_back_as_saved_and_an_unknown_or_stale_folder_has_none(engine: Engine) -> None:
    """The walk compares a changed folder with this text; None makes it look at the whole folder."""
    listing = '[["a.json",12,1700000000000000000,false],["é ✓.safetensors",3,1,true]]'
    with engine.begin() as conn:
        repo.save_directories(
            conn,
            [
                {"path": "/lib/kept", "fingerprint": "f1", "listing": listing, "counts": {"ok": 1}},
                {"path": "/lib/stale", "fingerprint": "", "listing": None, "counts": {}},
            ],
        )
    with engine.connect() as conn:
        read = repo.listing_reader(conn)
        assert [read(p) for p in ("/lib/kept", "/lib/stale", "/lib/unknown", "/lib/kept")] == [
            listing,
            None,
            None,
            listing,
        ]
        assert read("/lib/kept' OR '1'='1") is None  # a parameter, never SQL text
        assert {read("/lib/kept") for _ in range(5)} == {listing}  # psycopg prepares it after five runs

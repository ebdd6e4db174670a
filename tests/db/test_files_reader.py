"""The stored files record of a folder, read straight from the driver on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Engine

from lora_manager.db import repository as repo


def test_a_stored_record_is_read_back_as_saved_and_an_unknown_or_stale_folder_has_none(engine: Engine) -> None:
    """The walk compares a changed folder with these bytes; None makes it look at the whole folder."""
    record = bytes(range(256)) + b"\x00" * 24  # any byte, NUL included, comes back as it went in
    with engine.begin() as conn:
        repo.save_directories(
            conn,
            [
                {"path": "/lib/kept", "fingerprint": "f1", "files": record, "counts": {"ok": 1}},
                {"path": "/lib/stale", "fingerprint": "", "files": None, "counts": {}},
            ],
        )
    with engine.connect() as conn:
        read = repo.files_reader(conn)
        assert [read(p) for p in ("/lib/kept", "/lib/stale", "/lib/unknown", "/lib/kept")] == [
            record,
            None,
            None,
            record,
        ]
        assert read("/lib/kept' OR '1'='1") is None  # a parameter, never SQL text
        assert {read("/lib/kept") for _ in range(5)} == {record}  # psycopg prepares it after five runs
    with engine.begin() as conn:
        repo.stale_directories(conn, ["/lib/kept"])
    with engine.connect() as conn:
        assert repo.files_reader(conn)("/lib/kept") is None

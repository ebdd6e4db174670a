"""The stored files record and names of a folder, read straight from the driver on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Engine

from lora_manager.db import directories


def test_a_stored_record_and_names_are_read_back_as_saved_and_an_unknown_or_stale_folder_has_none(
    engine: Engine,
) -> None:
    """The walk compares a changed folder with these bytes; None makes it look at the whole folder."""
    record = bytes(range(256)) + b"\x00" * 24  # any byte, NUL included, comes back as it went in
    with engine.begin() as conn:
        directories.save_directories(
            conn,
            [
                {"path": "/lib/kept", "fingerprint": "f1", "files": record, "names": b"n\x00", "counts": {"ok": 1}},
                {"path": "/lib/stale", "fingerprint": "", "files": None, "names": None, "counts": {}},
            ],
        )
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        read = stored.record
        assert [read(p) for p in ("/lib/kept", "/lib/stale", "/lib/unknown", "/lib/kept")] == [
            record,
            None,
            None,
            record,
        ]
        assert read("/lib/kept' OR '1'='1") is None  # a parameter, never SQL text
        assert {read("/lib/kept") for _ in range(5)} == {record}  # psycopg prepares it after five runs
        assert [stored.names(p) for p in ("/lib/kept", "/lib/stale", "/lib/unknown")] == [b"n\x00", None, None]
    with engine.begin() as conn:  # a row without names keeps the stored ones; a stale one has none
        directories.save_directories(conn, [{"path": "/lib/kept", "fingerprint": "f2", "files": b"r2", "counts": {}}])
    with engine.connect() as conn:
        assert (
            directories.StoredDirectories(conn).record("/lib/kept"),
            directories.StoredDirectories(conn).names("/lib/kept"),
        ) == (
            b"r2",
            b"n\x00",
        )
    with engine.begin() as conn:
        directories.stale_directories(conn, ["/lib/kept"])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        assert (stored.record("/lib/kept"), stored.names("/lib/kept")) == (None, None)

"""The stored files record and names of a folder, read straight from the driver on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Engine

from lora_manager.db import directories
from lora_manager.listings import patch_for


def _record(*values: bytes) -> bytes:
    """A files record: a 16-byte names digest, then 8 bytes a file."""
    return b"D" * 16 + b"".join(v.ljust(8, b"\x00") for v in values)


def test_a_stored_record_and_names_are_read_back_as_saved_and_an_unknown_or_stale_folder_has_none(
    engine: Engine,
) -> None:
    """The walk compares a changed folder with these bytes; None makes it look at the whole folder."""
    record = _record(bytes(range(8)), b"\x00" * 8, bytes(range(248, 256)))  # NUL included, as it went in
    with engine.begin() as conn:
        directories.save_directories(
            conn,
            [
                {
                    "path": "/lib/kept",
                    "fingerprint": "f1",
                    "patch": b"",
                    "files": record,
                    "names": b"n\x00",
                    "counts": {},
                },
                {"path": "/lib/stale", "fingerprint": "", "patch": None, "names": None, "counts": {}},
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
        assert (stored.base("/lib/kept"), stored.base("/lib/unknown")) == (record, None)


def test_a_patch_is_read_back_applied_to_the_full_record_and_a_full_record_replaces_it(engine: Engine) -> None:
    """A row without ``files`` keeps the full record and the names stored; the patch says what differs."""
    base = _record(b"a", b"b", b"c")
    with engine.begin() as conn:
        row = {"path": "/lib/kept", "fingerprint": "f1", "patch": b"", "files": base, "names": b"n", "counts": {}}
        directories.save_directories(conn, [row])
    edited = _record(b"a", b"B", b"c")
    patch = patch_for(base, edited)
    assert patch is not None and len(patch) == 12  # the second file alone
    with engine.begin() as conn:
        directories.save_directories(conn, [{"path": "/lib/kept", "fingerprint": "f2", "patch": patch, "counts": {}}])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        assert (stored.record("/lib/kept"), stored.base("/lib/kept"), stored.names("/lib/kept")) == (edited, base, b"n")
    again = _record(b"A", b"B", b"c")
    with engine.begin() as conn:  # stored in full again, the names as they were
        row = {"path": "/lib/kept", "fingerprint": "f3", "patch": b"", "files": again, "counts": {}}
        directories.save_directories(conn, [row])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        assert (stored.record("/lib/kept"), stored.base("/lib/kept"), stored.names("/lib/kept")) == (again, again, b"n")
    with engine.begin() as conn:  # a patch that is not one: no record, and a full look
        directories.save_directories(conn, [{"path": "/lib/kept", "fingerprint": "f4", "patch": b"xx", "counts": {}}])
    with engine.connect() as conn:
        assert directories.StoredDirectories(conn).record("/lib/kept") is None
    with engine.begin() as conn:
        directories.stale_directories(conn, ["/lib/kept"])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        assert (stored.record("/lib/kept"), stored.names("/lib/kept")) == (None, None)

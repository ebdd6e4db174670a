"""The stored files record and names of a folder, read straight from the driver on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Engine

from lora_manager.db import directories
from lora_manager.listings import patch_for, patched


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
        assert (stored.stored("/lib/kept")[1], stored.stored("/lib/unknown")[1]) == (record, None)


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
        kept = (stored.record("/lib/kept"), stored.stored("/lib/kept")[1], stored.names("/lib/kept"))
        assert kept == (edited, base, b"n")
    again = _record(b"A", b"B", b"c")
    with engine.begin() as conn:  # stored in full again, the names as they were
        row = {"path": "/lib/kept", "fingerprint": "f3", "patch": b"", "files": again, "counts": {}}
        directories.save_directories(conn, [row])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        kept = (stored.record("/lib/kept"), stored.stored("/lib/kept")[1], stored.names("/lib/kept"))
        assert kept == (again, again, b"n")
    with engine.begin() as conn:  # a patch that is not one: no record, and a full look
        directories.save_directories(conn, [{"path": "/lib/kept", "fingerprint": "f4", "patch": b"xx", "counts": {}}])
    with engine.connect() as conn:
        assert directories.StoredDirectories(conn).record("/lib/kept") is None
    with engine.begin() as conn:
        directories.stale_directories(conn, ["/lib/kept"])
    with engine.connect() as conn:
        stored = directories.StoredDirectories(conn)
        assert (stored.record("/lib/kept"), stored.names("/lib/kept")) == (None, None)


def _record_and_base(stored: directories.StoredDirectories, path: str) -> tuple[bytes | None, bytes | None]:
    """The record the last import stored for ``path`` and the base it patches, from one question."""
    patch, base = stored.stored(path)
    return (patched(base, patch) if patch is not None else None), base


def test_past_a_few_folders_the_records_under_the_root_are_read_at_once_and_answer_as_one_by_one(
    engine: Engine,
) -> None:
    """A re-import after scattered edits asks for hundreds of records: one query then, the same answers.

    The folders around the root's name (``/lib2``, ``/lib-x``, ``/lib`` itself) tell the range apart
    from a prefix; a folder outside the root is still answered.
    """
    base = _record(b"a", b"b", b"c")
    edited = _record(b"a", b"B", b"c")
    patch = patch_for(base, edited)
    rows: list[dict[str, object]] = []
    for i in range(directories.StoredDirectories.ONE_BY_ONE + 8):
        path = f"/lib/d{i:02d}"
        if i % 3 == 0:
            rows.append({"path": path, "fingerprint": "f", "patch": b"", "files": base, "names": b"n", "counts": {}})
        elif i % 3 == 1:
            rows.append({"path": path, "fingerprint": "", "patch": None, "names": None, "counts": {}})
        else:
            rows.append({"path": path, "fingerprint": "f", "patch": b"", "files": base, "names": b"n", "counts": {}})
    outside = {"path": "/lib2", "fingerprint": "f", "patch": b"", "files": edited, "names": b"n", "counts": {}}
    rows += [
        {"path": "/lib", "fingerprint": "f", "patch": b"", "files": edited, "names": b"n", "counts": {}},
        {**outside, "path": "/lib-x"},
        outside,
    ]
    with engine.begin() as conn:
        directories.save_directories(conn, rows)
        patched_rows = [r["path"] for r in rows if str(r["path"]).startswith("/lib/d") and r["patch"] == b""][1::2]
        directories.save_directories(
            conn, [{"path": p, "fingerprint": "g", "patch": patch, "counts": {}} for p in patched_rows]
        )
    asked = [str(r["path"]) for r in rows] + ["/lib/unknown", "/lib/d00", "/lib2", "/lib-x"]
    with engine.connect() as conn:
        one_by_one = directories.StoredDirectories(conn)
        expected = [_record_and_base(one_by_one, p) for p in asked]
    assert expected[:3] == [(base, base), (None, None), (edited, base)]
    assert expected[-4:] == [(None, None), (base, base), (edited, edited), (edited, edited)]
    with engine.connect() as conn:
        statements: list[str] = []
        driver = conn.connection.driver_connection
        if engine.dialect.name == "sqlite":
            driver.set_trace_callback(statements.append)  # type: ignore[union-attr]
        at_once = directories.StoredDirectories(conn, "/lib")
        assert [_record_and_base(at_once, p) for p in asked] == expected
        if engine.dialect.name == "sqlite":
            driver.set_trace_callback(None)  # type: ignore[union-attr]
            # ONE_BY_ONE questions, one query for the rest of the root's folders, one each time one outside it is asked.
            assert len(statements) == directories.StoredDirectories.ONE_BY_ONE + 1 + 4
    with engine.connect() as conn:  # through SQLAlchemy (a schema to translate): the same answers
        translated = conn.execution_options(schema_translate_map={None: None})
        via_sqlalchemy = directories.StoredDirectories(translated, "/lib")
        assert [_record_and_base(via_sqlalchemy, p) for p in asked] == expected

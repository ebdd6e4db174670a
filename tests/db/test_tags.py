"""``adapter_tag`` follows the records' tags, writing only what changed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, event, insert, select

from lora_manager.db import open_catalog
from lora_manager.db import repository as repo
from lora_manager.db.schema import adapter, adapter_tag

WHEN = datetime(2024, 5, 1, tzinfo=UTC)


def _adapter(conn: Connection, name: str) -> int:
    row = {"name": name, "version_key": "", "file_path": f"/lib/{name}", "created_at": WHEN, "updated_at": WHEN}
    key = conn.execute(insert(adapter).values(row)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _tags(conn: Connection) -> set[tuple[int, str]]:
    return {(i, t) for i, t in conn.execute(select(adapter_tag.c.adapter_id, adapter_tag.c.tag))}


def test_tags_are_replaced_by_difference_and_unchanged_ones_are_not_written(catalog_url: str) -> None:
    """Added tags are inserted, dropped ones deleted, the rest left alone; case folds to lower."""
    engine = open_catalog(catalog_url)
    statements: list[tuple[str, str]] = []
    try:
        with engine.begin() as conn:
            a, b = _adapter(conn, "a"), _adapter(conn, "b")
            repo.replace_tags(conn, {a: ["Anime", "style"], b: ["x"]}, fresh={a, b})
            assert _tags(conn) == {(a, "anime"), (a, "style"), (b, "x")}
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append((args[2], repr(args[3]))))
        with engine.begin() as conn:
            repo.replace_tags(conn, {a: ["anime", "Portrait"], b: ["X"]})
            assert _tags(conn) == {(a, "anime"), (a, "portrait"), (b, "x")}
        writes = [
            (s.lstrip().split()[0].upper(), p)
            for s, p in statements
            if s.lstrip().upper().startswith(("INSERT", "DELETE"))
        ]
        assert [kind for kind, _ in writes] == ["DELETE", "INSERT"]  # "style" goes, "portrait" comes
        assert "style" in writes[0][1] and "anime" not in writes[0][1] and "'x'" not in writes[0][1]
        assert "portrait" in writes[1][1] and "anime" not in writes[1][1] and "'x'" not in writes[1][1]
        with engine.begin() as conn:  # an adapter wrongly thought fresh: its existing tag is no error
            repo.replace_tags(conn, {b: ["x", "y"]}, fresh={b})
            assert _tags(conn) == {(a, "anime"), (a, "portrait"), (b, "x"), (b, "y")}
    finally:
        engine.dispose()

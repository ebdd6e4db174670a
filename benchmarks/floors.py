"""Lower bounds for the importer, measured by doing the bare minimum in plain Python.

    python benchmarks/floors.py warm ROOT
    python benchmarks/floors.py walk ROOT
    python benchmarks/floors.py cold ROOT DB
    python benchmarks/floors.py touched LIST_FILE DB

bench.py runs each in a fresh process and times the whole process, exactly as it times
``lora``; each also prints one JSON line with its in-process time and file counts, for
comparisons where interpreter start-up must cancel out (the touched re-import delta).

* ``warm``: read every file in full (untimed warm-up, so every figure is warm-cache).
* ``walk``: recursive ``os.scandir`` that ``stat()``s every file: the least a rescan can do.
* ``cold``: the walk, plus read + ``json.loads`` every sidecar and one ``executemany`` of
  (path, name, json) rows into a fresh WAL SQLite file: the least a first import can do.
* ``touched``: the read/parse/insert part of ``cold`` for just the listed sidecars.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator

SIDECAR_SUFFIXES = (".json", ".civitai.info")  # also covers .metadata.json and .cm-info.json


def walk_stat(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every regular file under ``root`` with its stat; directories via an explicit stack."""
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    yield entry.path, entry.stat()


def sidecar_row(path: str) -> tuple[str, str, str]:
    """(path, name, json text) for one sidecar: read, decode, parse, pick a display name."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    data = json.loads(text)
    name = None
    if isinstance(data, dict):
        name = data.get("name") or data.get("model_name") or data.get("ModelName")
    if not isinstance(name, str):
        name = os.path.basename(path).split(".", 1)[0]
    return path, name, text


def insert_rows(db_path: str, rows: Iterable[tuple[str, str, str]]) -> int:
    """One executemany into a fresh SQLite file configured as an importer would (WAL, NORMAL)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    con = sqlite3.connect(db_path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("CREATE TABLE sidecar (path TEXT PRIMARY KEY, name TEXT NOT NULL, json TEXT NOT NULL)")
        with con:
            cur = con.executemany("INSERT INTO sidecar VALUES (?, ?, ?)", rows)
            return cur.rowcount
    finally:
        con.close()


def run_warm(root: str) -> dict[str, int]:
    """Read every file in full, so all later measurements start from a warm page cache."""
    files = total = 0
    for path, _st in walk_stat(root):
        with open(path, "rb") as f:
            total += len(f.read())
        files += 1
    return {"files": files, "bytes": total}


def run_walk(root: str) -> dict[str, int]:
    files = sum(1 for _ in walk_stat(root))
    return {"files": files}


def run_cold(root: str, db_path: str) -> dict[str, int]:
    files = 0
    sidecars: list[str] = []
    for path, _st in walk_stat(root):
        files += 1
        if path.endswith(SIDECAR_SUFFIXES):
            sidecars.append(path)
    rows = [sidecar_row(p) for p in sidecars]
    return {"files": files, "sidecars": len(rows), "inserted": insert_rows(db_path, rows)}


def run_touched(list_file: str, db_path: str) -> dict[str, int]:
    with open(list_file, encoding="utf-8") as f:
        paths = [line for line in f.read().splitlines() if line]
    rows = [sidecar_row(p) for p in paths]
    return {"sidecars": len(rows), "inserted": insert_rows(db_path, rows)}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("warm", "walk", "cold", "touched"):
        print(__doc__, file=sys.stderr)
        return 2
    started = time.perf_counter()
    if argv[0] == "warm":
        result = run_warm(argv[1])
    elif argv[0] == "walk":
        result = run_walk(argv[1])
    elif argv[0] == "cold":
        result = run_cold(argv[1], argv[2])
    else:
        result = run_touched(argv[1], argv[2])
    print(json.dumps({"floor": argv[0], "seconds": time.perf_counter() - started, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

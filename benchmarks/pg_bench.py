"""The ``lora`` CLI on a PostgreSQL catalog: the same library and commands as ``bench.py``, for information.

    python benchmarks/pg_bench.py --count 10000 [--runs 3]

Starts a throwaway PostgreSQL server (``tests/pgserver.py``: ``initdb`` in a temporary
directory, a Unix socket only, fsync and synchronous commit off, so the figures are a lower
bound for a real server), imports the generated library into a fresh database, and prints
the medians of a cold import, a no-op re-import, a re-import after touching 1% of the
sidecars, ``list --tag`` and ``show``, next to the same commands on SQLite when
``--sqlite`` is given. Nothing is judged and BENCHMARKS.md is not written: the issue's
targets are for the embedded SQLite catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from genlib import Library, ensure_library, next_touch_round, touch_sidecars  # noqa: E402

from tests.pgserver import PgServer  # noqa: E402


def timed(lora: str, env: dict[str, str], *args: str) -> float:
    """Seconds of one whole ``lora`` process; exit codes other than 0 and 1 are errors."""
    started = time.perf_counter()
    done = subprocess.run([lora, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"lora {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def measure(lib: Library, lora: str, env: dict[str, str], db: str, runs: int) -> dict[str, float]:
    """Medians of each figure on the catalog ``db`` (empty at the start)."""

    def median(fn: Callable[[], float]) -> float:
        return statistics.median(fn() for _ in range(runs))

    root = str(lib.root)
    figures = {"cold import": timed(lora, env, "--db", db, "import", root, "--quiet")}
    figures["no-op re-import"] = median(lambda: timed(lora, env, "--db", db, "import", root, "--quiet"))

    def touched() -> float:
        touch_sidecars(lib, next_touch_round(lib))
        return timed(lora, env, "--db", db, "import", root, "--quiet")

    figures["1% touched re-import"] = median(touched)
    figures["list --tag"] = median(lambda: timed(lora, env, "--db", db, "list", "--tag", "anime", "--limit", "50"))
    listed = subprocess.run([lora, "--db", db, "list", "--json", "--limit", "1"], capture_output=True, env=env)
    name = json.loads(listed.stdout)[0]["name"]
    figures["show"] = median(lambda: timed(lora, env, "--db", db, "show", name))
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=HERE.parent / "bench-work")
    ap.add_argument("--lora", default=str(HERE.parent / ".venv" / "bin" / "lora"))
    ap.add_argument("--sqlite", action="store_true", help="measure the same on a SQLite catalog too")
    a = ap.parse_args()
    lib = ensure_library(a.workdir.resolve(), a.count, a.seed)
    with tempfile.TemporaryDirectory(prefix="lora-pg-bench-") as tmp:
        # Never the user's real catalog or config: the XDG dirs point into the temporary directory.
        xdg = ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")
        env = {**os.environ, **{v: f"{tmp}/{v.lower()}" for v in xdg}}
        env.pop("LORA_DB", None)
        results: dict[str, dict[str, float]] = {}
        with PgServer() as server:
            results["PostgreSQL"] = measure(lib, a.lora, env, server.create_database("bench"), a.runs)
        if a.sqlite:
            results["SQLite"] = measure(lib, a.lora, env, f"{tmp}/catalog.db", a.runs)
    names = list(results)
    print(f"{a.count:,} models, median of {a.runs} (the cold import runs once)")
    print(f"{'measure':24s}" + "".join(f"{n:>12s}" for n in names))
    for figure in results[names[0]]:
        print(f"{figure:24s}" + "".join(f"{results[n][figure]:11.3f}s" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the ``lora`` CLI on a generated library, against floors measured on the same tree.

    python benchmarks/bench.py --count 100000 [--count 10000] [--runs 3] [--pairs 7] [--seed 7]
        [--workdir DIR] [--lora PATH] [--output BENCHMARKS.md] [--json [FILE]] [--keep]

Every figure is a whole process, timed from spawn to exit, the way a user experiences
it; the median of ``--runs`` is reported (of ``--pairs`` for the no-op and 1% touched re-imports,
which run in pairs: see :func:`noop_and_touched`). The page cache is warm (one untimed warm-up
pass reads the whole tree first), because dropping it needs privileges we do not assume.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genlib import Library, ensure_library, next_touch_round, touch_batch, touch_sidecars
from report import machine_info, peak_rss_mb, print_table, update_markdown

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
IMPORT_OK = (0, 1)  # 1 = finished, but the library has broken entries (it deliberately does)


class BenchError(Exception):
    """A command exited with a code that means it did not do its job."""


@dataclass
class Proc:
    """One finished subprocess: wall time, the child's own peak RSS, exit code."""

    seconds: float
    rss_kib: int
    rc: int
    stdout: str


class Runner:
    """Spawns commands with an isolated environment and times each as a whole process."""

    def __init__(self, logdir: Path, xdg: Path, db: Path) -> None:
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        # The app must never touch the user's real database, config or data dirs during a benchmark,
        # even in a command run without --db (orphans): point every default into the work dir.
        self.env = {**os.environ, "LORA_DB": str(db), "NO_COLOR": "1"}
        # As a user's install runs it: with its modules' bytecode cached (an environment that
        # forbids writing it would have every run compile the package again, ~40 ms).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            path = xdg / var.lower()
            path.mkdir(parents=True, exist_ok=True)
            self.env[var] = str(path)

    def run(self, argv: Sequence[str], ok: Sequence[int] = (0,)) -> Proc:
        """Run ``argv``; Popen + wait4 so ``ru_maxrss`` is this child's alone (KiB on Linux)."""
        out_path, err_path = self.logdir / "stdout.txt", self.logdir / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            try:
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env)
            except OSError as exc:  # not found / not executable: as fatal for this figure as a bad exit
                raise BenchError(f"`{shlex.join(argv)}` could not start: {exc}") from None
            _pid, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        if rc not in ok:
            tail = err_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
            raise BenchError(f"`{shlex.join(argv)}` exited {rc}:\n" + "\n".join(tail))
        return Proc(seconds, usage.ru_maxrss, rc, out_path.read_text(encoding="utf-8", errors="replace"))


def wall(proc: Proc) -> float:
    return proc.seconds


def repeat(
    label: str, runs: int, once: Callable[[], Proc], use: Callable[[Proc], float] = wall, detail: bool = False
) -> dict[str, Any]:
    """Run ``once`` ``runs`` times and keep the median of ``use``; a failure becomes this figure's error.

    ``detail`` keeps the last run's stdout, parsed as JSON (the floors report file counts there).
    """
    samples: list[Proc] = []
    try:
        for i in range(runs):
            samples.append(once())
            print(f"  {label:<22} run {i + 1}/{runs}: {use(samples[-1]):8.3f} s", flush=True)
    except BenchError as exc:
        print(f"  {label}: BENCHMARK ERROR\n{exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)}
    fig = summary(samples, use)
    if detail:
        fig["detail"] = json.loads(samples[-1].stdout)
    return fig


def summary(samples: list[Proc], use: Callable[[Proc], float] = wall) -> dict[str, Any]:
    """A figure: the median of ``use`` over the samples, and the samples."""
    values = [use(p) for p in samples]
    return {
        "seconds": statistics.median(values),
        "samples": values,
        "wall_samples": [p.seconds for p in samples],
        "rss_kib": [p.rss_kib for p in samples],
        "exit_codes": [p.rc for p in samples],
    }


def remove_db(db: Path) -> None:
    """Delete a SQLite database and its side files (and the app's lock), so the next import starts from nothing."""
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def interpreter_of(lora: Path) -> str:
    """The Python that runs ``lora`` (its shebang), so floors pay the same start-up cost."""
    try:
        first = lora.read_bytes()[:200].split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return sys.executable
    candidate = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    return (
        candidate
        if candidate and "python" in Path(candidate).name and os.access(candidate, os.X_OK)
        else (sys.executable)
    )


def measure_floors(lib: Library, runner: Runner, python: str, runs: int) -> dict[str, Any]:
    """walk_stat, cold_floor and touched_floor, each in a fresh process, after one warm-up pass."""
    script, root, db = str(HERE / "floors.py"), str(lib.root), str(lib.home / "floor.db")
    touched_list = lib.home / "touched-floor.txt"
    touched_list.write_text("\n".join(map(str, touch_batch(lib, 0))) + "\n", encoding="utf-8")
    print("floors (warm-up pass first)", flush=True)
    runner.run([python, script, "warm", root])  # read every file once: all figures are warm-cache
    floors = {
        "walk_stat": repeat("walk_stat", runs, lambda: runner.run([python, script, "walk", root]), detail=True),
        "cold_floor": repeat("cold_floor", runs, lambda: runner.run([python, script, "cold", root, db]), detail=True),
        # The touched delta is against a no-op import, so start-up cancels: use in-process time.
        "touched_floor": repeat(
            "touched_floor",
            runs,
            lambda: runner.run([python, script, "touched", str(touched_list), db]),
            use=lambda p: float(json.loads(p.stdout)["seconds"]),
            detail=True,
        ),
    }
    remove_db(lib.home / "floor.db")
    return floors


def noop_and_touched(lib: Library, runner: Runner, imp: list[str], pairs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``pairs`` times: a no-op re-import, then 1% of the sidecars edited and a re-import.

    The touched target is a difference (touched minus no-op), and this machine's speed drifts
    from minute to minute: each touched run is compared with the no-op run just before it,
    and the median of those differences is the figure's ``delta``. The edits are flushed to
    disk before the timed run (``sync``), as edits made long before a cron run would be.
    """
    noop: list[Proc] = []
    touched: list[Proc] = []
    try:
        for i in range(pairs):
            noop.append(runner.run(imp, ok=IMPORT_OK))
            touch_sidecars(lib, next_touch_round(lib))
            os.sync()
            touched.append(runner.run(imp, ok=IMPORT_OK))
            delta = touched[-1].seconds - noop[-1].seconds
            print(
                f"  no-op / 1% touched    pair {i + 1}/{pairs}: {noop[-1].seconds:8.3f} s {touched[-1].seconds:8.3f} s"
                f" (delta {delta * 1000:.0f} ms)",
                flush=True,
            )
    except BenchError as exc:
        print(f"  no-op / 1% touched: BENCHMARK ERROR\n{exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)}, {"error": str(exc)}
    figs = (summary(noop), summary(touched))
    deltas = [t.seconds - n.seconds for n, t in zip(noop, touched, strict=True)]
    figs[1]["deltas"], figs[1]["delta"] = deltas, statistics.median(deltas)
    return figs


def measure_lora(lib: Library, runner: Runner, lora: str, runs: int, pairs: int) -> dict[str, Any]:
    """The user-facing commands on the generated tree; see the module docstring for the rules."""
    db, root = lib.home / "bench.db", str(lib.root)
    base = [lora, "--db", str(db)]
    imp = [*base, "import", root, "--quiet"]
    try:
        runner.run([lora, "--help"])  # warm-up, and proof the CLI starts at all
        first_dir = lib.sidecars()[0].parent  # warm-up import of one folder: compiles and caches the code paths
        remove_db(db)
        runner.run([*base, "import", str(first_dir), "--quiet"], ok=IMPORT_OK)
    except BenchError as exc:
        print(f"lora is not runnable yet; skipping the command measurements\n{exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)}

    def cold() -> Proc:
        remove_db(db)
        return runner.run(imp, ok=IMPORT_OK)

    print("lora commands", flush=True)
    figs: dict[str, Any] = {"cold_import": repeat("cold import", runs, cold)}
    figs["noop_import"], figs["touched_import"] = noop_and_touched(lib, runner, imp, pairs)
    queries = {
        "list_tag": [*base, "list", "--tag", str(lib.info["tag"]), "--limit", "50"],
        "list_search": [*base, "list", "--search", str(lib.info["search_word"]), "--limit", "50"],
        "show": [*base, "show", str(lib.info["sample_name"])],
        "orphans": [lora, "orphans", root],
        "help": [lora, "--help"],
    }
    for name, argv in queries.items():
        figs[name] = repeat(name.replace("_", " "), runs, functools.partial(runner.run, argv))
    return figs


def bench_count(count: int, args: argparse.Namespace) -> dict[str, Any]:
    """Generate (or reuse) the N-model library, then measure floors and commands on it."""
    print(f"\n=== N = {count:,} ===", flush=True)
    lib = ensure_library(args.workdir, count, args.seed)
    runner = Runner(lib.home / "logs", lib.home / "xdg", lib.home / "bench.db")
    python = interpreter_of(args.lora)
    result: dict[str, Any] = {
        "count": count,
        "seed": args.seed,
        "runs": args.runs,
        "pairs": args.pairs,
        "library": {"root": str(lib.root), **lib.info["stats"], "generation_seconds": lib.info["seconds"]},
        "floors": measure_floors(lib, runner, python, args.runs),
    }
    result["commands"] = measure_lora(lib, runner, str(args.lora), args.runs, args.pairs)
    if not args.keep:
        remove_db(lib.home / "bench.db")
        for log in runner.logdir.glob("*.txt"):
            log.unlink()
    return result


def add_rss_baseline(results: list[dict[str, Any]]) -> None:
    """Give every larger N the smallest N's peak RSS of this run: the RSS target is also "not growing with N"."""
    cold = [(r["count"], peak_rss_mb(r["commands"].get("cold_import", {"error": "not measured"}))) for r in results]
    measured = [(count, mb) for count, mb in cold if mb is not None]
    if len(measured) < 2:
        return
    smallest = min(measured)
    for r in results:
        if r["count"] > smallest[0]:
            r["rss_baseline"] = smallest


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, action="append", help="models in the library; repeatable (default 10000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    ap.add_argument(
        "--pairs", type=int, default=7, help="no-op / 1%% touched pairs of re-imports; the median delta is judged"
    )
    ap.add_argument("--seed", type=int, default=7, help="generator seed")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=REPO / "bench-work",
        help="where generated trees are cached (default: bench-work/ at the repo root)",
    )
    ap.add_argument("--lora", type=Path, default=REPO / ".venv" / "bin" / "lora", help="the lora executable")
    ap.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="markdown file to write/update")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="dump raw figures (to stdout without FILE)")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark databases and command logs")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.pairs < 1:
        ap.error("--runs and --pairs must be at least 1")
    args.count = args.count or [10_000]
    args.workdir = args.workdir.resolve()
    found = shutil.which(str(args.lora))  # a bare name is looked up on PATH, as a shell would
    args.lora = Path(found).absolute() if found else args.lora.absolute()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info(str(args.lora), interpreter_of(args.lora))
    results = [bench_count(count, args) for count in args.count]
    add_rss_baseline(results)
    for result in results:
        print_table(result)
    update_markdown(args.output, results, machine)
    print(f"\nwrote {args.output}")
    if args.json:
        dump = json.dumps({"machine": machine, "results": results}, indent=2, ensure_ascii=False)
        if args.json == "-":
            print(dump)
        else:
            Path(args.json).write_text(dump + "\n", encoding="utf-8")
    errors = any(
        "error" in fig
        for r in results
        for group in ("floors", "commands")
        for fig in ([r[group]] if "error" in r[group] else r[group].values())
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

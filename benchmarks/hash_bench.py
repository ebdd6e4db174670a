"""Benchmark ``lora hash`` against the floor: plain ``hashlib.sha256`` over the same files.

    python benchmarks/hash_bench.py [--files 4] [--size-mb 256] [--threads N] [--runs 3]
        [--workdir DIR] [--lora PATH] [--keep]

Two libraries of ``--files`` safetensors files of ``--size-mb`` MiB each (orphans: ``lora
import`` tracks them without a sidecar) are measured:

* ``header AutoV3``: the header records ``sshs_model_hash``, so ``lora hash`` runs one SHA256
  per byte, exactly the floor's work;
* ``no header AutoV3``: ``lora hash`` also hashes the tensor data in the same read (two SHA256
  per byte), so it is judged against a two-hasher floor as well as the plain one.

Every time is a whole process (spawn to exit), median of ``--runs``, on a warm page cache
(one untimed pass reads every file first). The floor runs in a fresh process of the same
interpreter, with the same number of threads and 1 MiB ``readinto`` chunks. Each ``lora
hash`` run starts from a freshly imported catalog, so it hashes everything; a second run
on the same catalog must read nothing. MB is 10^6 bytes. Prints a table and a markdown
snippet for BENCHMARKS.md; exits 1 if a command fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHUNK = 1024 * 1024
TARGET = 0.85  # lora hash throughput / floor throughput


def floor(paths: Sequence[str], threads: int, hashers: int) -> None:
    """The least Python can do: ``hashers`` SHA256 objects fed 1 MiB ``readinto`` chunks, one file per thread."""

    def one(path: str) -> str:
        digests = [hashlib.sha256() for _ in range(hashers)]
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                for d in digests:
                    d.update(view[:n])
        return digests[0].hexdigest()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, paths))
    print(json.dumps({"seconds": time.perf_counter() - started}))  # in-process, for the in-process ratio


def write_library(folder: Path, files: int, size_mb: int, header_autov3: bool) -> list[Path]:
    """``files`` safetensors files of ``size_mb`` MiB (distinct content); kept between runs if already right."""
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(CHUNK)
    paths = []
    for i in range(files):
        path = folder / f"lora_{i:02d}.safetensors"
        paths.append(path)
        tensor_bytes = size_mb * CHUNK
        metadata = {"ss_output_name": path.stem}
        if header_autov3:
            metadata["sshs_model_hash"] = hashlib.sha256(f"{i}".encode()).hexdigest()
        header = {"w": {"dtype": "F16", "shape": [tensor_bytes // 2], "data_offsets": [0, tensor_bytes]}}
        raw = json.dumps({**header, "__metadata__": metadata}).encode()
        raw += b" " * (-len(raw) % 8)
        if path.exists() and path.stat().st_size == 8 + len(raw) + tensor_bytes:
            continue
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            for j in range(size_mb):
                f.write(struct.pack("<QQ", i, j) + block[16:])  # distinct per file and per chunk
    return paths


def timed(argv: Sequence[str], env: dict[str, str], ok: Sequence[int] = (0,)) -> tuple[float, str]:
    """Wall time of one whole process, and its stdout; a failing command stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        sys.stderr.write(f"`{' '.join(argv)}` exited {done.returncode}:\n{done.stderr[-4000:]}\n")
        raise SystemExit(1)
    return seconds, done.stdout


def measure(lib: Path, paths: list[Path], args: argparse.Namespace, env: dict[str, str]) -> dict[str, float]:
    """Floors and ``lora hash`` times for one library, interleaved run by run so a noisy machine hits all alike."""
    python = str(Path(args.lora).parent / "python")
    names = [str(p) for p in paths]
    for p in paths:  # warm the page cache, untimed
        with open(p, "rb", buffering=0) as f:
            while f.read(8 * CHUNK):
                pass
    lora = [args.lora, "--db", str(lib.parent / "catalog.db")]
    samples: dict[str, list[float]] = {}

    def note(key: str, seconds: float) -> None:
        samples.setdefault(key, []).append(seconds)

    for _ in range(args.runs):
        for hashers in (1, 2):
            argv = [python, __file__, "floor", "--threads", str(args.threads), "--hashers", str(hashers), *names]
            seconds, out = timed(argv, env)
            note(f"floor{hashers}", seconds)
            note(f"floor{hashers}_in_process", json.loads(out)["seconds"])
        for leftover in lib.parent.glob("catalog.db*"):
            leftover.unlink()
        timed([*lora, "import", str(lib), "--quiet"], env)
        seconds, out = timed([*lora, "hash", "--json", "--threads", str(args.threads)], env)
        report = json.loads(out)
        assert report["hashed"] == len(paths), report
        note("lora", seconds)
        note("lora_in_process", report["duration_seconds"])
        seconds, out = timed([*lora, "hash", "--json"], env)
        assert json.loads(out)["hashed"] == 0, out  # the second run reads nothing
        note("second", seconds)
    return {key: statistics.median(values) for key, values in samples.items()}


def mbps(total: int, seconds: float) -> float:
    return total / seconds / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    f = sub.add_parser("floor", help="(internal) the floor, in its own process")
    f.add_argument("--threads", type=int, required=True)
    f.add_argument("--hashers", type=int, default=1)
    f.add_argument("paths", nargs="+")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size-mb", type=int, default=256, help="MiB per file")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-work" / "hash")
    parser.add_argument("--lora", default=str(REPO / ".venv" / "bin" / "lora"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files for the next run")
    args = parser.parse_args(argv)
    if args.command == "floor":
        floor(args.paths, args.threads, args.hashers)
        return 0
    env = {**os.environ, "NO_COLOR": "1", "LORA_DB": str(args.workdir / "unused.db")}
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = str(args.workdir / "xdg" / var.lower())
    total = args.files * args.size_mb * CHUNK
    rows = []
    try:
        libraries = []
        for label, header in (("header AutoV3", True), ("no header AutoV3", False)):
            lib = args.workdir / ("with-autov3" if header else "without-autov3") / "library"
            libraries.append((label, lib, write_library(lib, args.files, args.size_mb, header)))
        os.sync()  # no write-back of the new files may run while anything is timed
        for label, lib, paths in libraries:
            total = sum(p.stat().st_size for p in paths)
            rows.append((label, measure(lib, paths, args, env)))
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print(markdown(rows, total, args))
    return 0


def markdown(rows: list[tuple[str, dict[str, float]]], total: int, args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section: throughput against the floors, whole-process and in-process, and the no-op."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    lines = [
        f"## lora hash: {args.files} x {args.size_mb} MiB, {args.threads} threads",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}, commit {commit.stdout.strip() or '?'}. Median of {args.runs} runs, "
        f"warm page cache; {total / 1e6:,.0f} MB per library; MB = 10^6 bytes.",
        "",
        "| Library | Timed | lora hash | Floor, 1 SHA256/byte | Ratio | Floor, 2 SHA256/byte | Ratio | Target "
        "| Result |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for label, fig in rows:
        same_work = "1" if label == "header AutoV3" else "2"  # the floor doing what lora hash does
        for timed_as, suffix in (("whole process", ""), ("in-process", "_in_process")):
            lora = mbps(total, fig["lora" + suffix])
            f1, f2 = mbps(total, fig["floor1" + suffix]), mbps(total, fig["floor2" + suffix])
            judged = f1 if same_work == "1" else f2
            verdict = "PASS" if lora >= TARGET * judged else "FAIL"
            lines.append(
                f"| {label} | {timed_as} | {lora:,.0f} MB/s ({fig['lora' + suffix]:.2f} s) | {f1:,.0f} MB/s "
                f"| {lora / f1:.0%} | {f2:,.0f} MB/s | {lora / f2:.0%} | ≥ {TARGET:.0%} of the {same_work}-hash floor "
                f"| {verdict} |"
            )
    lines += [
        "",
        "Second `lora hash` on the same catalog (every file current: one stat each, nothing read): "
        + ", ".join(f"{label} {fig['second']:.3f} s" for label, fig in rows)
        + " (whole process; the same start-up as any catalog command).",
        "",
        "_in-process_: the hashing service's own time (stat, hash, store) against the floor's hashing loop, both "
        "without interpreter start-up and imports. A file whose header records no AutoV3 costs a second SHA256 "
        "over its tensor data in the same read, so it is judged against the two-hasher floor.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

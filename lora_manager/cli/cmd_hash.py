"""``lora hash``: compute the SHA256 (and AutoV3) of model files that have no current one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from lora_manager.cli import INT64_MAX, boundary, catalog
from lora_manager.errors import EXIT_FILES_FAILED, EXIT_INTERRUPTED, EXIT_OK, LoraError


def hash_(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[PATH|QUERY]",
            help="A folder or model file; or, if no such path exists, part of a LoRA's name "
            "(default: every model file in the catalog).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option("--threads", "-j", min=1, max=INT64_MAX, help="Files hashed at once (default: min(4, CPUs))."),
    ] = None,
    tensor_hash: Annotated[
        bool,
        typer.Option(
            "--tensor-hash",
            help="Also hash the tensor data of files whose header records an AutoV3 (about twice the CPU), "
            "so `lora duplicates` can match their weights.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Read every file again, even those hashed at their size and mtime (to catch bit rot)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary and the hashes as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Compute the SHA256 of model files not hashed yet, or changed since; unchanged files are not read.

    AutoV2 is the SHA256's first 10 hex digits. AutoV3 comes from the safetensors header, or
    is computed over the tensor data in the same read. Ctrl-C keeps the files done so far;
    run the command again to finish.

    Example: lora hash ~/models/Lora --threads 4
    """
    from lora_manager.services.hashing import HashOptions

    options = HashOptions(tensor="always" if tensor_hash else "auto", force=force)
    if threads:
        options.threads = threads
    if target == "":  # as a path it would be the working folder, as a name nothing
        raise LoraError("an empty PATH|QUERY names no folder, file or LoRA")
    if target is not None and os.path.exists(os.path.expanduser(target)):
        options.paths = [target]
    elif target is not None:
        options.query = target
    report = run_with_progress(catalog(ctx), options, show=not quiet and not as_json)
    if as_json:
        from lora_manager.cli import output

        output.print_json(report.as_dict())
    else:
        show_report(report, quiet)
    raise typer.Exit(exit_code(report))


def run_with_progress(engine: Any, options: Any, show: bool, stop: Any = None) -> Any:
    """Run the hashing service under a Ctrl-C handler (first press: stop after saving) and a progress bar."""
    from lora_manager.cli.cmd_import import _StopFlag
    from lora_manager.services.hashing import run_hashing

    stop = stop or _StopFlag()
    with stop.installed(), _progress(show) as update:
        return run_hashing(engine, options, update, stop.is_set)


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """Bytes, rate and ETA on stderr when it is a terminal; nothing otherwise."""
    from lora_manager.cli import output

    if not enabled or not output.is_terminal(stderr=True):
        yield lambda p: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("hashing {task.fields[files]}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=output.err, transient=True) as bar:
        task = bar.add_task("hashing", total=None, files="")

        def update(p: Any) -> None:
            bar.update(task, completed=p.bytes_done, total=p.bytes_total, files=f"{p.files_done}/{p.files_total}")

        yield update


def show_report(report: Any, quiet: bool) -> None:
    """The summary on stdout; vanished, changed and unreadable files on stderr (only failures when quiet)."""
    from rich.filesize import decimal

    from lora_manager.cli import output

    if not quiet:
        rate = report.bytes_hashed / report.duration if report.duration > 0 else 0
        output.line(
            f"hashed: {len(report.hashed)} files ({decimal(report.bytes_hashed)}), {report.current} already "
            f"current, {len(report.vanished)} vanished, {len(report.problems)} failed "
            f"in {report.duration:.2f}s ({decimal(int(rate))}/s)"
        )
        if report.files == 0:
            output.warn("no model files in the catalog match; run `lora import FOLDER` first")
    notes = (
        [] if quiet else [f"{p}: vanished; skipped (run `lora import` to update the catalog)" for p in report.vanished]
    )
    notes += [] if quiet else [f"{p}: changed while it was read; not stored (run again)" for p in report.changed]
    notes += [f"{p.path}: {p.kind}: {p.message}" for p in report.problems]
    output.warn_lines(notes, "see --json")
    if report.interrupted:
        output.warn("interrupted: the files hashed so far are saved; run `lora hash` again to finish")


def exit_code(report: Any) -> int:
    return EXIT_INTERRUPTED if report.interrupted else EXIT_FILES_FAILED if report.problems else EXIT_OK


def after_import(engine: Any, roots: list[str], imported: Any, stop: Any, as_json: bool, quiet: bool) -> None:
    """``lora import --hash``: hash the imported roots, print both summaries, exit with the worse code."""
    from lora_manager.cli import output
    from lora_manager.cli.cmd_import import show_report as show_import
    from lora_manager.services.hashing import HashOptions

    report = run_with_progress(engine, HashOptions(paths=roots), show=not quiet and not as_json, stop=stop)
    if as_json:
        output.print_json({**imported.as_dict(), "hash": report.as_dict()})
    else:
        show_import(imported, as_json=False, quiet=quiet, verb="imported")
        show_report(report, quiet)
    codes = (exit_code(report), EXIT_FILES_FAILED if imported.failed else EXIT_OK)
    raise typer.Exit(EXIT_INTERRUPTED if EXIT_INTERRUPTED in codes else max(codes))


def register(app: typer.Typer) -> None:
    app.command("hash")(boundary(hash_))

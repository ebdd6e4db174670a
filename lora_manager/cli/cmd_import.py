"""``lora import``: bring the catalog up to date with one or more library folders."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from lora_manager import console
from lora_manager.cli import boundary, catalog, path_args
from lora_manager.cli.sigint import sigint_handler
from lora_manager.errors import LoraError

MAX_SIDECAR_MB = 1024 * 1024  # 1 TiB: anything larger is a typo, and would overflow a read's size


def import_(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="Library folders to import.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Re-read every entry, changed or not.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would change; write nothing.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Delete records whose files are gone.")] = False,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore",
            metavar="PATTERN",
            help="Gitignore-style pattern to skip (repeatable; also read from .loraignore in the folder).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for another running import to end, or fail at once.")
    ] = True,
    max_sidecar_mb: Annotated[
        int, typer.Option("--max-sidecar-mb", min=1, max=MAX_SIDECAR_MB, help="Refuse sidecars larger than this.")
    ] = 32,
    hash_: Annotated[
        bool,
        typer.Option(
            "--hash",
            help="Then hash the model files that have no current SHA256 (see `lora hash`; not with --dry-run).",
        ),
    ] = False,
) -> None:
    """Import the LoRA metadata under PATHS; only what changed since the last run is read.

    Example: lora import ~/models/Lora --quiet
    """
    if hash_ and dry_run:
        raise LoraError("--hash cannot be used with --dry-run (a dry run writes nothing, hashes included)")
    from lora_manager.services.prefetch import early_reader

    # First: the reader loads the parsers on the other core while this process loads the rest.
    with early_reader() as reader:
        from lora_manager.cli import output
        from lora_manager.db.lock import import_lock
        from lora_manager.services.importer import ImportOptions, run_import

        engine = catalog(ctx, create=not dry_run, warn_absent=False)
        options = ImportOptions(
            roots=path_args(paths),
            force=force,
            dry_run=dry_run,
            prune=prune,
            ignore=list(ignore or []),
            max_sidecar_bytes=max_sidecar_mb * 1024 * 1024,
        )
        stop = _StopFlag()

        def waiting() -> None:
            if not quiet:
                output.warn("waiting for another import to finish...")

        lock = import_lock(engine, wait=wait, on_wait=waiting) if not dry_run else contextlib.nullcontext()
        with (
            stop.installed(),
            lock as held,
            output.progress_bar("importing", enabled=not quiet and not as_json) as progress,
        ):

            def should_stop() -> bool:
                if held is not None:
                    held.check()  # a PostgreSQL lock lost with its connection ends the run (LoraError)
                return stop.is_set()

            report = run_import(engine, options, progress, should_stop, reader)
    if hash_ and not dry_run and not report.interrupted:
        from lora_manager.cli.cmd_hash import after_import

        after_import(engine, options.roots, report, stop, as_json=as_json, quiet=quiet)  # prints both; exits
    show_report(report, as_json=as_json, quiet=quiet, verb="would import" if dry_run else "imported")
    if report.interrupted:
        raise typer.Exit(130)
    if report.failed:
        raise typer.Exit(1)


def show_report(report: Any, as_json: bool, quiet: bool, verb: str) -> None:
    """The summary on stdout, then each problem of this run on stderr (the first few)."""
    from lora_manager.cli import output
    from lora_manager.errors import FailureKind

    if as_json:
        output.print_json(report.as_dict())
        return
    failures = [p for p in report.problems if FailureKind(p.kind).is_failure]
    if quiet and not failures and not report.interrupted:
        return
    c = report.counts
    summary = (
        f"{verb}: {c['new']} new, {c['updated']} updated, {c['unchanged']} unchanged, "
        f"{c['skipped'] + c['duplicates']} skipped, {c['failed']} failed"
    )
    extras = [f"{c[k]} {k}" for k in ("missing", "pruned", "orphans") if c[k]]
    line = summary + (f" ({', '.join(extras)})" if extras else "") + f" in {report.duration:.2f}s"
    if not quiet:
        output.line(line)
    shown = report.problems if not quiet else failures
    # A dry run records nothing for `lora errors` to show.
    where = "--json lists them all" if report.run_id is None else "see `lora errors`"
    output.warn_lines([f"{p.path}: {p.kind}: {p.message}" for p in shown], where)
    if report.interrupted:
        output.warn("interrupted: the batches done so far are saved; run the import again to finish")


class _StopFlag:
    """Ctrl-C once: finish the current batch and stop. Twice: stop now."""

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set or console.interrupted  # the latter: a Ctrl-C Python could not raise

    def _handle(self, signum: int, frame: object) -> None:
        if self._set:
            raise KeyboardInterrupt
        self._set = True

    def installed(self) -> Any:
        return sigint_handler(self._handle)


def register(app: typer.Typer) -> None:
    app.command("import")(boundary(import_))

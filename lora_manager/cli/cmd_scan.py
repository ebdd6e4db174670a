"""``lora scan``: what an import would do, entry by entry, without writing anything."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import boundary, catalog, path_args

LABELS = {"updated": "changed", "failed": "invalid", "skipped": "skipped", "orphan": "orphan"}
# The order of the summary's counts; new, changed and invalid are always given, the rest when listed.
ORDER = ("new", "changed", "unchanged", "invalid", "duplicate", "orphan", "skipped", "missing")


def scan(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="Library folders to scan.", show_default=False)],
    show_all: Annotated[bool, typer.Option("--all", help="List unchanged entries too.")] = False,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", metavar="PATTERN", help="Pattern to skip.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print entries and summary as JSON.")] = False,
) -> None:
    """Show what `lora import` would do with each entry (new, changed, unchanged, invalid); write nothing.

    Example: lora scan ~/models/Lora
    """
    from lora_manager.services.prefetch import early_reader

    # First: the reader loads the parsers on the other core while this process loads the rest.
    with early_reader() as reader:
        from lora_manager.cli import output
        from lora_manager.services.importer import ImportOptions, run_import

        engine = catalog(ctx, create=False, warn_absent=False)
        options = ImportOptions(
            roots=path_args(paths), dry_run=True, ignore=list(ignore or []), list_unchanged=show_all
        )
        report = run_import(engine, options, reader=reader)
    rows = [(LABELS.get(o.action, o.action), o.key, o.name, o.version, o.detail) for o in report.outcomes]
    if as_json:
        output.print_json(
            {
                "entries": [dict(zip(("action", "entry", "name", "version", "detail"), r, strict=True)) for r in rows],
                "summary": report.as_dict(),
            }
        )
    elif output.is_terminal():
        output.table(["action", "entry", "name", "version", "detail"], rows, boxed=False)
        output.line(summary([r[0] for r in rows], show_all))
    else:  # the rows alone, one a line for grep and cut: a summary line would be read as one (--json has it)
        for row in rows:
            output.plain(*row)
    if not as_json:  # what is no entry's row (a folder that cannot be listed, a link out) would go unsaid
        from lora_manager.errors import FailureKind

        failures = [p for p in report.problems if FailureKind(p.kind).is_failure]
        output.warn_lines([f"{p.path}: {p.kind}: {p.message}" for p in failures], "--json lists them all")
    if report.failed:
        raise typer.Exit(1)


def summary(actions: list[str], show_all: bool) -> str:
    """The rows listed, counted by action, so that the line under the table agrees with it.

    Not the import's own counts (``--json``'s ``summary``): those count what a run would do, and
    leave out what ``--all`` lists besides, such as an entry still invalid since the last import.
    """
    from collections import Counter

    counted = Counter(actions)
    always = ("new", "changed", "invalid", "unchanged") if show_all else ("new", "changed", "invalid")
    labels = [a for a in ORDER if counted[a] or a in always] + sorted(set(counted) - set(ORDER))
    text = ", ".join(
        f"{counted[a]} {a}{'s' if a in ('duplicate', 'orphan') and counted[a] != 1 else ''}" for a in labels
    )
    return text if show_all else f"{text} (unchanged entries are not listed: --all lists them)"


def register(app: typer.Typer) -> None:
    app.command("scan")(boundary(scan))

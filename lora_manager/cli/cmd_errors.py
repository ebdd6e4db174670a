"""``lora errors``: the library's known problems, or the failures of one import run."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import INT64_MAX, boundary, catalog
from lora_manager.errors import LoraError


def errors(
    ctx: typer.Context,
    last_run: Annotated[
        bool, typer.Option("--last-run", help="The files that failed in the last import run instead.")
    ] = False,
    run: Annotated[
        int | None, typer.Option("--run", min=1, max=INT64_MAX, help="The files that failed in this import run.")
    ] = None,
    path: Annotated[str | None, typer.Option("--path", help="Only problems under this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as a JSON array.")] = False,
) -> None:
    """List the problems the catalog knows of: files that failed to import, and duplicates.

    A problem stays listed until its file is fixed and imported again, even though later
    imports skip the unchanged file without reporting it.

    Example: lora errors --last-run
    """
    import os

    from lora_manager.cli import output
    from lora_manager.paths import lies_under
    from lora_manager.services.catalog import known_problems, run_failures

    if last_run and run is not None:
        raise LoraError("--last-run and --run contradict each other: give one")
    if path == "":
        raise LoraError("an empty --path names no folder")
    if path is not None:  # as the catalog spells folders: absolute, normalised, links resolved
        path = os.path.realpath(os.path.expanduser(path))
    engine = catalog(ctx, create=False)
    if last_run or run is not None:
        run_record, problems = run_failures(engine, run)
        if run is not None and run_record is None:
            raise LoraError(f"no import run {run} (see `lora status` for the runs recorded)")
        if path is not None:
            problems = [p for p in problems if lies_under(str(p["path"]), path)]
        if as_json:
            output.print_json({"run": run_record, "failures": problems})
            return
        if run_record is None:
            output.warn("no import run recorded yet")
            return
        rows = [(p["path"], p["category"], p["message"]) for p in problems]
    else:
        found = known_problems(engine, path)
        if as_json:
            output.print_json(found)
            return
        rows = [(p["path"], p["category"], p["message"]) for p in found]
    if not output.is_terminal():
        for row in rows:
            output.plain(*row)
        return
    for file_path, category, message in rows:
        output.line(f"{file_path}: {category}: {message}")
    if rows:
        output.err.print(f"{len(rows)} problem{'s' if len(rows) != 1 else ''}", style="dim")


def register(app: typer.Typer) -> None:
    app.command("errors")(boundary(errors))

"""``lora orphans``: model files without metadata, metadata without model files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lora_manager.cli import boundary, catalog, path_args

if TYPE_CHECKING:
    from lora_manager.services.orphans import Orphan


def orphans(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(metavar="PATH", help="Library folders to check.", show_default=False)],
    ignore: Annotated[list[str] | None, typer.Option("--ignore", metavar="PATTERN", help="Pattern to skip.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as a JSON array.")] = False,
) -> None:
    """List model files with no metadata sidecar, and sidecars whose model file is missing.

    For a .safetensors orphan, what its header says (output name, base model, top training
    tags) is shown; only the header is read. Nothing in the library is changed.

    Example: lora orphans ~/models/Lora
    """
    from lora_manager.cli import output
    from lora_manager.services.orphans import find_orphans

    problems: list[tuple[str, str, str]] = []
    found = find_orphans(catalog(ctx, create=False, warn_absent=False), path_args(paths), list(ignore or []), problems)
    if as_json:
        output.print_json([o.as_dict() for o in found])
    elif not output.is_terminal():
        for o in found:
            output.plain(o.kind, o.path, o.output_name, o.base_model, ", ".join(o.tags or []), o.detail)
    else:
        _table(found)
    # A folder that could not be listed, or a file refused as a link out, may hide orphans: say so.
    output.warn_lines([f"{path}: {kind}: {message}" for path, kind, message in problems])
    if problems:
        raise typer.Exit(1)


def _table(found: list[Orphan]) -> None:
    from lora_manager.cli import output

    rows = [(o.kind, o.path, o.output_name, o.base_model, o.detail) for o in found]
    output.table(["kind", "path", "header says", "base model", "detail"], rows)
    models = sum(o.kind == "model" for o in found)
    output.err.print(
        f"{models} model files without metadata, {len(found) - models} sidecars without a model", style="dim"
    )


def register(app: typer.Typer) -> None:
    app.command("orphans")(boundary(orphans))

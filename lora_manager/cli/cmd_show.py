"""``lora show``: everything the catalog knows about one LoRA."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from lora_manager.cli import boundary, catalog

LONG = ("description", "extra", "header_metadata", "stats", "sidecars", "hash_sources")


def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The LoRA's name (exact, or differing only in case).")],
    version: Annotated[str | None, typer.Option("--version", "-V", help="Which version (default: the newest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The full record as JSON.")] = False,
) -> None:
    """Show one LoRA's record; an unknown name exits 2 and suggests close names.

    Example: lora show "Celestial Anime Portraits" --version v1.1
    """
    from lora_manager.cli import output
    from lora_manager.services.catalog import find_adapter

    record = find_adapter(catalog(ctx, create=False), name, version)
    if as_json:
        output.print_json(record)
        return
    if not output.is_terminal():
        for key, value in record.items():
            output.plain(key, _text(value))
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in record.items():
        if value in (None, [], {}, ""):
            continue
        text = _text(value)
        table.add_row(*output.cells(key, text if key not in LONG or len(text) < 400 else text[:400] + " ..."))
    output.show(table)


def _text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.command("show")(boundary(show))

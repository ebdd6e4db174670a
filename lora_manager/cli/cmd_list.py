"""``lora list``: query the catalog."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import INT64_MAX, boundary, catalog

COLUMNS = ("name", "version", "base_model", "author_username", "tags", "weight", "file_path")


def list_(
    ctx: typer.Context,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only records with this tag (repeatable: all must match).")
    ] = None,
    base_model: Annotated[str | None, typer.Option("--base-model", "-b", help="e.g. 'SDXL 1.0', 'Pony'.")] = None,
    author: Annotated[str | None, typer.Option("--author", "-a", help="Civitai creator's username.")] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", "-s", help="Text in the name, version, author, file name, tags or trigger words."),
    ] = None,
    sort: Annotated[
        str, typer.Option("--sort", help="Field to sort by; prefix - to reverse (e.g. -published_at).")
    ] = "name",
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, max=INT64_MAX, help="At most this many records.")
    ] = None,
    missing: Annotated[bool, typer.Option("--missing", help="Only records whose files are gone.")] = False,
    active: Annotated[bool, typer.Option("--active", help="Only records marked active (`lora set`).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Full records as a JSON array.")] = False,
) -> None:
    """List the catalogued LoRAs: a table on a terminal, tab-separated lines in a pipe, or JSON.

    Example: lora list --tag anime --base-model "SDXL 1.0" --limit 20
    """
    from lora_manager.cli import output
    from lora_manager.services.catalog import ListQuery, iter_adapters

    engine = catalog(ctx, create=False)
    query = ListQuery(
        tags=list(tag or []),
        base_model=base_model,
        author=author,
        search=search,
        sort=sort,
        limit=limit,
        missing=True if missing else None,
        active=True if active else None,
    )
    # Streamed: the records are printed as the catalog gives them, never all held at once.
    if as_json:
        output.print_json_array(iter_adapters(engine, query))
        return
    records = iter_adapters(engine, query, fields=(*COLUMNS, "missing_since"))
    if not output.is_terminal():
        for r in records:
            if not output.plain(*(", ".join(r[c]) if c == "tags" else r[c] for c in COLUMNS)):
                break  # the reader has gone: the rest of the catalog is not fetched for nothing
        return
    rows = (
        (
            r["name"] + (" [missing]" if r["missing_since"] else ""),
            r["version"],
            r["base_model"],
            r["author_username"],
            ", ".join(r["tags"]),
            f"{r['weight']:g}",
            r["file_path"],
        )
        for r in records
    )
    count = output.table(["author" if c == "author_username" else c for c in COLUMNS], rows)
    output.err.print(f"{count} LoRA{'s' if count != 1 else ''}", style="dim")


def register(app: typer.Typer) -> None:
    app.command("list")(boundary(list_))

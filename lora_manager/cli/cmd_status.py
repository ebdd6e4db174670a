"""``lora status``: what the catalog holds and how the last imports went."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import INT64_MAX, boundary, catalog, settings


def status(
    ctx: typer.Context,
    runs: Annotated[int, typer.Option("--runs", min=0, max=INT64_MAX, help="How many recent import runs to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the catalog's location, its counts, and the most recent import runs.

    Example: lora status --runs 10
    """
    from lora_manager.cli import output
    from lora_manager.db.engine import catalog_name, is_stand_in
    from lora_manager.services.catalog import status as catalog_status

    engine = catalog(ctx, create=False)
    # A catalog not made yet is named by where it will be, not by its empty stand-in.
    url = settings(ctx).database_url() if is_stand_in(engine) else engine.url
    data = {"database": catalog_name(url), **catalog_status(engine, runs)}
    if as_json:
        output.print_json(data)
        return
    entries = data["entries"]
    lines = [
        f"database: {data['database']}",
        f"LoRAs: {data['adapters']} ({data['missing']} with files gone)",
        "entries: " + ", ".join(f"{n} {s}" for s, n in sorted(entries.items())) if entries else "entries: none yet",
    ]
    for run in data["runs"]:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(run["counts"].items()) if v)
        lines.append(
            f"run {run['id']}: {run['status']}, started {run['started_at']}, "
            f"finished {run['finished_at'] or '-'}: {counts or 'nothing'}"
        )
    for line in lines:
        output.line(line)


def register(app: typer.Typer) -> None:
    app.command("status")(boundary(status))

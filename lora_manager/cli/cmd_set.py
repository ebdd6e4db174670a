"""``lora set``: the user's own settings on a record, which imports never overwrite."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from lora_manager.cli import INT64_MAX, INT64_MIN, boundary, catalog


def _finite(value: float | None) -> float | None:
    """``--weight`` must be a number: ``inf`` and ``nan`` would be stored, then printed as invalid JSON."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The LoRA's name.")],
    version: Annotated[str | None, typer.Option("--version", "-V", help="Which version (default: newest).")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="Mark it in use, or not.")] = None,
    weight: Annotated[
        float | None, typer.Option("--weight", callback=_finite, help="Your preferred weight (kept across imports).")
    ] = None,
    reset_weight: Annotated[bool, typer.Option("--reset-weight", help="Go back to the sidecar's weight.")] = False,
    ordinal: Annotated[
        int | None,
        typer.Option("--ordinal", min=INT64_MIN, max=INT64_MAX, help="Your position for it in a list."),
    ] = None,
    archetype: Annotated[str | None, typer.Option("--archetype", help="Your category for it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the updated record as JSON.")] = False,
) -> None:
    """Set your own state on a LoRA (active, weight, ordinal, archetype); re-imports keep it.

    Example: lora set "Celestial Anime Portraits" --active --weight 0.8
    """
    from lora_manager.cli import output
    from lora_manager.errors import LoraError
    from lora_manager.services.catalog import set_user_state

    values: dict[str, Any] = {}
    if active is not None:
        values["active"] = active
    if weight is not None and reset_weight:
        raise LoraError("--weight and --reset-weight contradict each other")
    if weight is not None or reset_weight:
        values["weight"] = weight
    if ordinal is not None:
        values["ordinal"] = ordinal
    if archetype is not None:
        values["archetype"] = archetype or None
    if not values:
        raise LoraError("nothing to set: give --active/--inactive, --weight, --reset-weight, --ordinal or --archetype")
    record = set_user_state(catalog(ctx, create=False), name, version, values)
    if as_json:
        output.print_json(record)
    else:
        output.line(
            f"{record['name']} {record['version'] or ''}: active={record['active']} "
            f"weight={record['weight']:g} ({record['weight_source']}) ordinal={record['ordinal']} "
            f"archetype={record['archetype']}"
        )


def register(app: typer.Typer) -> None:
    app.command("set")(boundary(set_))

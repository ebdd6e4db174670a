"""``lora duplicates``: files stored twice, weights re-saved under another header, names claimed twice."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import boundary, catalog

HEADINGS = {"copies": "same file", "reheadered": "same weights, other header", "claimed": "one LoRA, several files"}


def duplicates(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as JSON.")] = False,
) -> None:
    """List model files stored twice, the same weights under another header, and files claiming one LoRA.

    Only hashes `lora hash` computed count, never a sidecar's claim, and only for files still
    unchanged on disk; files not hashed yet are counted, not guessed. Shows the space that
    keeping one copy of each file would free. Nothing is deleted.

    Example: lora duplicates --json
    """
    from rich.filesize import decimal

    from lora_manager.cli import output
    from lora_manager.services.hashing import find_duplicates

    report = find_duplicates(catalog(ctx, create=False))
    if as_json:
        output.print_json(report.as_dict())
        return
    plain = not output.is_terminal()
    for g in report.groups:
        if not plain:
            size = (
                f": {len(g.files)} x {decimal(g.files[0]['size'])}, {decimal(g.freeable)} to free" if g.freeable else ""
            )
            output.line(f"{HEADINGS[g.kind]} ({g.key[:16]}){size}")
        for f in g.files:
            mark = "catalogued" if f.get("catalogued") else ""
            if plain:
                output.plain(g.kind, g.key, f["path"], f.get("size"), f.get("sha256"), mark)
            else:
                sha = f" sha256 {f['sha256'][:10]}" if g.kind != "copies" and f.get("sha256") else ""
                output.line(f"  {f['path']}{sha}{'  (' + mark + ')' if mark else ''}")
    counts = {k: sum(g.kind == k for g in report.groups) for k in HEADINGS}
    output.warn(
        f"{_n(counts['copies'], 'set')} of copies ({decimal(report.freeable)} could be freed), "
        f"{_n(counts['reheadered'], 'set')} of re-headered weights, "
        f"{_n(counts['claimed'], 'LoRA')} claimed by several files"
    )
    if report.unhashed:
        output.warn(f"{_n(report.unhashed, 'model file')} not hashed yet: run `lora hash` to include them")
    if report.stale:
        output.warn(f"{_n(len(report.stale), 'hashed file')} changed or vanished since: run `lora hash` again")


def register(app: typer.Typer) -> None:
    app.command("duplicates")(boundary(duplicates))


def _n(count: int, noun: str) -> str:
    """``1 set``, ``2 sets``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""``lora verify``: check the hashes the sidecars claim against the ones computed from the files."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import boundary, catalog, path_args
from lora_manager.errors import EXIT_FILES_FAILED


def verify(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PATH",
            help="Folders or model files to check (default: the whole catalog).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing unless a hash disagrees.")] = False,
) -> None:
    """Compare the SHA256 (or AutoV2, AutoV3) each sidecar claims with the one `lora hash` computed.

    A mismatch means a corrupt or partial download, or a sidecar beside the wrong file. Files
    not hashed yet, or changed since, are counted as unverified. Exits 1 if any hash disagrees.

    Example: lora verify ~/models/Lora
    """
    from lora_manager.cli import output
    from lora_manager.services.hashing import verify as verify_hashes

    report = verify_hashes(catalog(ctx, create=False, warn_absent=False), path_args(paths))
    if as_json:
        output.print_json(report.as_dict())
    elif not output.is_terminal():
        for m in report.mismatches:
            output.plain("mismatch", m.path, m.hash, m.claimed, m.computed, m.source, m.sidecar)
    else:
        for m in report.mismatches:
            output.line(f"MISMATCH {m.path} ({m.name}{' ' + m.version if m.version else ''})")
            output.line(f"  {m.hash} claimed  {m.claimed}  by {m.sidecar or m.source}")
            output.line(f"  {m.hash} computed {m.computed}")
    if not as_json and not (quiet and not report.mismatches):
        output.warn(
            f"verified: {report.ok} match, {len(report.mismatches)} mismatched, {len(report.unverified)} unverified, "
            f"{report.no_claim} without a claimed hash, {len(report.missing)} missing"
        )
        unhashed = len(report.unverified) - len(report.autov3_only)
        if unhashed:
            noun = "file is" if unhashed == 1 else "files are"
            output.warn(f"{unhashed} {noun} not hashed yet or changed since: run `lora hash` first")
        if report.autov3_only:
            count = len(report.autov3_only)
            noun = "file claims" if count == 1 else "files claim"
            output.warn(f"{count} {noun} only an AutoV3: run `lora hash --tensor-hash` to check it")
    if report.mismatches:
        raise typer.Exit(EXIT_FILES_FAILED)


def register(app: typer.Typer) -> None:
    app.command("verify")(boundary(verify))

"""``lora db``: the catalog's schema revision; upgrade it explicitly (every command also does so on open)."""

from __future__ import annotations

from typing import Annotated

import typer

from lora_manager.cli import boundary, settings

db_app = typer.Typer(
    name="db",
    help="The catalog database's schema: show its revision, or upgrade it.\n\nExample: lora db status --json",
    no_args_is_help=True,
)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the catalog (its file, or its URL without the password), schema revision, head, and pending upgrade.

    Changes nothing, and creates no catalog file.

    Example: lora --db postgresql+psycopg://lora@db.lan/lora db status
    """
    from lora_manager.cli import output
    from lora_manager.db.engine import (
        catalog_file_stat,
        catalog_name,
        create_catalog_engine,
        is_blank_file,
        sqlite_path,
    )
    from lora_manager.db.migrate import HEAD, schema_state

    url = settings(ctx).database_url()
    path = sqlite_path(url)
    st = catalog_file_stat(path) if path is not None else None
    absent = path is not None and (st is None or is_blank_file(path, st))
    engine = None if absent else create_catalog_engine(url)
    try:
        state = schema_state(engine) if engine is not None else None
    finally:
        if engine is not None:
            engine.dispose()
    data = {
        "database": catalog_name(url),
        "exists": state is not None,
        "revision": state.current if state else None,
        "head": HEAD,
        "upgrade_pending": state.pending if state else False,
        "newer_than_this_release": not state.known if state else False,
    }
    if as_json:
        output.print_json(data)
        return
    if state is None:
        # As cli.catalog has it: the commands that only read (create=False) leave a missing file missing.
        note = (
            "no catalog yet: `lora import FOLDER` creates it (so do `lora hash` and `lora db upgrade`); "
            "commands that only read create nothing"
        )
    elif not state.known:
        note = "written by a newer lora-manager; upgrade lora-manager to use it"
    elif state.pending:
        note = "upgrade pending: run `lora db upgrade` (any command that opens the catalog does it too)"
    else:
        note = "up to date"
    blank = "none (made before migrations)" if state and state.legacy else "none (empty database)"
    for line in (
        f"database: {data['database']}",
        f"revision: {data['revision'] or blank}",
        f"head: {HEAD}",
        f"status: {note}",
    ):
        output.line(line)


def upgrade(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Upgrade the catalog's schema to this release's head (a no-op when it is there already).

    Back up a SQLite catalog file first; a catalog written by a newer release is refused.

    Example: lora db upgrade
    """
    from lora_manager.cli import output
    from lora_manager.db.engine import create_catalog_engine
    from lora_manager.db.migrate import upgrade as run_upgrade

    engine = create_catalog_engine(settings(ctx).database_url())
    try:
        before, after = run_upgrade(engine)
    finally:
        engine.dispose()
    if quiet:
        return
    if before == after:
        output.line(f"already at revision {after} (head)")
    else:
        output.line(f"upgraded from revision {before or 'none (empty database)'} to {after}")


def register(app: typer.Typer) -> None:
    db_app.command("status")(boundary(status))
    db_app.command("upgrade")(boundary(upgrade))
    app.add_typer(db_app, name="db")

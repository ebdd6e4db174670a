"""The ``lora`` command: a thin Typer shell over the services.

Only Typer and our ``errors`` are imported at start-up; every command imports what it
needs when it runs, so ``lora --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from lora_manager import __version__
from lora_manager.errors import EXIT_INTERRUPTED, EXIT_USAGE, LoraError

if TYPE_CHECKING:
    from sqlalchemy import Engine

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="lora",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Settings:
    """Options of the ``lora`` command itself, shared by every subcommand."""

    db: str | None = None


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def catalog(ctx: typer.Context) -> Engine:
    """The catalog the command works on (``--db``, ``LORA_DB`` or the default location).

    Called once the command has imported what it needs: the console script loaded with the
    garbage collector off, and it comes back on here (see :mod:`lora_manager.console`).
    """
    from lora_manager.console import loaded
    from lora_manager.db import open_catalog

    engine = open_catalog(settings(ctx).db)
    loaded()
    return engine


def fail(message: str) -> None:
    """One line on stderr, without Rich (it may not be imported yet).

    Messages name files and LoRAs from the library: control characters in them are escaped.
    """
    from lora_manager.cli.output import safe_text

    sys.stderr.write(f"lora: error: {safe_text(message)}\n")
    sys.stderr.flush()


def boundary(func: F) -> F:
    """The error boundary of every command: LoraError -> one line and its exit code.

    Ctrl-C exits 130 quietly and a closed pipe is not an error. Anything else is our bug:
    one line naming it (set LORA_DEBUG=1 for the traceback), exit 2, never a user's data
    in a traceback's locals.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LoraError as exc:
            fail(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            silence_stdout()
            raise typer.Exit(0) from None
        except Exception as exc:
            if os.environ.get("LORA_DEBUG"):
                raise
            fail(_describe(exc))
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper  # type: ignore[return-value]


def _describe(exc: Exception) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        return f"database error: {cause} (retry; if it persists, check the database with `lora status`)"
    return f"unexpected {type(exc).__name__}: {exc} (a bug; rerun with LORA_DEBUG=1 and report it)"


def silence_stdout() -> None:
    """Point stdout at /dev/null after EPIPE, so that nothing else fails on writing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _show_version(value: bool) -> None:
    if value:
        try:
            sys.stdout.write(f"lora-manager {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="LORA_DB",
            metavar="PATH_OR_URL",
            help="Catalog database: a SQLite file path or a SQLAlchemy URL (default: catalog.db in the "
            "user data directory).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A fast, trustworthy catalog of a Stable Diffusion LoRA library.

    Example: lora import ~/models/Lora && lora list --tag anime
    """
    ctx.obj = Settings(db=db)


def _register() -> None:
    from lora_manager.cli import (
        cmd_db,
        cmd_duplicates,
        cmd_errors,
        cmd_hash,
        cmd_import,
        cmd_list,
        cmd_orphans,
        cmd_scan,
        cmd_set,
        cmd_show,
        cmd_status,
        cmd_verify,
    )

    for module in (
        cmd_import,
        cmd_scan,
        cmd_orphans,
        cmd_list,
        cmd_show,
        cmd_set,
        cmd_errors,
        cmd_status,
        cmd_db,
        cmd_hash,
        cmd_verify,
        cmd_duplicates,
    ):
        module.register(app)


_register()


def main() -> None:
    """The console script: :func:`run`, then leave without the interpreter's teardown.

    Freeing every object of SQLAlchemy, pydantic and our own, one by one, cost every command
    30-90 ms and did nothing for it: the command's output is flushed and its catalog
    connections closed by then. An unexpected exception still ends the usual way.
    """
    code = run()
    with contextlib.suppress(OSError):  # a closed stderr: nothing more can be said
        sys.stderr.flush()
    os._exit(code)


def run() -> int:
    """Run the app and return its exit code; a closed pipe at exit is not an error."""
    code: int = 0
    try:
        app(prog_name="lora")
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
    if "lora_manager.db.engine" in sys.modules:  # imported only by commands that open the catalog
        from lora_manager.db.engine import dispose_all

        dispose_all()
    return code


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` would make the process's exit code (a message is printed, as it would be)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1

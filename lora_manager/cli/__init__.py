"""The ``lora`` command: a thin Typer shell over the services.

Only Typer and our ``errors`` are imported at start-up; every command imports what it
needs when it runs, so ``lora --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from lora_manager import __version__, console
from lora_manager.errors import EXIT_INTERRUPTED, EXIT_USAGE, LoraError, database_cause

if TYPE_CHECKING:
    from sqlalchemy import Engine

F = TypeVar("F", bound=Callable[..., Any])

# Bounds of integer options: the database stores 64-bit integers (SQLite INTEGER, PostgreSQL
# BIGINT), so a larger number is a usage error naming the option, not a failed query.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

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
    db_source: str = "--db"  # or "LORA_DB": what a message about the value tells the user to fix

    def database_url(self) -> str:
        """The catalog's URL (see ``db.engine.database_url``: a value that is no catalog is refused here)."""
        from lora_manager.db.engine import database_url

        return database_url(self.db, self.db_source)


def settings(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def path_args(values: list[str] | None) -> list[str]:
    """The PATH arguments as typed: an empty one is refused (as a ``Path`` it would be the working folder)."""
    if any(value == "" for value in values or []):
        raise LoraError("an empty PATH argument names no folder")
    return list(values or [])


def catalog(ctx: typer.Context, create: bool = True, warn_absent: bool = True) -> Engine:
    """The catalog the command works on (``--db``, ``LORA_DB`` or the default location).

    A command that only reads passes ``create=False``: a SQLite catalog that does not exist is
    then not made; the command sees an empty one, and (``warn_absent``: for the commands that
    query the catalog) a warning names the path, so a typo in ``--db`` shows at once.

    Called once the command has imported what it needs: the console script loaded with the
    garbage collector off, and it comes back on here (see :mod:`lora_manager.console`).
    """
    from lora_manager.console import loaded
    from lora_manager.db import open_catalog

    chosen = settings(ctx)
    engine = open_catalog(chosen.db, create=create, source=chosen.db_source)
    if not create and warn_absent:
        from lora_manager.db.engine import catalog_name, is_stand_in

        if is_stand_in(engine):
            from lora_manager.cli.output import warn

            where = catalog_name(chosen.database_url())
            warn(f"lora: warning: no catalog at {where} yet (`lora import FOLDER` makes it); nothing is catalogued")
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
            _refuse_undecodable(kwargs)
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


def _refuse_undecodable(kwargs: dict[str, Any]) -> None:
    """A text argument that is not valid UTF-8 (an undecodable byte of the command line) is a usage error.

    Names, tags, patterns and the like are compared with the catalog's text, which is UTF-8:
    such a value could match nothing and cannot even be sent to the database. The PATH
    arguments (``paths``: the folders of ``import``, ``scan``, ``orphans``, ``verify``) are
    left to their commands, which say what they do with a folder whose name is not UTF-8.
    """
    for name, value in kwargs.items():
        if name == "paths":
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, str) and not _is_utf8(item):
                shown = item.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                raise LoraError(
                    f"{_parameter_label(kwargs.get('ctx'), name)} '{shown}' is not valid UTF-8; "
                    "give it in UTF-8 (check the terminal's or the script's encoding)"
                )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of argv that did not decode
        return False
    return True


def _parameter_label(ctx: object, name: str) -> str:
    """How the user wrote parameter ``name``: ``--tag`` for an option, ``NAME`` for an argument."""
    command = getattr(ctx, "command", None)
    for param in getattr(command, "params", ()):
        if param.name == name:
            if param.param_type_name == "option":
                longs = [opt for opt in param.opts if opt.startswith("--")]
                return str((longs or param.opts)[0])
            if isinstance(param.metavar, str) and param.metavar.strip("[]."):
                return param.metavar.strip("[].")  # lora hash's [PATH|QUERY]
            break
    return name.upper()


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        # A path the user gave (or one under it) that the system refuses: too long a name, a
        # loop of links, no permission. Not our bug: name the path and the system's reason.
        return f"{os.fsdecode(exc.filename)}: {exc.strerror or exc}"
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        return f"database error: {database_cause(exc)} (retry; if it persists, check the database with `lora status`)"
    return f"unexpected {type(exc).__name__}: {exc} (a bug; rerun with LORA_DEBUG=1 and report it)"


def output_failed(exc: OSError) -> LoraError:
    """The error for stdout refusing our output (a full disk or quota where it is redirected, an I/O
    error): the user's environment, not our bug. What is still buffered goes to /dev/null, so that
    the flush at exit does not fail a second time."""
    silence_stdout()
    return LoraError(f"cannot write the output: {exc.strerror or exc}")


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
    # Typer read LORA_DB into ``db`` when --db was not given: messages about the value name LORA_DB then.
    source = ctx.get_parameter_source("db")
    ctx.obj = Settings(db=db, db_source="LORA_DB" if source is not None and source.name == "ENVIRONMENT" else "--db")


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
    import warnings

    warnings.showwarning = _warning_line
    try:
        code = run()
    except KeyboardInterrupt:  # a Ctrl-C in the instants between run()'s own guards
        code = EXIT_INTERRUPTED
    if console.interrupted:  # a Ctrl-C where Python could not raise it (see console._unraisable)
        code = EXIT_INTERRUPTED
    with contextlib.suppress(OSError, KeyboardInterrupt):  # a closed stderr: nothing more can be said
        sys.stderr.flush()
    os._exit(code)


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A library's warning, as one line (never Python's two, with a line of our source)."""
    from lora_manager.cli.output import safe_text

    with contextlib.suppress(OSError):
        sys.stderr.write(f"lora: warning: {safe_text(str(message))}\n")


def run() -> int:
    """Run the app and return its exit code; a closed pipe at exit is not an error.

    Ctrl-C exits 130 at any moment, without a traceback: while the command runs (its boundary,
    or Typer while it parses), and while the output is flushed and the catalog's connections
    are closed at the end, when it is noted rather than raised so that a SQLite file is closed
    (and its WAL checkpointed) in one piece.
    """
    code: int = 0
    try:
        app(prog_name="lora")
    except SystemExit as exc:
        code = _exit_code(exc.code) if not isinstance(exc.__context__, BrokenPipeError) else _closed_pipe_code(exc)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except OSError as exc:  # writing help, a usage error or --version (a command's own output: its boundary)
        code = _unwritable_output(exc)
    with _sigint_noted() as interrupted:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
        except OSError as exc:
            code = _unwritable_output(exc)
        except KeyboardInterrupt:  # before the note-taking handler was in place
            code = EXIT_INTERRUPTED
        if "lora_manager.db.engine" in sys.modules:  # imported only by commands that open the catalog
            from lora_manager.db.engine import dispose_all

            dispose_all()
    return EXIT_INTERRUPTED if interrupted else code


def _unwritable_output(exc: OSError) -> int:
    """Say that the output could not be written (stdout, or stderr: then nothing can be said) and exit 2."""
    with contextlib.suppress(OSError):
        fail(output_failed(exc).message)
    return EXIT_USAGE


class _Noted:
    """A SIGINT handler that records the signal instead of raising KeyboardInterrupt."""

    def __init__(self) -> None:
        self.caught = False

    def __call__(self, signum: int, frame: object) -> None:
        self.caught = True

    def __bool__(self) -> bool:
        return self.caught


@contextlib.contextmanager
def _sigint_noted() -> Iterator[_Noted]:
    """Within this block a Ctrl-C is only noted (in the main thread; elsewhere none arrives)."""
    from lora_manager.cli.sigint import sigint_handler

    noted = _Noted()
    with sigint_handler(noted):
        yield noted


def _closed_pipe_code(exc: SystemExit) -> int:
    """The exit code of a run whose reader went away while Typer wrote help or a usage error.

    Typer prints those through Rich consoles of its own (not ours, see ``output``), which exit 1
    on a closed pipe (``lora --help | head -1``), as Typer itself does. A closed pipe is no error:
    the usage error being shown (the click exception whose frame the write was made from: the
    message printed, or a bare ``lora``'s help built) keeps its code, 2; help asked for exits 0.
    """
    tb = exc.__traceback__
    code = 0
    while tb is not None:
        shown = tb.tb_frame.f_locals.get("self")
        exit_code = getattr(shown, "exit_code", None)
        if isinstance(shown, Exception) and isinstance(exit_code, int):
            code = exit_code
        tb = tb.tb_next
    silence_stdout()
    return code


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` would make the process's exit code (a message is printed, as it would be)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1

"""Where output goes: data on stdout, progress and errors on stderr; plain when not a terminal.

Plain lines are written directly; Rich is imported only when a table or a progress bar is
drawn on a terminal (the consoles ``out`` and ``err`` are made on first use), so a command in
a pipe or under cron does not pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lora_manager.cli import silence_stdout

_consoles: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """``out`` and ``err``: Rich consoles on stdout and stderr, made when first needed."""
    if name not in ("out", "err"):
        raise AttributeError(name)
    if name not in _consoles:
        from rich.console import Console

        class _Console(Console):
            """A console for which a reader that went away (``lora status | head``) is no error."""

            def on_broken_pipe(self) -> None:
                # Rich's default raises SystemExit(1): send the rest to /dev/null instead, so the
                # command finishes and exits with its own code.
                silence_stdout()

        _consoles[name] = _Console(stderr=name == "err", highlight=False, soft_wrap=True)
    return _consoles[name]


def is_terminal(stderr: bool = False) -> bool:
    stream = sys.stderr if stderr else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _write(stream: Any, text: str) -> None:
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        if stream is sys.stdout:
            silence_stdout()


def print_json(data: Any) -> None:
    """JSON on stdout, untouched by Rich (no wrapping, no markup)."""
    _write(sys.stdout, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def line(text: str) -> None:
    """One line of text on stdout, as written (no markup, no wrapping)."""
    _write(sys.stdout, text + "\n")


def plain(*fields: Any) -> None:
    """One tab-separated line on stdout, for pipes and grep."""
    line("\t".join("" if f is None else str(f).replace("\t", " ").replace("\n", " ") for f in fields))


def warn(message: str) -> None:
    """One line on stderr."""
    _write(sys.stderr, message + "\n")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Any]:
    """A Rich progress bar on stderr when it is a terminal; a no-op callback otherwise.

    Yields ``update(phase, done, total)``.
    """
    if not enabled or not is_terminal(stderr=True):
        yield lambda phase, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=__getattr__("err"),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update

"""Where output goes: data on stdout, progress and errors on stderr; plain when not a terminal.

Rich is imported here, so only commands that print import this module.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from lora_manager.cli import silence_stdout


class _Console(Console):
    """A Rich console for which a reader that went away (``lora status | head``) is no error."""

    def on_broken_pipe(self) -> None:
        # Rich's default raises SystemExit(1). Send the rest to /dev/null instead, so the
        # command finishes and exits with its own code.
        silence_stdout()


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)


def is_terminal() -> bool:
    return out.is_terminal


def print_json(data: Any) -> None:
    """JSON on stdout, untouched by Rich (no wrapping, no markup)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def plain(*fields: Any) -> None:
    """One tab-separated line on stdout, for pipes and grep."""
    sys.stdout.write(
        "\t".join("" if f is None else str(f).replace("\t", " ").replace("\n", " ") for f in fields) + "\n"
    )


def warn(message: str) -> None:
    err.print(message, markup=False)


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Any]:
    """A Rich progress bar on stderr when it is a terminal; a no-op callback otherwise.

    Yields ``update(phase, done, total)``.
    """
    if not enabled or not err.is_terminal:
        yield lambda phase, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update

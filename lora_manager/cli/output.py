"""Where output goes: data on stdout, progress and errors on stderr; plain when not a terminal.

Plain lines are written directly; Rich is imported only when a table or a progress bar is
drawn on a terminal (the consoles ``out`` and ``err`` are made on first use), so a command in
a pipe or under cron does not pay for it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lora_manager.cli import output_failed, silence_stdout

_consoles: dict[str, Any] = {}

# Characters that must never reach a terminal or a line-oriented pipe as they are: C0 controls
# (tab, newline and carriage return too: they would split a plain line or forge another), DEL,
# C1 controls (U+009B is CSI on its own), the Unicode line and paragraph separators, the bidi
# controls that reorder what is shown (U+202E makes "exe.txt" read "txt.exe"), and lone
# surrogates (an undecodable byte of a file name, which would go out raw or fail to encode).
_UNSAFE_RANGES = (
    (0x00, 0x1F),  # C0
    (0x7F, 0x9F),  # DEL, C1
    (0x061C, 0x061C),  # Arabic letter mark
    (0x200B, 0x200B),  # zero-width space: hides a difference between two names
    (0x200E, 0x200F),  # LRM, RLM
    (0x2028, 0x2029),  # line and paragraph separators
    (0x202A, 0x202E),  # LRE, RLE, PDF, LRO, RLO
    (0x2066, 0x2069),  # LRI, RLI, FSI, PDI
    (0xD800, 0xDFFF),  # lone surrogates
    (0x2060, 0x2060),  # word joiner
    (0xFEFF, 0xFEFF),  # zero-width no-break space (a stray byte-order mark)
)
_UNSAFE = re.compile("[" + "".join(rf"\U{lo:08x}-\U{hi:08x}" for lo, hi in _UNSAFE_RANGES) + "]")
_ESCAPES = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for lo, hi in _UNSAFE_RANGES
    for code in range(lo, hi + 1)
} | {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}


def safe_text(text: str) -> str:
    """``text`` with every control, bidi and separator character shown as a visible escape (``\\x1b``).

    For anything read from the library (names, tags, descriptions, file names) on its way to a
    terminal or a plain line; ``--json`` keeps the exact text. Ordinary text, non-ASCII letters
    and emoji included, is returned as it is, and fast: the scan is one regex search.
    """
    if _UNSAFE.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def cells(*values: Any) -> list[Any]:
    """Rich table cells for untrusted values: escaped by :func:`safe_text`, never read as markup."""
    from rich.text import Text

    return [Text(safe_text("" if v is None else str(v))) for v in values]


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


# A table column narrower than this shows a name or a path as "Cel…" or "…": on a terminal too
# narrow to give every column that much, records are printed one block of lines each instead.
MIN_COLUMN = 8


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], boxed: bool = True) -> int:
    """``rows`` on the terminal (stdout) under ``headers``; returns how many were printed.

    A Rich table when the terminal gives every column :data:`MIN_COLUMN` characters (besides
    its padding and borders); else one block per row, a ``header: value`` line per field with
    a value and a blank line between blocks, which a narrow terminal wraps but keeps readable.
    """
    console = __getattr__("out")
    per_column = MIN_COLUMN + (3 if boxed else 2)  # the padding on each side, and a border
    if console.width >= len(headers) * per_column + boxed:
        from rich.table import Table

        drawn = Table(*headers, header_style="bold") if boxed else Table(*headers, box=None)
        for row in rows:
            drawn.add_row(*cells(*row))
        show(drawn)
        return drawn.row_count
    count = 0
    for row in rows:
        fields = [f"{h}: {safe_text(str(v))}" for h, v in zip(headers, row, strict=True) if v not in (None, "")]
        if not _write(sys.stdout, ("\n" if count else "") + "\n".join(fields) + "\n"):
            break  # the reader has gone
        count += 1
    return count


def is_terminal(stderr: bool = False) -> bool:
    stream = sys.stderr if stderr else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _write(stream: Any, text: str) -> bool:
    """Write and flush ``text``; False when the reader has gone (stdout then goes to /dev/null)."""
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        if stream is sys.stdout:
            silence_stdout()
        return False
    except OSError as exc:
        if stream is sys.stdout:  # a full disk where it is redirected: one line saying so, not "a bug"
            raise output_failed(exc) from None
        raise
    return True


def show(renderable: Any) -> None:
    """A Rich table or text on the terminal (stdout); a reader that went away is no error (see ``out``)."""
    try:
        __getattr__("out").print(renderable)
    except OSError as exc:
        raise output_failed(exc) from None


def print_json(data: Any) -> None:
    """JSON on stdout, untouched by Rich (no wrapping, no markup)."""
    _write(sys.stdout, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def print_json_array(items: Iterable[Any]) -> None:
    """What :func:`print_json` prints for ``list(items)``, written as the items come (a few at a
    time in memory), and no more asked for once the reader has gone (``lora list --json | head``)."""
    pending: list[str] = []
    size = 0
    first = True
    for item in items:
        # indent=2 puts every newline between tokens (strings escape theirs): indenting each
        # line of an element by two spaces is what indenting it inside the array gives.
        text = json.dumps(item, ensure_ascii=False, indent=2, default=str).replace("\n", "\n  ")
        pending.append(("[\n  " if first else ",\n  ") + text)
        first = False
        size += len(text)
        if size >= 1 << 16:
            if not _write(sys.stdout, "".join(pending)):
                return
            pending, size = [], 0
    pending.append("[]\n" if first else "\n]\n")
    _write(sys.stdout, "".join(pending))


def line(text: str) -> None:
    """One line of text on stdout, control characters escaped (no markup, no wrapping)."""
    _write(sys.stdout, safe_text(text) + "\n")


def plain(*fields: Any) -> bool:
    """One tab-separated line on stdout, for pipes and grep; a tab or newline in a field is escaped.
    False once the reader has gone (``lora list | head``): no use printing more."""
    return _write(sys.stdout, "\t".join("" if f is None else safe_text(str(f)) for f in fields) + "\n")


def warn(message: str) -> None:
    """One line on stderr, control characters escaped."""
    _write(sys.stderr, safe_text(message) + "\n")


MAX_LISTED = 20  # problem lines a command prints on stderr before "... and N more"


def warn_lines(lines: list[str], more: str = "") -> None:
    """The first :data:`MAX_LISTED` of ``lines`` on stderr, then how many more (``more`` says where they are)."""
    for line in lines[:MAX_LISTED]:
        warn(line)
    if len(lines) > MAX_LISTED:
        warn(f"... and {len(lines) - MAX_LISTED} more" + (f" ({more})" if more else ""))


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

"""Ctrl-C handlers installed for a block, the way every command does it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def sigint_handler(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` answers Ctrl-C within this block, the previous handler after it.

    Not when the program started with Ctrl-C ignored (``nohup``, ``cmd &`` in a script): it
    stays ignored throughout. Nor outside the main thread, where no signal arrives.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

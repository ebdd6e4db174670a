"""Calls that must answer at once: a FIFO must never make them wait for a writer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def answers_at_once(call: Callable[[], T], what: str, seconds: float = 20) -> T | BaseException:
    """``call()``'s result, or the exception it raised; fails the test if it is still waiting after ``seconds``.

    Run in a daemon thread, so a call that does wait cannot hang the test run itself.
    """
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the test, which says what it expected
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), f"{what} waited on a FIFO"
    return outcome[0]

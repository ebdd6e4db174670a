"""Ignore rules: gitignore-style ``--ignore`` patterns and the root's ``.loraignore`` file.

Read once per run into an :class:`IgnoreRules` value; the walk skips what they match, and
their text goes into every directory fingerprint, so new rules mean a fresh look.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lora_manager.errors import LoraError

IGNORE_FILE = ".loraignore"


@dataclass(frozen=True)
class IgnoreRules:
    """The gitignore-style rules in force for one root: ``--ignore`` patterns and its ``.loraignore``."""

    match: Callable[[str], bool] | None = None  # relative path (a folder ends with "/") -> ignored?
    text: str = ""  # the rules as read: part of every directory fingerprint, so new rules mean a fresh look


def load_ignore(root: str, patterns: Iterable[str] = ()) -> IgnoreRules:
    """The rules from ``patterns`` and the root's ``.loraignore`` (read once per run)."""
    lines = list(patterns)
    ignore_file = os.path.join(root, IGNORE_FILE)
    if os.path.isfile(ignore_file):
        try:
            with open(ignore_file, encoding="utf-8", errors="replace") as f:
                lines += f.read(1_000_000).splitlines()
        except OSError as exc:
            raise LoraError(f"{ignore_file}: cannot read: {exc.strerror}") from None
    if not lines:
        return IgnoreRules()
    import pathspec

    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # pathspec raises its own error types, and re.error from a bad range
        raise LoraError(f"an ignore pattern (--ignore or {ignore_file}) is not valid: {exc}") from None
    return IgnoreRules(spec.match_file, "\n".join(lines))

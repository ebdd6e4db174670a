"""Ignore rules: gitignore-style ``--ignore`` patterns and the root's ``.loraignore`` file.

Read once per run into an :class:`IgnoreRules` value; the walk skips what they match, and
their text goes into every directory fingerprint, so new rules mean a fresh look.

The rules are checked before they are used, because pathspec turns each pattern into a
Python regular expression that is tried on every path of the walk:

- ``.loraignore`` is read only when it is a regular file inside the library (a link to a
  file elsewhere in the library is fine); a link out of it, a FIFO or anything else stops
  the run, since dropping the user's rules silently would import what they meant to skip.
- They are matched by RE2 (linear time in the path, whatever the pattern: see ``_compile``)
  where it is installed, as it is with this package. Under Python's ``re``, the fallback,
  each ``*`` becomes ``[^/]*`` and a ``**`` folder ``(?:.+/)?``; a few of them in one
  pattern make the regex backtrack for hours on a long path (``a*a*a*a*a*x`` takes 10 s
  on one 255-character name, ``a/**/a/**/a/**/x`` 23 s on a 2,000-folder-deep path,
  ``*a*a*a/**/x`` 1.2 s on a 4,000-character one). With at most :data:`MAX_WILDCARDS`
  ``*`` and :data:`MAX_DEEP_WILDCARDS` leading or inner ``**`` folder, the worst path
  we found costs about 80 ms (three ``*`` on a 4,000-character path; 8 ms with two), and
  ordinary patterns such as ``*-*-*.json`` are still allowed. ``?`` and ``[...]`` match
  one character and cannot backtrack; a trailing ``/**`` matches nothing more than ``/``.
- Every pattern is tried on every path: under ``re``, about 0.2 µs per pattern and path, so
  the :data:`MAX_PATTERNS` patterns cost about 2 s per 100,000 paths (RE2: ~0.1 s).
- Compiling a pattern grows faster than its length (999,000 ``?`` took minutes): one
  longer than :data:`MAX_PATTERN_CHARS`, the longest path Linux has, could match nothing
  anyway, and is refused.

A folder that a rule ignores is not walked at all, as git does. With a negation (``!``)
among the rules, folders are walked and each file is matched on its own instead:
pathspec, matching a folder path, lets a ``!`` rule for folders (``!*/``) lose to a ``*``
before it, so whitelist rules (``*``, ``!*/``, ``!*.json``) would skip the whole
library, and a record wrongly ignored is marked missing (``--prune`` deletes it). Matched
file by file, a ``!`` rule may keep a file below a folder that git would have skipped:
the safer way to differ.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lora_manager.errors import LoraError
from lora_manager.paths import LeadsOut, is_inside, open_regular

IGNORE_FILE = ".loraignore"
MAX_IGNORE_BYTES = 1_000_000
MAX_PATTERNS = 100  # from --ignore and .loraignore together; comments and blank lines are free
MAX_WILDCARDS = 3  # "*" in one pattern, outside "**" folders
MAX_DEEP_WILDCARDS = 1  # leading or inner "**" folders in one pattern (a trailing one is free)
MAX_PATTERN_CHARS = 4096  # PATH_MAX on Linux
_SHOWN = 200  # characters of a pattern quoted in an error


@dataclass(frozen=True)
class IgnoreRules:
    """The gitignore-style rules in force for one root: ``--ignore`` patterns and its ``.loraignore``."""

    match: Callable[[str], bool] | None = None  # relative path (a folder ends with "/") -> ignored?
    text: str = ""  # the rules as read: part of every directory fingerprint, so new rules mean a fresh look
    engine: str = ""  # what matches them: "re2" (linear time), or "re" (see ``_compile``)


@dataclass(frozen=True)
class _Rule:
    where: str  # "--ignore" or "<root>/.loraignore, line N"
    pattern: str


def load_ignore(root: str, patterns: Iterable[str] = ()) -> IgnoreRules:
    """The rules from ``patterns`` and the root's ``.loraignore`` (read once per run).

    Raises :class:`LoraError` (exit 2) naming the file, the line and the reason when the file
    cannot be used or a pattern is not valid, could take too long to match, or there are too many.
    """
    lines = list(patterns)
    rules = [_Rule("--ignore", p) for p in lines]
    ignore_file = os.path.join(root, IGNORE_FILE)
    text = _read_ignore_file(os.path.realpath(root), ignore_file)
    if text is not None:
        file_lines = text.splitlines()
        lines += file_lines
        rules += [_Rule(f"{ignore_file}, line {n}", line) for n, line in enumerate(file_lines, 1)]
    rules = [r for r in rules if _is_pattern(r.pattern)]
    if len(rules) > MAX_PATTERNS:
        source = ignore_file if text is not None else "--ignore"
        raise LoraError(
            f"{source}: {len(rules)} ignore patterns (--ignore and {IGNORE_FILE} together); at most "
            f"{MAX_PATTERNS} are allowed, since each one is tried on every path: "
            "keep the ones you need, or ignore whole folders"
        )
    for rule in rules:
        _check_wildcards(rule)
    if not lines:
        return IgnoreRules()
    try:
        spec, engine = _compile(lines)
    except Exception:  # pathspec raises its own error types, and re.error from a bad range
        for rule in rules:  # only on failure: which one, and why
            _compile_one(rule)
        raise LoraError(f"the ignore patterns (--ignore and {ignore_file}) are not valid together") from None
    match: Callable[[str], bool] = spec.match_file
    if any(r.pattern.startswith("!") for r in rules):  # see the module's docstring
        match = _files_only(spec.match_file)
    return IgnoreRules(match, "\n".join(lines), engine)


def _compile(lines: list[str]) -> tuple[Any, str]:
    """The rules as one pathspec, matched by RE2 where it takes them, else by Python's ``re``.

    RE2 (``google-re2``, a dependency) matches in time linear in the path whatever the
    pattern: under Python's backtracking engine, 100 patterns such as ``*a*a*/**/b`` (within
    the wildcard limits) cost 1.8 s on one 250-character name, a hostile library's hours.
    It also tries all patterns at once: ~0.1 s per 100,000 paths for 100 patterns, where
    ``re`` took ~2.8 s. The wildcard limits stay, for ``re``: a platform without RE2's
    wheel, or a pattern RE2 refuses.
    """
    import pathspec

    try:
        import re2  # type: ignore[import-untyped]  # noqa: F401
    except Exception:  # not installed, or its library does not load here
        pass
    else:
        try:
            return pathspec.GitIgnoreSpec.from_lines(lines, backend="re2"), "re2"
        except Exception:  # a pattern RE2 does not take: Python's engine then, within the limits
            pass
    return pathspec.GitIgnoreSpec.from_lines(lines, backend="simple"), "re"


def _files_only(match_file: Callable[[str], bool]) -> Callable[[str], bool]:
    """``match_file`` for files; a folder (its path ends with "/") is never skipped whole."""

    def match(path: str) -> bool:
        return not path.endswith("/") and match_file(path)

    return match


def _read_ignore_file(root: str, path: str) -> str | None:
    """The text of ``path`` if it exists; a link out of ``root``, a FIFO or a huge file is an error."""
    if not os.path.lexists(path):
        return None
    # Checked before opening (nothing outside is even opened) and again on the open file,
    # in case the link was swapped in between.
    if not is_inside(path, root):
        raise _leads_out(path)
    try:
        with open_regular(path, inside=root) as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except LeadsOut:
        raise _leads_out(path) from None
    except OSError as exc:
        raise LoraError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_IGNORE_BYTES:
        # Refused, not cut: a cut could split a pattern and apply half of it.
        raise LoraError(
            f"{path}: larger than {MAX_IGNORE_BYTES:,} bytes; an ignore file holds at most {MAX_PATTERNS} patterns"
        )
    return _decode(path, data)


# Byte-order marks, longest first (UTF-32LE's begins with UTF-16LE's): Windows editors start a
# file with one, and Notepad's "Unicode" is UTF-16LE. The mark is no part of the first pattern.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode(path: str, data: bytes) -> str:
    """The text of an ignore file: UTF-8 (a BOM dropped, as git does), or UTF-16 or UTF-32 with a BOM.

    Anything else stops the run: bytes replaced by U+FFFD, or UTF-16 read as UTF-8 (a NUL
    between every letter), would leave patterns that match nothing, dropping the user's rules.
    """
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding.startswith("utf-8"):
            line = data[: exc.start].count(b"\n") + 1
            reason = f"not UTF-8 (byte 0x{data[exc.start]:02x} on line {line})"
        else:
            reason = f"not {encoding.upper()} as its byte-order mark says ({exc.reason})"
        raise LoraError(f"{path}: {reason}, so its ignore rules cannot be read; save it as UTF-8") from None
    if "\0" in text:
        raise LoraError(
            f"{path}: holds NUL characters (UTF-16 without a byte-order mark?), so its ignore rules cannot be "
            "read; save it as UTF-8"
        )
    return text.removeprefix("\ufeff")


def _leads_out(path: str) -> LoraError:
    return LoraError(
        f"{path}: a link that leads out of the library; ignore rules are read only from inside it "
        "(replace the link with a copy of the file)"
    )


def _is_pattern(line: str) -> bool:
    """False for the lines gitignore skips: blank ones and comments (``\\#`` is a pattern)."""
    return bool(line.strip()) and not line.startswith("#")


def _check_wildcards(rule: _Rule) -> None:
    """Refuse a pattern whose regex could backtrack for hours (see the module's docstring)."""
    if len(rule.pattern) > MAX_PATTERN_CHARS:
        raise LoraError(
            f"{rule.where}: ignore pattern {_show(rule.pattern)} is {len(rule.pattern):,} characters long; "
            f"at most {MAX_PATTERN_CHARS:,} are allowed (no path is longer): shorten it"
        )
    body = rule.pattern[1:] if rule.pattern.startswith("!") else rule.pattern
    parts = body.strip("/").split("/")
    stars = sum(_unescaped_stars(part) for part in parts if part != "**")
    deep = sum(1 for part in parts[:-1] if part == "**")  # "a/**" compiles to "^a/": free
    if stars > MAX_WILDCARDS:
        raise _refused(rule, f"has {stars} '*' wildcards; at most {MAX_WILDCARDS} are allowed")
    if deep > MAX_DEEP_WILDCARDS:
        raise _refused(rule, f"has {deep} leading or inner '**' folders; at most {MAX_DEEP_WILDCARDS} is allowed")


def _unescaped_stars(part: str) -> int:
    count = 0
    escaped = False
    for char in part:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            count += 1  # also inside "[...]", where it is literal: counted to stay on the safe side
    return count


def _refused(rule: _Rule, reason: str) -> LoraError:
    return LoraError(
        f"{rule.where}: ignore pattern {_show(rule.pattern)} {reason}, since matching it "
        "could take hours on a long name: simplify it"
    )


def _compile_one(rule: _Rule) -> None:
    """Raise :class:`LoraError` naming ``rule`` when pathspec cannot compile it alone."""
    import re

    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines([rule.pattern])
    except re.error as exc:
        raise LoraError(f"{rule.where}: ignore pattern {_show(rule.pattern)} is not valid: {exc.msg}") from None
    except Exception:  # pathspec's own errors quote the whole pattern: not repeated
        raise LoraError(f"{rule.where}: ignore pattern {_show(rule.pattern)} is not valid gitignore syntax") from None


def _show(pattern: str) -> str:
    """The pattern quoted for a message: control characters escaped, at most ~200 characters."""
    return repr(pattern if len(pattern) <= _SHOWN else pattern[:_SHOWN] + "…")

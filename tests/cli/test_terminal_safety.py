"""Text from the library never drives the terminal: control and bidi characters are shown escaped.

Names, tags, descriptions and file names come from users' files; on a terminal (Rich tables),
in plain lines and in problem lines their escape sequences, newlines and bidi overrides are
printed as visible escapes, Rich markup in them is printed literally, and ``--json`` keeps the
exact text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app, output
from lora_manager.cli.output import safe_text
from tests.builders import civitai_model, write_model, write_safetensors

# Every character a terminal or a line-oriented reader acts on, except the newline that ends a line.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

NAME = "Evil\x1b[31mRED\r\x07 [bold red]x[/] \u202eCafé 名前 ✓"
VERSION = "v1\x1b]0;PWNED\x07\n2"
TAGS = ["anime", "ta\x1b[2Jg\x08"]
WORDS = ["tw\x1b[2J", "bell\x07\x9b31m"]
AUTHOR = "au\u2066thor\x7f"
DESCRIPTION = "plain\r\nforged\x1b[1mline\u202e"
BAD_SIDECAR = "bad\x1b[2J\nFAKE.json: model_missing: forged line.json"
ORPHAN = "orph\x1b[2J\nan.safetensors"


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_safe(text: str) -> None:
    """No raw control or bidi character but the newlines that end lines."""
    assert not RAW.search(text), repr(text)


@pytest.fixture
def lib(runner: CliRunner, tmp_path: Path) -> Path:
    """One hostile record, a sidecar with a newline and ESC in its name, an orphan named the same way."""
    root = tmp_path / "lib"
    data = civitai_model(
        NAME,
        version=VERSION,
        file_name="evil.safetensors",
        tags=TAGS,
        trained_words=WORDS,
        author=AUTHOR,
        description=DESCRIPTION,
    )
    write_model(root, "evil", data)
    (root / BAD_SIDECAR).write_text('{"x":', encoding="utf-8")
    write_safetensors(root / ORPHAN)
    return root


@pytest.fixture
def imported(runner: CliRunner, lib: Path) -> Result:
    """The library imported once (it exits 1: the broken sidecar failed)."""
    result = run(runner, "import", lib)
    assert result.exit_code == 1, result.output
    return result


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stdout and stderr count as a terminal: the commands draw Rich tables, wide enough for a row a line."""
    monkeypatch.setattr(output, "is_terminal", lambda stderr=False: True)
    monkeypatch.setattr(output, "_consoles", {})
    monkeypatch.setenv("COLUMNS", "1000")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("a\nb", "a\\nb"),
        ("a\rb", "a\\rb"),
        ("a\tb", "a\\tb"),
        ("\x00\x08\x0b\x0c\x1f", "\\x00\\x08\\x0b\\x0c\\x1f"),
        ("\x7f", "\\x7f"),
        ("\x80\x85\x9b\x9f", "\\x80\\x85\\x9b\\x9f"),
        ("exe\u202etxt", "exe\\u202etxt"),
        ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("\udc9b", "\\udc9b"),
        ("a\u200bb\u2060c\ufeff", "a\\u200bb\\u2060c\\ufeff"),
    ],
    ids=[
        "csi",
        "osc",
        "lf",
        "cr",
        "tab",
        "c0",
        "del",
        "c1",
        "rlo",
        "embeddings",
        "isolates",
        "marks",
        "separators",
        "surrogate",
        "invisible",
    ],
)
def test_safe_text_escapes_each_class_of_control_character(raw: str, shown: str) -> None:
    """C0 (tab, LF, CR too), DEL, C1, bidi controls, line separators and lone surrogates become visible escapes."""
    assert safe_text(raw) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Celestial Anime Portraits",
        "Café 名前 ✓",
        "👩\u200d🎨 emoji",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian, with a ZWNJ
        "nbsp\u00a0soft\u00adhyphen",
        r"C:\x1b\path",
    ],
)
def test_safe_text_leaves_ordinary_text_unchanged(text: str) -> None:
    """Letters of any script, emoji (with their zero-width joiner), NBSP and backslashes pass as they are."""
    assert safe_text(text) == text


def test_every_control_character_is_escaped() -> None:
    """No code point of C0, DEL or C1 comes out raw, and each comes out as something visible."""
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        shown = safe_text(chr(code))
        assert_safe(shown)
        assert shown.startswith("\\") and len(shown) > 1


def test_list_table_shows_escapes_and_no_markup(runner: CliRunner, imported: Result, terminal: None) -> None:
    """On a terminal, the table of `lora list` (and `--tag`) holds the escaped text and the literal markup."""
    for args in (["list"], ["list", "--tag", "anime"]):
        result = run(runner, *args)
        assert result.exit_code == 0, result.output
        assert_safe(result.stdout)
        assert "Evil\\x1b[31mRED\\r\\x07 [bold red]x[/] \\u202eCafé 名前 ✓" in result.stdout
        assert "v1\\x1b]0;PWNED\\x07\\n2" in result.stdout
        assert "anime, ta\\x1b[2Jg\\x08" in result.stdout
        assert "au\\u2066thor\\x7f" in result.stdout


def test_list_blocks_on_a_narrow_terminal_show_escapes(
    runner: CliRunner, imported: Result, terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too narrow for the table, each record is ``field: value`` lines: the values escaped all the same."""
    monkeypatch.setenv("COLUMNS", "30")
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout)
    assert f"name: {safe_text(NAME)}" in result.stdout.splitlines()
    assert f"version: {safe_text(VERSION)}" in result.stdout.splitlines()


def test_list_in_a_pipe_is_one_escaped_line_per_record(runner: CliRunner, imported: Result) -> None:
    """Plain output: one line, seven tab-separated fields, the controls in them escaped."""
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout.replace("\t", ""))
    [line] = result.stdout.splitlines()
    fields = line.split("\t")
    assert fields[:2] == [safe_text(NAME), safe_text(VERSION)]
    assert len(fields) == 7


def test_show_table_shows_escapes(runner: CliRunner, imported: Result, terminal: None) -> None:
    """`lora show` on a terminal: name, version, trained words, author and description escaped."""
    result = run(runner, "show", NAME)
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout)
    for expected in (safe_text(NAME), safe_text(VERSION), "tw\\x1b[2J, bell\\x07\\x9b31m", "au\\u2066thor\\x7f"):
        assert expected in result.stdout
    assert "\\x1b[1mline\\u202e" in result.stdout


def test_show_in_a_pipe_is_one_escaped_line_per_field(runner: CliRunner, imported: Result) -> None:
    """Plain `lora show`: every line is ``key<TAB>value``; no value splits a line."""
    result = run(runner, "show", NAME)
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout.replace("\t", ""))
    fields = dict(line.split("\t") for line in result.stdout.splitlines())
    assert (fields["name"], fields["version"]) == (safe_text(NAME), safe_text(VERSION))


def test_json_keeps_the_exact_text(runner: CliRunner, imported: Result) -> None:
    """`list --json` and `show --json` give the original strings, control characters and all."""
    result = run(runner, "list", "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert (record["name"], record["version"], record["tags"]) == (NAME, VERSION, TAGS)
    result = run(runner, "show", "--json", NAME)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["name"], record["trained_words"], record["author_username"]) == (NAME, WORDS, AUTHOR)


def test_orphans_table_and_plain_lines_show_escaped_file_names(
    runner: CliRunner, lib: Path, imported: Result, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file name with ESC and a newline is one escaped row, in a pipe and on a terminal."""
    result = run(runner, "orphans", lib)
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout.replace("\t", ""))
    assert len(result.stdout.splitlines()) == 2
    assert safe_text(str(lib / ORPHAN)) in result.stdout
    assert safe_text(str(lib / BAD_SIDECAR)) in result.stdout

    monkeypatch.setattr(output, "is_terminal", lambda stderr=False: True)
    monkeypatch.setattr(output, "_consoles", {})
    monkeypatch.setenv("COLUMNS", "1000")
    result = run(runner, "orphans", lib)
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout)
    assert safe_text(str(lib / ORPHAN)) in result.stdout


def test_import_problem_lines_cannot_be_forged(runner: CliRunner, lib: Path, imported: Result) -> None:
    """A newline in a file name does not start a fake problem line on stderr: each line is one problem."""
    assert_safe(imported.stderr)
    lines = imported.stderr.splitlines()
    assert all(line.startswith(str(lib)) for line in lines), lines
    assert f"{safe_text(str(lib / BAD_SIDECAR))}: invalid_json:" in imported.stderr


@pytest.mark.parametrize("on_terminal", [False, True], ids=["pipe", "terminal"])
def test_errors_lines_are_escaped(
    runner: CliRunner, lib: Path, imported: Result, monkeypatch: pytest.MonkeyPatch, on_terminal: bool
) -> None:
    """`lora errors` prints the broken sidecar's path escaped, one problem a line."""
    if on_terminal:
        monkeypatch.setattr(output, "is_terminal", lambda stderr=False: True)
        monkeypatch.setattr(output, "_consoles", {})
    result = run(runner, "errors")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout.replace("\t", ""))
    [line] = result.stdout.splitlines()
    assert line.startswith(safe_text(str(lib / BAD_SIDECAR)))


def test_error_message_naming_a_path_is_escaped(runner: CliRunner, tmp_path: Path) -> None:
    """The one error line of a missing folder shows the controls of its name escaped, on one line."""
    missing = tmp_path / "gone\x1b[2J\nFAKE: forged"
    result = run(runner, "import", missing)
    assert result.exit_code == 2
    assert_safe(result.stderr)
    assert result.stderr.splitlines() == [
        f"lora: error: {safe_text(str(missing))}: no such directory (is the drive mounted?)"
    ]


@pytest.mark.parametrize("on_terminal", [False, True], ids=["pipe", "terminal"])
def test_scan_rows_are_escaped(
    runner: CliRunner, lib: Path, monkeypatch: pytest.MonkeyPatch, on_terminal: bool
) -> None:
    """`lora scan` shows the hostile entry's name and version escaped, in a pipe and in its table."""
    if on_terminal:
        monkeypatch.setattr(output, "is_terminal", lambda stderr=False: True)
        monkeypatch.setattr(output, "_consoles", {})
        monkeypatch.setenv("COLUMNS", "1000")
    result = run(runner, "scan", lib)
    assert result.exit_code == 1, result.output
    assert_safe(result.stdout.replace("\t", ""))
    assert safe_text(NAME) in result.stdout
    assert safe_text(VERSION) in result.stdout
    assert safe_text(str(lib / BAD_SIDECAR.removesuffix(".json"))) in result.stdout

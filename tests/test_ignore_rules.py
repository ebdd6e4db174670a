"""Ignore rules: what `.loraignore` may be, which patterns are refused, and that ordinary ones still work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.errors import LoraError
from lora_manager.ignore import MAX_IGNORE_BYTES, MAX_PATTERNS, IgnoreRules, load_ignore
from lora_manager.paths import resolve_root
from tests.builders import civitai_model, write_model
from tests.waiting import answers_at_once

SECRET = "API_KEY=sk-very-secret"


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    write_model(lib, "good", civitai_model("Good", file_name="good.safetensors"))
    write_model(lib / "_trash", "old", civitai_model("Old", file_name="old.safetensors"))
    return lib


def _names(runner: CliRunner) -> list[str]:
    return [r["name"] for r in json.loads(runner.invoke(app, ["list", "--json"]).stdout)]


def _load(lib: Path, *patterns: str) -> IgnoreRules:
    return load_ignore(resolve_root(lib), list(patterns))


def test_a_loraignore_link_is_followed_inside_the_library_and_refused_out_of_it(tmp_path: Path) -> None:
    """A link to rules kept elsewhere in the library is read; one leading out of it is a usage error."""
    lib = _library(tmp_path)
    (lib / "config").mkdir()
    (lib / "config" / "ignore.txt").write_text("_trash/\n", encoding="utf-8")
    (lib / ".loraignore").symlink_to(Path("config") / "ignore.txt")
    rules = _load(lib)
    assert rules.match is not None and rules.match("_trash/") and not rules.match("good.safetensors")

    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.txt").write_text("_trash/\n", encoding="utf-8")
    (lib / ".loraignore").unlink()
    (lib / ".loraignore").symlink_to(Path("..") / "outside" / "private.txt")
    with pytest.raises(LoraError, match=r"\.loraignore: a link that leads out of the library") as caught:
        _load(lib)
    assert caught.value.exit_code == 2


def test_import_refuses_a_loraignore_leading_out_and_never_shows_its_content(runner: CliRunner, tmp_path: Path) -> None:
    """The outside file's lines are neither applied nor echoed: exit 2 naming the link, nothing imported."""
    lib = _library(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "private.txt").write_text(f"good.json\n{SECRET} \\\n", encoding="utf-8")
    (lib / ".loraignore").symlink_to(tmp_path / "outside" / "private.txt")
    result = runner.invoke(app, ["import", str(lib)])
    assert result.exit_code == 2, result.output
    assert f"{lib / '.loraignore'}: a link that leads out of the library" in result.stderr
    assert SECRET not in result.output and "private.txt" not in result.output
    assert _names(runner) == []


def test_a_fifo_loraignore_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """Opening a FIFO would wait forever: it is refused at once as not a regular file."""
    lib = _library(tmp_path)
    os.mkfifo(lib / ".loraignore")
    error = answers_at_once(lambda: _load(lib), "load_ignore")
    assert isinstance(error, LoraError)
    assert str(error) == f"{lib / '.loraignore'}: cannot read: not a regular file"


def test_a_pattern_that_could_backtrack_for_hours_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """``a*a*...x`` hangs the regex on a long name: refused before any matching, with its line number."""
    lib = _library(tmp_path)
    write_model(lib, "a" * 60, civitai_model("Long", file_name="a" * 60 + ".safetensors"))
    (lib / ".loraignore").write_text("# comment\n\n*.tmp\n" + "a*" * 16 + "x\n", encoding="utf-8")
    with pytest.raises(LoraError) as caught:
        _load(lib)
    assert caught.value.message.startswith(f"{lib / '.loraignore'}, line 4: ignore pattern 'a*a*a*")
    assert "16 '*' wildcards; at most 3" in caught.value.message


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("*a*a*a*", "4 '*' wildcards"),
        ("a****b", "4 '*' wildcards"),
        ("a/**/b/**/c", "2 leading or inner '**' folders"),
        ("**/a/**/b", "2 leading or inner '**' folders"),
    ],
)
def test_import_refuses_an_ignore_option_with_too_many_wildcards(
    runner: CliRunner, tmp_path: Path, pattern: str, reason: str
) -> None:
    """An ``--ignore`` pattern over the wildcard limits exits 2 naming the option and the reason."""
    lib = _library(tmp_path)
    result = runner.invoke(app, ["import", str(lib), "--ignore", pattern])
    assert result.exit_code == 2, result.output
    assert f"--ignore: ignore pattern {pattern!r} has {reason}" in result.stderr
    assert _names(runner) == []


def test_more_patterns_than_the_limit_are_refused_naming_the_file(runner: CliRunner, tmp_path: Path) -> None:
    """--ignore and .loraignore together hold at most MAX_PATTERNS patterns; comments and blanks are free."""
    lib = _library(tmp_path)
    comments = "# a comment\n\n" * 50
    (lib / ".loraignore").write_text(comments + "".join(f"p{i}*q\n" for i in range(MAX_PATTERNS - 1)))
    rules = _load(lib, "_trash/")
    assert rules.match is not None and rules.match("_trash/")

    result = runner.invoke(app, ["import", str(lib), "--ignore", "_trash/", "--ignore", "one-more"])
    assert result.exit_code == 2, result.output
    assert f"{lib / '.loraignore'}: {MAX_PATTERNS + 1} ignore patterns" in result.stderr
    assert f"at most {MAX_PATTERNS} are allowed" in result.stderr
    assert _names(runner) == []


def test_a_loraignore_over_the_size_limit_is_refused_not_cut(tmp_path: Path) -> None:
    """A cut could split a pattern and apply half of it: a file over the limit stops the run."""
    lib = _library(tmp_path)
    (lib / ".loraignore").write_text("#" * MAX_IGNORE_BYTES + "\n_trash/\n", encoding="utf-8")
    with pytest.raises(LoraError, match=rf"\.loraignore: larger than {MAX_IGNORE_BYTES:,} bytes"):
        _load(lib)


def test_an_invalid_pattern_is_named_by_line_and_quoted_at_most_200_characters(tmp_path: Path) -> None:
    """The message names the line and quotes only the start of the offending pattern, never all of it."""
    lib = _library(tmp_path)
    long_bad = "x" * 4000 + "\\"
    (lib / ".loraignore").write_text(f"_trash/\n{long_bad}\n", encoding="utf-8")
    with pytest.raises(LoraError) as caught:
        _load(lib)
    assert caught.value.message == (
        f"{lib / '.loraignore'}, line 2: ignore pattern '{'x' * 200}…' is not valid gitignore syntax"
    )
    (lib / ".loraignore").write_text("_trash/\nb/[z-a]\n", encoding="utf-8")
    with pytest.raises(LoraError, match=r"line 2: ignore pattern 'b/\[z-a\]' is not valid: bad character range z-a$"):
        _load(lib)


def test_ordinary_gitignore_patterns_behave_as_before(tmp_path: Path) -> None:
    """Regression guard for the new limits: everyday patterns are accepted and match as gitignore does."""
    lib = _library(tmp_path)
    text = (
        "# leftovers\n\n*.tmp\n**/cache/\n*-*-*.json\n*.json\n!keep.json\n[Bb]ackup*/\n/top-only\n"
        "\\#notes\n**/*.bak*\nx/**/y\n"
    )
    (lib / ".loraignore").write_text(text, encoding="utf-8")
    rules = _load(lib)
    assert rules.match is not None and rules.text == text.rstrip("\n")
    expected = {
        "b.tmp": True,
        "a/b.tmp": True,
        "deep/x/cache/": True,
        "deep/x/cache/m.safetensors": True,
        "cache": False,
        "m.json": True,
        "keep.json": False,
        "sub/keep.json": False,
        "Backup1/": True,
        "backup/m.safetensors": True,
        "xbackup/": False,
        "top-only": True,
        "sub/top-only": False,
        "#notes": True,
        "# leftovers": False,
        "a/m.bak1": True,
        "x/1/2/y": True,
        "m.safetensors": False,
    }
    # With a negation ("!keep.json") among them, folders are walked and their files matched one by one.
    folders = {path for path in expected if path.endswith("/")}
    assert {path: rules.match(path) for path in expected} == {p: v and p not in folders for p, v in expected.items()}
    (lib / ".loraignore").write_text(text.replace("!keep.json\n", ""), encoding="utf-8")
    without_negation = _load(lib)
    assert without_negation.match is not None
    assert {path: without_negation.match(path) for path in folders} == {path: expected[path] for path in folders}


def test_whitelist_rules_keep_the_files_they_list_in_every_folder(runner: CliRunner, tmp_path: Path) -> None:
    """``*``, ``!*/``, ``!*.json``, ``!*.safetensors``: git keeps sub/m's files; so does the import (it used to
    skip every folder: pathspec let ``!*/`` lose to ``*`` on a folder path)."""
    lib = tmp_path / "lib"
    write_model(lib / "sub", "m", civitai_model("Kept", file_name="m.safetensors"))
    (lib / "sub" / "notes.txt").write_text("x", encoding="utf-8")
    (lib / ".loraignore").write_text("*\n!*/\n!*.json\n!*.safetensors\n", encoding="utf-8")
    rules = _load(lib)
    assert rules.match is not None
    assert [rules.match(p) for p in ("sub/", "sub/m.json", "sub/m.safetensors", "sub/notes.txt")] == [
        False,
        False,
        False,
        True,
    ]
    result = runner.invoke(app, ["import", str(lib), "--json"])
    assert result.exit_code == 0, result.output
    assert _names(runner) == ["Kept"]


def test_a_folder_ignored_beside_a_negation_keeps_its_files_out(runner: CliRunner, tmp_path: Path) -> None:
    """With a ``!`` rule the folder is walked, yet what a rule ignores in it stays out of the catalog."""
    lib = _library(tmp_path)
    (lib / ".loraignore").write_text("_trash/\n!*.md\n", encoding="utf-8")
    # The README's "safer way to differ": git skips _trash/ whole; matched file by file, keep.md is kept.
    rules = _load(lib)
    assert rules.match is not None
    assert (rules.match("_trash/"), rules.match("_trash/old.json"), rules.match("_trash/keep.md")) == (
        False,
        True,
        False,
    )
    result = runner.invoke(app, ["import", str(lib), "--json"])
    assert result.exit_code == 0, result.output
    assert _names(runner) == ["Good"]


def test_a_pattern_longer_than_any_path_is_refused_before_it_is_compiled(tmp_path: Path) -> None:
    """Compiling 999,000 ``?`` took minutes: a pattern over 4,096 characters can match no path anyway."""
    lib = _library(tmp_path)
    (lib / ".loraignore").write_text("*.tmp\n" + "?" * 999_000 + "\n", encoding="utf-8")
    with pytest.raises(LoraError) as caught:
        _load(lib)
    assert caught.value.message.startswith(f"{lib / '.loraignore'}, line 2: ignore pattern '???")
    assert "999,000 characters long; at most 4,096" in caught.value.message
    assert len(caught.value.message) < 400
    (lib / ".loraignore").write_text("a" * 4096 + "\n", encoding="utf-8")
    assert _load(lib).match is not None


def test_a_loraignore_written_with_a_bom_keeps_its_first_rule(tmp_path: Path) -> None:
    """Windows editors start the file with a BOM; git ignores it, and so do we."""
    lib = _library(tmp_path)
    (lib / ".loraignore").write_bytes("\ufeff_trash/\n".encode())
    runner = CliRunner()
    assert runner.invoke(app, ["import", str(lib)]).exit_code == 0
    assert _names(runner) == ["Good"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_loraignore_in_utf16_or_utf32_with_a_bom_keeps_its_rules(tmp_path: Path, encoding: str) -> None:
    """Notepad's "Unicode" is UTF-16 with a byte-order mark: its rules apply as written."""
    lib = _library(tmp_path)
    text = "# trash, café\n_trash/\n"
    data = text.encode(encoding) if encoding != "utf-16-be" else b"\xfe\xff" + text.encode(encoding)
    (lib / ".loraignore").write_bytes(data)
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(lib)])
    assert result.exit_code == 0, result.output
    assert _names(runner) == ["Good"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"# caf\xe9\n_trash/\n", "not UTF-8 (byte 0xe9 on line 1), so its ignore rules cannot be read"),
        (b"_trash/\ncaf\xe9s/\n", "not UTF-8 (byte 0xe9 on line 2), so its ignore rules cannot be read"),
        ("_trash/\n".encode("utf-16-le"), "holds NUL characters (UTF-16 without a byte-order mark?)"),
        (b"\xff\xfe_\x00\x00\xd8", "not UTF-16 as its byte-order mark says"),
    ],
    ids=["latin1-comment", "latin1-pattern", "utf16-without-bom", "broken-utf16"],
)
@pytest.mark.parametrize("command", ["import", "import --dry-run", "scan", "orphans"])
def test_a_loraignore_that_cannot_be_decoded_stops_every_command_that_reads_it(
    runner: CliRunner, tmp_path: Path, data: bytes, reason: str, command: str
) -> None:
    """Replacing bytes with U+FFFD would leave rules that match nothing: exit 2 naming the file and why."""
    lib = _library(tmp_path)
    (lib / ".loraignore").write_bytes(data)
    result = runner.invoke(app, [*command.split(), str(lib)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"lora: error: {lib / '.loraignore'}: {reason}")
    assert result.stderr.endswith("; save it as UTF-8\n")
    assert len(result.stderr.splitlines()) == 1
    assert _names(runner) == []


def test_rules_are_matched_by_re2_and_answer_as_pythons_re_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RE2 (linear time) matches the rules; without it (``re2`` not importable) Python's ``re`` does,
    with the same answers for ordinary and for hostile patterns and paths."""
    lib = _library(tmp_path)
    patterns = ["*.tmp", "**/cache/", "*-*-*.json", "!keep.json", "[Bb]ackup*/", "/top-only", "x/**/y", "*a*a*/**/b"]
    paths = ["b.tmp", "a/b.tmp", "deep/x/cache/", "m-1-2.json", "keep.json", "Backup1/", "top-only", "sub/top-only"]
    paths += ["x/1/2/y", "m.safetensors", "a" * 250, "aa/c/b", "a" * 240 + "/q/b", "d/" + "a" * 250]
    fast = _load(lib, *patterns)
    monkeypatch.setitem(__import__("sys").modules, "re2", None)  # ``import re2`` raises ImportError
    slow = _load(lib, *patterns)
    assert (fast.engine, slow.engine) == ("re2", "re")
    assert fast.match is not None and slow.match is not None
    assert [fast.match(p) for p in paths] == [slow.match(p) for p in paths]
    assert fast.match("aa/c/b") and not fast.match("a" * 250)


def test_a_hundred_backtracking_patterns_over_long_names_import_as_others_do(runner: CliRunner, tmp_path: Path) -> None:
    """100 patterns within the wildcard limits that Python's ``re`` needs ~1.8 s for on each 250-character
    name (hours on a library of such names): the import ignores what they say and imports the rest."""
    lib = _library(tmp_path)
    long = "a" * 240
    write_model(lib, long, civitai_model("Long", file_name=f"{long}.safetensors"))
    write_model(lib / "aa" / "c" / "b0", "m", civitai_model("Ignored", file_name="m.safetensors"))
    (lib / ".loraignore").write_text("".join(f"*a*a*/**/b{i}\n" for i in range(MAX_PATTERNS)), encoding="utf-8")
    result = runner.invoke(app, ["import", str(lib)])
    assert result.exit_code == 0, result.output
    assert sorted(_names(runner)) == ["Good", "Long", "Old"]

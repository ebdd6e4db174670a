"""The README documents what the program does: every command, exit code, category and option we promise."""

from __future__ import annotations

import re
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.errors import EXIT_FILES_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, FailureKind
from lora_manager.services.catalog import SORTABLE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    """Every command path of the CLI, e.g. ``import`` and ``db status``."""
    group = get_command(app)
    names: list[str] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def test_every_command_has_a_section_in_the_readme() -> None:
    """Each command is a README heading (``### `lora NAME ...```)."""
    headings = re.findall(r"^### `lora ([a-z ]+)", README, flags=re.M)
    documented = {h.strip() for h in headings} | {h.strip().split(" ")[0] for h in headings}
    missing = [c for c in _commands() if c not in documented and c.split(" ")[0] not in documented]
    assert missing == []


def test_every_command_help_ends_with_an_example() -> None:
    """``--help`` of every command shows an ``Example:`` line."""
    group = get_command(app)
    for name in _commands():
        command = group
        for part in name.split():
            command = command.commands[part]  # type: ignore[attr-defined]
        assert "Example: lora" in (command.help or ""), name


def test_exit_codes_and_failure_categories_are_documented() -> None:
    """The exit-code table lists every code; every failure category is named."""
    table = README.split("## Exit codes", 1)[1]
    for code in (EXIT_OK, EXIT_FILES_FAILED, EXIT_USAGE, EXIT_INTERRUPTED):
        assert f"| {code} |" in table
    for kind in FailureKind:
        assert f"`{kind.value}`" in table, kind.value


def test_sort_fields_and_sidecar_suffixes_are_documented() -> None:
    """``list --sort`` fields and every sidecar file name we read appear in the README."""
    for field in SORTABLE:
        assert f"`{field}`" in README, field
    for suffix in (".civitai.info", ".metadata.json", ".cm-info.json", ".json", ".loraignore"):
        assert suffix in README, suffix


def test_readme_test_command_is_what_ci_runs() -> None:
    """The Development section's test command is the one .ci/run runs."""
    assert "python -m pytest" in README.split("## Development", 1)[1]
    assert re.search(r"\$VPY\" -m pytest\n", (ROOT / ".ci" / "run").read_text(encoding="utf-8"))


def test_quickstart_command_installs_and_imports_the_sample() -> None:
    """One README command installs the project and imports the sample library."""
    assert "pip install -q -e . && .venv/bin/lora --db /tmp/quickstart.db import examples/library" in README


def _quickstart_outputs() -> list[list[str]]:
    """The ``text`` blocks of the README's Quickstart, each as its lines."""
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.splitlines() for block in re.findall(r"```text\n(.*?)```", section, flags=re.S)]


def _as_the_readme_shows(text: str) -> list[str]:
    """Output lines with the checkout's path shortened to ``/…`` and the duration left out, as in the README."""
    return [re.sub(r" in \d+\.\d\ds$", " in …s", line.replace(str(ROOT), "/…")) for line in text.splitlines()]


def test_quickstart_output_is_what_the_sample_prints(runner: CliRunner) -> None:
    """The Quickstart's import (stdout, then stderr) and list outputs are what they print, word for word."""
    library = ROOT / "examples" / "library"
    imported = runner.invoke(app, ["import", str(library)])
    assert imported.exit_code == 1, imported.output
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    shown = [_as_the_readme_shows("\n".join(block)) for block in _quickstart_outputs()]
    assert shown == [
        _as_the_readme_shows(imported.stdout + imported.stderr),
        _as_the_readme_shows(listed.stdout),
    ]


def test_import_json_says_its_problems_in_the_json_alone(runner: CliRunner) -> None:
    """As the README says: with ``--json`` the problems are in the JSON, not on stderr, and a failure exits 1."""
    imported = runner.invoke(app, ["import", "--json", str(ROOT / "examples" / "library")])
    assert (imported.exit_code, imported.stderr) == (1, "")

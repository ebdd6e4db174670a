"""Tables on a real terminal (a pseudo-terminal): a table where it fits, one block per record where it would not."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lora_manager.cli import app
from tests.builders import civitai_model, write_json, write_model, write_safetensors

SGR = re.compile(r"\x1b\[[0-9;]*m")  # bold and dim: NO_COLOR keeps them
NAMES = ("Celestial Anime Portraits", "Clean LineArt XL")


@pytest.fixture
def lib(tmp_path: Path, db_path: Path) -> Path:
    """Two LoRAs (one with tags and an author), a model without a sidecar and a sidecar without a model; imported."""
    root = tmp_path / "lib"
    write_model(root, "celestial", civitai_model(NAMES[0], file_name="celestial.safetensors", tags=["anime"]))
    write_model(root, "lineart", civitai_model(NAMES[1], file_name="lineart.safetensors", author="inkbot"))
    write_safetensors(root / "stray.safetensors", {"ss_output_name": "stray_v1"})
    write_json(root / "ghost.json", civitai_model("Ghost", file_name="ghost.safetensors"))
    result = CliRunner().invoke(app, ["--db", str(db_path), "import", str(root)])
    assert result.exit_code == 1, result.output  # the sidecar without a model
    return root


def on_terminal(columns: int, *args: str) -> str:
    """What ``lora ARGS`` shows on a terminal ``columns`` wide (stdout only; styles taken out)."""
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "lora_manager", *args], stdout=child, stderr=subprocess.DEVNULL, env=env
    ) as process:
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(main)
        assert process.wait(timeout=120) in (0, 1)
    return SGR.sub("", b"".join(chunks).decode("utf-8").replace("\r\n", "\n"))


@pytest.mark.parametrize("columns", [20, 30, 60])
def test_list_on_a_narrow_terminal_shows_one_block_per_record(lib: Path, db_path: Path, columns: int) -> None:
    """Too narrow for seven columns of at least 8 characters: ``field: value`` lines, no table of "…" cells."""
    shown = on_terminal(columns, "--db", str(db_path), "list")
    assert "…" not in shown and "┃" not in shown
    first, second = shown.split("\n\n")
    assert first.splitlines()[:2] == [f"name: {NAMES[0]}", "version: v1.0"]
    assert "tags: anime" in first.splitlines()
    assert f"file_path: {lib / 'celestial.safetensors'}" in first.splitlines()
    assert second.splitlines()[0] == f"name: {NAMES[1]}"
    assert "author: inkbot" in second.splitlines()


def test_list_on_a_terminal_wide_enough_is_a_table(lib: Path, db_path: Path) -> None:
    """At 80 columns the table stays: one header row, one row per record."""
    shown = on_terminal(80, "--db", str(db_path), "list")
    assert "┃ name" in shown and "┃ version" in shown
    assert "name:" not in shown


@pytest.mark.parametrize(
    ("args", "fields"),
    [
        (["orphans"], ["kind: model", "path: {lib}/stray.safetensors", "header says: stray_v1"]),
        (["scan", "--all"], ["action: unchanged", "entry: {lib}/celestial", f"name: {NAMES[0]}"]),
    ],
    ids=["orphans", "scan"],
)
def test_orphans_and_scan_on_a_narrow_terminal_show_one_block_per_finding(
    lib: Path, db_path: Path, args: list[str], fields: list[str]
) -> None:
    """The other tables fall back the same way."""
    shown = on_terminal(30, "--db", str(db_path), *args, str(lib))
    assert "…" not in shown
    block = next(b.splitlines() for b in shown.split("\n\n") if b.startswith(fields[0]))
    assert block[:3] == [f.format(lib=lib) for f in fields]


def test_list_in_a_pipe_stays_one_tab_separated_line_per_record(lib: Path, db_path: Path) -> None:
    """Whatever the terminal's width, a pipe gets the plain lines."""
    done = subprocess.run(
        [sys.executable, "-m", "lora_manager", "--db", str(db_path), "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "20"},
    )
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == list(NAMES)

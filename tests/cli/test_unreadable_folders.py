"""A folder that cannot be listed is unknown for the run, never gone: its records stay, ``--prune`` keeps them.

Permissions are real: the folder is made mode 000. Root reads through modes, so as root the
commands run with the capabilities that allow it dropped (``setpriv``), as an ordinary user's would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.builders import civitai_version, write_model
from tests.unprivileged import lora


def listed(db: Path, *args: str) -> list[dict[str, Any]]:
    done = lora(db, "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    records: list[dict[str, Any]] = json.loads(done.stdout)
    return records


def names(db: Path, *args: str) -> list[str]:
    return sorted(r["name"] for r in listed(db, *args))


def assert_names_the_folder(done: subprocess.CompletedProcess[str], folder: Path) -> None:
    """The folder and why are on stderr, and nothing else went wrong."""
    assert f"{folder}: unreadable: cannot list directory" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """A library of three LoRAs imported; then ``sdxl`` (holding one, and a folder with another) is made unreadable."""
    lib, db = tmp_path / "lib", tmp_path / "catalog.db"
    write_model(lib / "sd15", "alpha", civitai_version("Alpha"), suffix=".civitai.info")
    write_model(lib / "sdxl", "beta", civitai_version("Beta"), suffix=".civitai.info")
    write_model(lib / "sdxl" / "deep", "gamma", civitai_version("Gamma"), suffix=".civitai.info")
    first = lora(db, "import", str(lib))
    assert first.returncode == 0, first.stderr
    assert names(db) == ["Alpha", "Beta", "Gamma"]
    folder = lib / "sdxl"
    folder.chmod(0)
    try:
        yield lib, db, folder
    finally:
        folder.chmod(0o755)


def test_an_unreadable_folder_is_reported_and_its_records_stay(locked: tuple[Path, Path, Path]) -> None:
    lib, db, folder = locked
    done = lora(db, "import", str(lib))
    assert done.returncode == 1
    assert_names_the_folder(done, folder)
    assert listed(db, "--missing") == []
    assert names(db) == ["Alpha", "Beta", "Gamma"]


def test_prune_keeps_the_records_of_an_unreadable_folder(locked: tuple[Path, Path, Path]) -> None:
    lib, db, folder = locked
    done = lora(db, "import", "--prune", "--json", str(lib))
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["pruned"] == 0
    assert names(db) == ["Alpha", "Beta", "Gamma"]
    folder.chmod(0o755)
    again = lora(db, "import", "--json", str(lib))  # readable again: everything is as it was
    assert again.returncode == 0, again.stderr
    assert listed(db, "--missing") == []
    assert names(db) == ["Alpha", "Beta", "Gamma"]


def test_a_folder_that_really_went_away_is_still_missing(locked: tuple[Path, Path, Path]) -> None:
    """Only what could not be listed is spared: a removed folder beside it is gone as before."""
    lib, db, _folder = locked
    shutil.rmtree(lib / "sd15")
    write_model(lib / "pony", "delta", civitai_version("Delta"), suffix=".civitai.info")
    done = lora(db, "import", str(lib))
    assert done.returncode == 1
    assert [r["name"] for r in listed(db, "--missing")] == ["Alpha"]
    assert names(db) == ["Alpha", "Beta", "Delta", "Gamma"]


def test_orphans_says_which_folder_it_could_not_look_in(locked: tuple[Path, Path, Path]) -> None:
    """The list covers the readable folders; the unreadable one is named on stderr, exit 1."""
    lib, db, folder = locked
    write_model(lib / "sd15", "lonely")  # a model file without a sidecar
    for extra in ([], ["--json"]):
        done = lora(db, "orphans", *extra, str(lib))
        assert done.returncode == 1, done.stderr
        assert str(lib / "sd15" / "lonely.safetensors") in done.stdout
        assert_names_the_folder(done, folder)
    assert json.loads(lora(db, "orphans", "--json", str(lib)).stdout)[0]["kind"] == "model"


def test_scan_names_the_folder_it_could_not_look_in(locked: tuple[Path, Path, Path]) -> None:
    lib, db, folder = locked
    done = lora(db, "scan", str(lib))
    assert done.returncode == 1
    assert_names_the_folder(done, folder)


def test_an_unreadable_library_folder_says_so_and_changes_nothing(locked: tuple[Path, Path, Path]) -> None:
    lib, db, _folder = locked
    lib.chmod(0)
    try:
        done = lora(db, "import", "--prune", str(lib))
    finally:
        lib.chmod(0o755)
    assert done.returncode == 2
    assert done.stderr == f"lora: error: {lib}: cannot list directory: Permission denied. Nothing was changed.\n"
    assert listed(db, "--missing") == []

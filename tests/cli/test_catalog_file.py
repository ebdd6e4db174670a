"""The catalog file itself: ``--db`` and ``LORA_DB`` name it exactly, and what a catalog cannot be is refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_model, write_model
from tests.unprivileged import lora as as_user

# File names that mean something in a URL: an escape, a query, a fragment, a user and a port.
URL_LIKE_NAMES = ["a%41.db", "q?x=1.db", "nëw%20x.db", "h#x.db", "u@h:1.db", "p+l s.db"]


def run(runner: CliRunner, *args: Any, **kwargs: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args], **kwargs)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A library of one LoRA, ``Alpha``, that imports without a problem."""
    root = tmp_path / "lib"
    write_model(root, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    return root


@pytest.mark.parametrize("name", URL_LIKE_NAMES)
@pytest.mark.parametrize("via", ["--db", "LORA_DB"])
def test_a_db_path_names_its_file_exactly_even_with_url_characters(
    runner: CliRunner, tmp_path: Path, lib: Path, name: str, via: str
) -> None:
    """``%41``, ``?``, ``#``, ``@`` in a path are part of the file name: that file, and no other, is the catalog."""
    folder = tmp_path / "cat"
    folder.mkdir()
    db = folder / name
    options = ["--db", db] if via == "--db" else []
    env = {"LORA_DB": str(db)} if via == "LORA_DB" else None
    absent = run(runner, *options, "list", env=env)
    assert absent.exit_code == 0, absent.output
    assert absent.stderr.startswith(f"lora: warning: no catalog at {db} yet")
    done = run(runner, *options, "import", lib, env=env)
    assert (done.exit_code, done.stderr) == (0, "")
    made = {p.name for p in folder.iterdir()} - {f"{name}-wal", f"{name}-shm"}  # the engine is still open
    assert made == {name, f"{name}.lock"}
    listed = run(runner, *options, "list", "--json", env=env)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["Alpha"]


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
@pytest.mark.parametrize("command", ["import", "list"])
def test_a_database_in_memory_is_refused_since_a_catalog_must_be_a_file(
    runner: CliRunner, lib: Path, url: str, command: str
) -> None:
    """An import into memory would report success and keep nothing: exit 2, saying a catalog must be a file."""
    result = run(runner, "--db", url, command, *([lib] if command == "import" else []))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"lora: error: --db '{url}' is a SQLite database in memory")
    assert "a catalog must be a file" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sqlite://", "'sqlite://' is a SQLite database in memory"),
        ("{tmp}", "{tmp}: is a directory"),
        ("postgresql://u:s3cret@host:abc/d", "'postgresql://u:***@host:abc/d' is not a valid database URL"),
    ],
    ids=["memory", "folder", "malformed"],
)
@pytest.mark.parametrize("command", [["status"], ["db", "status"]], ids=["status", "db-status"])
def test_a_refused_catalog_names_where_it_was_given(
    runner: CliRunner, tmp_path: Path, value: str, message: str, command: list[str]
) -> None:
    """A value taken from LORA_DB is refused naming LORA_DB, not an option the user never typed; --db, which
    wins over it, is named as --db."""
    value, message = value.format(tmp=tmp_path), message.format(tmp=tmp_path)
    from_env = run(runner, *command, env={"LORA_DB": value})
    assert from_env.exit_code == 2, from_env.output
    assert from_env.stderr.startswith(f"lora: error: LORA_DB {message}")
    given = run(runner, "--db", value, *command, env={"LORA_DB": str(tmp_path / "c.db")})
    assert given.exit_code == 2, given.output
    assert given.stderr.startswith(f"lora: error: --db {message}")


@pytest.mark.parametrize("command", [["status"], ["db", "status"]], ids=["status", "db-status"])
@pytest.mark.parametrize("made", [True, False], ids=["made", "not-yet"])
def test_status_names_a_sqlite_catalog_by_its_path_not_a_url(
    runner: CliRunner, tmp_path: Path, lib: Path, command: list[str], made: bool
) -> None:
    """``database:`` is the file's path as written (``ü``, ``%41`` and all), in plain text and in JSON."""
    db = tmp_path / "ün%41 x.db"
    if made:
        assert run(runner, "--db", db, "import", lib).exit_code == 0
    plain = run(runner, "--db", db, *command)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines()[0] == f"database: {db}"
    as_json = run(runner, "--db", db, *command, "--json")
    assert json.loads(as_json.stdout)["database"] == str(db)


def test_a_relative_sqlite_url_is_named_by_its_absolute_path(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///rel.db`` is the file under the working folder, and ``status`` says which."""
    monkeypatch.chdir(tmp_path)
    result = run(runner, "--db", "sqlite:///rel%20x.db", "status", "--json")
    assert json.loads(result.stdout)["database"] == str(tmp_path / "rel x.db")


@pytest.mark.parametrize(
    ("args", "code", "warns"),
    [
        (["list"], 0, True),
        (["show", "Alpha"], 2, True),
        (["set", "Alpha", "--active"], 2, True),
        (["status"], 0, True),
        (["errors"], 0, True),
        (["duplicates"], 0, True),
        (["verify"], 0, False),
        (["db", "status"], 0, False),
    ],
    ids=["list", "show", "set", "status", "errors", "duplicates", "verify", "db-status"],
)
def test_a_command_that_only_reads_leaves_an_empty_file_as_no_catalog(
    runner: CliRunner, tmp_path: Path, lib: Path, args: list[str], code: int, warns: bool
) -> None:
    """A 0-byte file (``touch``) is no catalog yet: a read makes nothing of it and says so; an import makes it one."""
    db = tmp_path / "touched.db"
    db.touch()
    result = run(runner, "--db", db, *args)
    assert result.exit_code == code, result.output
    assert ("lora: warning: no catalog at" in result.stderr) is warns
    assert db.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib", "touched.db"]
    if args == ["db", "status"]:
        assert "status: no catalog yet" in result.stdout
    assert run(runner, "--db", db, "import", lib).exit_code == 0
    assert db.stat().st_size > 0


@pytest.mark.parametrize("args", [["import", "{lib}"], ["hash"], ["db", "upgrade"]], ids=["import", "hash", "upgrade"])
def test_db_status_of_a_missing_catalog_names_the_commands_that_create_it(
    runner: CliRunner, tmp_path: Path, lib: Path, args: list[str]
) -> None:
    """What ``lora db status`` says of a catalog not made yet is true: each command it names makes one."""
    db = tmp_path / "new" / "c.db"
    result = run(runner, "--db", db, "db", "status")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(
        "status: no catalog yet: `lora import FOLDER` creates it (so do `lora hash` and `lora db upgrade`); "
        "commands that only read create nothing\n"
    )
    assert not db.exists()
    assert run(runner, "--db", db, *(a.replace("{lib}", str(lib)) for a in args)).exit_code == 0
    assert db.is_file()


@pytest.fixture
def imported(tmp_path: Path, lib: Path) -> Iterator[Path]:
    """A catalog holding ``Alpha``, in its own folder; modes are put back after the test."""
    db = tmp_path / "cat" / "c.db"
    done = as_user(db, "import", str(lib))
    assert done.returncode == 0, done.stderr
    try:
        yield db
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)


def assert_one_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and exactly ``lora: error: MESSAGE`` on stderr."""
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"lora: error: {message}\n"


@pytest.mark.parametrize(
    "args",
    [["set", "Alpha", "--active"], ["import", "{lib}"], ["hash", "--force"]],
    ids=["set", "import", "hash"],
)
def test_a_catalog_file_this_user_cannot_write_is_named_with_the_reason(
    imported: Path, lib: Path, args: list[str]
) -> None:
    """A catalog of mode 0444: a write exits 2 naming the file and why, not "retry" a database error."""
    imported.chmod(0o444)
    done = as_user(imported, *(a.replace("{lib}", str(lib)) for a in args))
    assert_one_error(
        done,
        f"cannot write the catalog {imported}: the file is not writable by this user; make it writable "
        "(or run as its owner), or copy the catalog somewhere you can write",
    )
    listed = as_user(imported, "list", "--json")  # reading it still works
    assert [r["name"] for r in json.loads(listed.stdout)] == ["Alpha"]
    assert [r["active"] for r in json.loads(listed.stdout)] == [False]


@pytest.mark.parametrize("args", [["list"], ["status"], ["db", "status"], ["import", "{lib}"]])
def test_a_catalog_in_a_folder_this_user_cannot_write_names_the_folder(
    imported: Path, lib: Path, args: list[str]
) -> None:
    """WAL needs its -wal and -shm files beside the catalog, even to read: the message names the folder."""
    imported.parent.chmod(0o555)
    done = as_user(imported, *(a.replace("{lib}", str(lib)) for a in args))
    assert_one_error(
        done,
        f"cannot open the catalog {imported}: its folder {imported.parent} is not writable by this user, and "
        "SQLite must create c.db-wal and c.db-shm beside the catalog even to read it; make the folder "
        "writable, or copy the catalog into one you can write",
    )


@pytest.mark.parametrize("args", [["import", "{lib}"], ["db", "upgrade"], ["hash"]])
def test_a_new_catalog_in_a_folder_this_user_cannot_write_names_the_folder(
    tmp_path: Path, lib: Path, args: list[str]
) -> None:
    """SQLite's "unable to open database file" becomes which folder may not be written, and what to do."""
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    try:
        done = as_user(folder / "new.db", *(a.replace("{lib}", str(lib)) for a in args))
    finally:
        folder.chmod(0o755)
    assert_one_error(
        done,
        f"cannot create the catalog {folder / 'new.db'}: its folder {folder} is not writable by this user; "
        "give a path in a folder you can write",
    )
    assert list(folder.iterdir()) == []

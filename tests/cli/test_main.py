"""The ``lora`` command itself: version, help, choosing the database, pipes, start-up cost, read-only library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager import __version__
from lora_manager.cli import app
from lora_manager.console import YOUNG_OBJECTS
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model, write_safetensors

COMMANDS = ("import", "scan", "orphans", "list", "show", "set", "errors", "status")
CELESTIAL = "Celestial Anime Portraits"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000000100000001080200000090775308"
    "0000000c4944415478da63f8ffff3f0005fe02fea7d6a4c40000000049454e44ae426082"
)


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def lora(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``lora ARGS`` in a real process (the environment, LORA_DB included, is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "lora_manager", *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs
    )


def names(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["name"] for r in json.loads(result.stdout)]


def library(root: Path) -> Path:
    """Every kind of file a library holds: each dialect, a preview, orphans, noise, junk, a link loop."""
    write_model(root / "anime", "celestial", civitai_model(CELESTIAL, file_name="celestial.safetensors"))
    write_model(root / "anime", "ink", civitai_version("Ink Wash", file_name="ink.safetensors"), ".civitai.info")
    write_json(root / "anime" / "ink.json", a1111(activation_text="ink wash", weight=0.7))
    (root / "anime" / "celestial.preview.png").write_bytes(PNG)
    lm = {"model_name": "Neon", "file_name": "neon", "base_model": "SDXL 1.0", "usage_tips": '{"strength": 0.6}'}
    write_model(root / "sdxl", "neon", lm, suffix=".metadata.json")
    write_model(root / "sdxl", "lineart", {"ModelName": "Lineart", "VersionName": "v1"}, suffix=".cm-info.json")
    write_safetensors(root / "unsorted" / "orphan.safetensors", {"ss_output_name": "orphan_v1"})
    (root / "unsorted" / "old.pt").write_bytes(b"\x80\x04N.")
    write_json(root / "unsorted" / "ghost.json", civitai_model("Ghost", file_name="ghost.safetensors"))
    write_json(root / "unsorted" / "config.json", {"_class_name": "AutoencoderKL"})
    (root / "unsorted" / "broken.json").write_text('{"name": ', encoding="utf-8")
    (root / "unsorted" / "loop").symlink_to(root)
    return root


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every file's bytes, every link's target, and the mode, size and mtime of everything (links not followed)."""
    state: dict[str, tuple[Any, ...]] = {".": (root.stat().st_mtime_ns,)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            st = path.lstat()
            if path.is_symlink():
                content: Any = os.readlink(path)
            elif path.is_dir():
                content = sorted(os.listdir(path))
            else:
                content = path.read_bytes()
            state[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, content)
    return state


def test_version_option_prints_the_version(runner: CliRunner) -> None:
    """``lora --version`` prints the package version and exits 0, in-process and as a real process."""
    result = run(runner, "--version")
    assert (result.exit_code, result.stdout) == (0, f"lora-manager {__version__}\n")
    done = lora("--version")
    assert (done.returncode, done.stdout) == (0, f"lora-manager {__version__}\n")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_ends_with_an_example(runner: CliRunner, command: str) -> None:
    """``lora COMMAND --help`` shows an ``Example:`` line that runs that command."""
    result = run(runner, command, "--help")
    assert result.exit_code == 0, result.output
    assert f"Example: lora {command}" in result.stdout


def test_root_help_lists_every_command(runner: CliRunner) -> None:
    """``lora --help`` names each command."""
    result = run(runner, "--help")
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command


def test_root_help_shows_an_example(runner: CliRunner) -> None:
    """``lora --help`` shows the example its docstring gives."""
    result = run(runner, "--help")
    assert "Example: lora import" in result.stdout


def test_unknown_command_is_a_usage_error(runner: CliRunner) -> None:
    """A command that does not exist exits 2."""
    result = run(runner, "imprt", ".")
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_db_option_wins_over_lora_db(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--db`` chooses the catalog even when ``LORA_DB`` is set; without ``--db``, ``LORA_DB`` does."""
    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    monkeypatch.setenv("LORA_DB", str(env_db))
    assert run(runner, "--db", flag_db, "import", lib).exit_code == 0
    assert names(run(runner, "--db", flag_db, "list", "--json")) == ["Alpha"]
    assert names(run(runner, "list", "--json")) == []
    write_model(lib, "beta", civitai_model("Beta", file_name="beta.safetensors"))
    assert run(runner, "import", lib).exit_code == 0
    assert names(run(runner, "list", "--json")) == ["Alpha", "Beta"]
    assert names(run(runner, "--db", flag_db, "list", "--json")) == ["Alpha"]


def test_bare_path_and_sqlite_url_open_the_same_catalog(runner: CliRunner, tmp_path: Path) -> None:
    """``--db PATH`` and ``--db sqlite:///PATH`` are the same SQLite file."""
    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    path = tmp_path / "shared" / "catalog.db"
    assert run(runner, "--db", f"sqlite:///{path}", "import", lib).exit_code == 0
    assert path.is_file()
    assert names(run(runner, "--db", path, "list", "--json")) == ["Alpha"]
    status = json.loads(run(runner, "--db", path, "status", "--json").stdout)
    assert status["database"] == str(path)


def test_relative_db_path_is_taken_from_the_working_directory(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative ``--db`` is created under the current directory, its folders included."""
    monkeypatch.chdir(tmp_path)
    assert run(runner, "--db", "nested/dir/catalog.db", "db", "upgrade").exit_code == 0
    assert (tmp_path / "nested" / "dir" / "catalog.db").is_file()


def test_default_database_lives_in_the_user_data_directory(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--db`` or ``LORA_DB`` the catalog is ``catalog.db`` in the user data directory, made by an import."""
    monkeypatch.delenv("LORA_DB")
    result = run(runner, "status", "--json")
    assert result.exit_code == 0, result.output
    expected = tmp_path / "userdata" / "lora-manager" / "catalog.db"
    assert json.loads(result.stdout)["database"] == str(expected)
    assert result.stderr.startswith(f"lora: warning: no catalog at {expected} yet (`lora import FOLDER` makes it)")
    assert not expected.exists()  # asking made nothing
    (tmp_path / "lib").mkdir()
    assert run(runner, "import", tmp_path / "lib").exit_code == 0
    assert expected.is_file()
    assert run(runner, "status").stderr == ""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("a-folder", "is a directory"),
        ("notes.txt", "file is not a database"),
        ("notes.txt/catalog.db", "notes.txt"),
        ("nosuchdb://host/catalog", "nosuchdb"),
    ],
    ids=["directory", "text-file", "below-a-file", "unknown-url-scheme"],
)
def test_unusable_database_exits_2_with_one_line(runner: CliRunner, tmp_path: Path, target: str, message: str) -> None:
    """A folder, a text file, a path below a file or an unknown URL as ``--db``: exit 2, one line, no traceback."""
    (tmp_path / "a-folder").mkdir()
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n" * 200, encoding="utf-8")
    db = target if "://" in target else str(tmp_path / target)
    for args in (["status"], ["list"], ["import", str(tmp_path / "a-folder")]):
        result = run(runner, "--db", db, *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("lora: error: "), result.stderr
        assert message in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert "Traceback" not in result.output
    assert notes.read_text(encoding="utf-8") == "shopping list\n" * 200


def test_garbage_database_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    """The same refusal from the console script: exit 2, one line on stderr, nothing on stdout."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 2\x00" + bytes(range(256)) * 8)
    done = lora("--db", garbage, "list")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A library of a few hundred records and its catalog, whose ``lora list`` is far larger than a pipe's buffer."""
    base = tmp_path_factory.mktemp("big")
    lib, db = base / "lib", base / "catalog.db"
    tags = [f"tag-number-{i}" for i in range(20)]
    for i in range(300):
        write_model(
            lib, f"model-{i:03}", civitai_model(f"Model {i:03}", file_name=f"model-{i:03}.safetensors", tags=tags)
        )
    result = CliRunner().invoke(app, ["--db", str(db), "import", "--quiet", str(lib)])
    assert result.exit_code == 0, result.output
    return lib, db


def test_list_into_head_exits_cleanly(runner: CliRunner, big_catalog: tuple[Path, Path]) -> None:
    """``lora list | head -1``: the closed pipe costs no traceback and no error exit."""
    _, db = big_catalog
    assert len(run(runner, "--db", db, "list").stdout) > 100_000  # more than a pipe holds: the writer sees the close
    done = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$0" -m lora_manager --db "$1" list | head -1', sys.executable, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Model 000\t")
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr == ""


def closed_stdout(*args: Any, stderr_too: bool = False) -> subprocess.CompletedProcess[str]:
    """``lora ARGS`` with a stdout pipe whose reader has already gone (and stderr into it: ``2>&1 | head -0``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "lora_manager", *map(str, args)],
            stdout=write_end,
            stderr=write_end if stderr_too else subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [["list", "--json"], ["show", "Model 001"], ["orphans", "{lib}"]],
    ids=["list-json", "show", "orphans"],
)
def test_closed_stdout_is_not_an_error(big_catalog: tuple[Path, Path], args: list[str]) -> None:
    """A reader that went away before any output (plain ``list`` is the ``head`` test): exit 0, no stderr."""
    lib, db = big_catalog
    done = closed_stdout("--db", db, *(a.replace("{lib}", str(lib)) for a in args))
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("args", [["status"], ["import", "{lib}"], ["--version"]], ids=["status", "import", "version"])
def test_closed_stdout_is_not_an_error_for_rich_output(big_catalog: tuple[Path, Path], args: list[str]) -> None:
    """Commands that print through Rich also exit 0 quietly when the reader has gone."""
    lib, db = big_catalog
    done = closed_stdout("--db", db, *(a.replace("{lib}", str(lib)) for a in args))
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("args", [["--help"], ["list", "--help"], ["db", "status", "-h"]])
def test_help_into_a_closed_pipe_exits_0(args: list[str]) -> None:
    """``lora --help | head -1``: Typer's own Rich console meeting a closed pipe is no failure."""
    done = closed_stdout(*args)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("args", [["bogus"], ["list", "--bogus"], [], ["db"]], ids=["command", "option", "bare", "db"])
def test_a_usage_error_into_a_closed_pipe_keeps_exit_2(args: list[str]) -> None:
    """``lora bogus 2>&1 | head -0``: still the usage error's 2, not the 1 of a failed write."""
    assert closed_stdout(*args, stderr_too=True).returncode == 2


def full_stdout(*args: Any, code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lora ARGS > /dev/full``: every write to stdout fails with ENOSPC, as on a full disk.

    With ``code``, that Python runs first in the process (to pretend stdout is a terminal).
    """
    start = [sys.executable, "-m", "lora_manager"] if code is None else [sys.executable, "-c", code]
    with open("/dev/full", "w") as full:
        return subprocess.run([*start, *map(str, args)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)


NO_SPACE = "lora: error: cannot write the output: No space left on device\n"
needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


@needs_dev_full
@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--json"], ["show", "Model 001"], ["status"], ["import", "{lib}"], ["--version"], ["--help"]],
    ids=["list", "list-json", "show", "status", "import", "version", "help"],
)
def test_output_that_cannot_be_written_is_said_in_one_line_and_exits_2(
    big_catalog: tuple[Path, Path], args: list[str]
) -> None:
    """``lora list > /dev/full``: the output could not be written, which is no bug of ours and no traceback."""
    lib, db = big_catalog
    done = full_stdout("--db", db, *(a.replace("{lib}", str(lib)) for a in args))
    assert (done.returncode, done.stderr) == (2, NO_SPACE)


@needs_dev_full
@pytest.mark.parametrize("args", [["list"], ["show", "Model 001"]], ids=["table", "show"])
def test_a_rich_table_that_cannot_be_written_is_said_in_one_line_and_exits_2(
    big_catalog: tuple[Path, Path], args: list[str]
) -> None:
    """The same for what Rich draws on a terminal (a table, a record)."""
    _, db = big_catalog
    terminal = (
        "from lora_manager.cli import main, output\noutput.is_terminal = lambda stderr=False: not stderr\nmain()\n"
    )
    done = full_stdout("--db", db, *args, code=terminal)
    assert (done.returncode, done.stderr) == (2, NO_SPACE)


HEAVY = ("sqlalchemy", "pydantic", "rich", "alembic")


def loaded_after(code: str) -> list[str]:
    """Which heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_heavy_module() -> None:
    """``import lora_manager.cli`` leaves SQLAlchemy, pydantic, Rich and Alembic unimported."""
    assert loaded_after("import lora_manager.cli") == []


def test_help_loads_no_database_or_model_library() -> None:
    """``lora --help`` renders with Rich but never imports SQLAlchemy, pydantic or Alembic."""
    code = (
        "import contextlib, io, sys\n"
        "sys.argv = ['lora', '--help']\n"
        "from lora_manager.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run() == 0"
    )
    assert loaded_after(code) == ["rich"]


READ_ONLY_RUNS = {
    "import": (False, ["import", "{lib}"]),
    "import-again": (True, ["import", "--force", "--prune", "{lib}"]),
    "dry-run": (True, ["import", "--dry-run", "--force", "{lib}"]),
    "scan": (True, ["scan", "--all", "{lib}"]),
    "orphans": (True, ["orphans", "{lib}"]),
    "list": (True, ["list", "--json"]),
    "show": (True, ["show", CELESTIAL]),
}


@pytest.mark.parametrize("case", list(READ_ONLY_RUNS))
def test_no_command_writes_to_the_library(runner: CliRunner, tmp_path: Path, case: str) -> None:
    """The library's files, links and folders keep their bytes, modes and mtimes whatever command runs."""
    lib = library(tmp_path / "lib")
    imported_first, args = READ_ONLY_RUNS[case]
    if imported_first:
        assert run(runner, "import", lib).exit_code == 1  # broken.json and ghost.json fail
    before = snapshot(lib)
    result = run(runner, *(a.replace("{lib}", str(lib)) for a in args))
    assert result.exit_code in (0, 1), result.output
    assert snapshot(lib) == before


def test_a_real_process_flushes_its_output_closes_the_catalog_and_keeps_its_exit_codes(tmp_path: Path) -> None:
    """The console script leaves without Python's teardown: output, exit codes and a closed catalog remain."""
    lib, db = library(tmp_path / "lib"), tmp_path / "catalog.db"
    imported = lora("--db", db, "import", lib, "--json")
    assert imported.returncode == 1, imported.stderr  # the library's broken files
    assert json.loads(imported.stdout)["new"] == 4
    assert not Path(f"{db}-wal").exists()  # the last connection closed: the WAL was checkpointed away
    listed = lora("--db", db, "list", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 4
    missing = lora("--db", db, "show", "Nope")
    assert missing.returncode == 2 and missing.stderr.startswith("lora: error: no LoRA named 'Nope'")


def test_the_console_script_loads_without_the_collector_and_a_command_turns_it_back_on(tmp_path: Path) -> None:
    """Start-up runs with the cyclic collector off; an import has it on again, with the loaded modules frozen."""
    lib, db = library(tmp_path / "lib"), tmp_path / "catalog.db"
    probe = (
        "import gc, sys\n"
        "import lora_manager.services.importer as importer\n"
        "real = importer.run_import\n"
        "def run_import(*args, **kwargs):\n"
        "    frozen, young = gc.get_freeze_count() > 10_000, gc.get_threshold()[0]\n"
        "    print('collector', gc.isenabled(), frozen, young, file=sys.stderr)\n"
        "    return real(*args, **kwargs)\n"
        "importer.run_import = run_import\n"
        "print('at start', gc.isenabled(), file=sys.stderr)\n"
        "sys.argv = ['lora', *sys.argv[1:]]\n"
        "from lora_manager.console import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "--db", str(db), "import", str(lib)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stderr  # the library's broken files
    assert "at start True" in done.stderr  # a program that imports the package keeps its collector
    assert f"collector True True {YOUNG_OBJECTS}" in done.stderr
    import gc

    from lora_manager.console import loaded

    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    loaded()  # the collector is on here (pytest): nothing to do
    assert gc.isenabled() and gc.get_freeze_count() == frozen and gc.get_threshold() == threshold


def test_a_re_import_with_nothing_to_read_loads_no_parser(tmp_path: Path) -> None:
    """The usual cron run (nothing changed) leaves the sidecar parsers and decision rules unimported."""
    lib, db = library(tmp_path / "lib"), tmp_path / "catalog.db"
    assert lora("--db", str(db), "import", str(lib)).returncode == 1  # the library's broken files
    parsers = ("lora_manager.services.reading", "lora_manager.services.decisions", "lora_manager.parsing.registry")
    probe = (
        "import sys\n"
        f"sys.argv = ['lora', '--db', {str(db)!r}, 'import', {str(lib)!r}]\n"
        "from lora_manager.cli import run\n"
        "code = run()\n"
        f"print(code, [m for m in {parsers!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
    (lib / "extra.json").write_text('{"activation text": "new"}', encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "'lora_manager.services.reading'" in done.stdout.splitlines()[-1], done.stderr


def test_edits_are_read_by_the_reader_started_with_the_command(tmp_path: Path) -> None:
    """``lora import`` starts its reader before it loads the catalog's modules; edited entries are read
    there, never by a fork of the importer, and come back needing no parser in this process.

    The results' class lives apart from the parsers (``services.results``), and the reader loads
    the parsers itself, on the other core.
    """
    from lora_manager.services import prefetch

    if os.name != "posix" or (os.cpu_count() or 1) < 2:
        pytest.skip("a reader runs on POSIX, with a second core")
    lib, db = tmp_path / "lib", tmp_path / "catalog.db"
    count = 2 * prefetch.FORK_START_AT
    for i in range(count):
        write_model(lib / "styles", f"m{i:02}", civitai_version(f"Style {i}", file_name=f"m{i:02}.safetensors"))
    assert lora("--db", str(db), "import", str(lib)).returncode == 0
    for i in range(count):
        write_json(lib / "styles" / f"m{i:02}.json", civitai_version(f"Style {i} v2", file_name=f"m{i:02}.safetensors"))
    probe = (
        "import sys\n"
        f"sys.argv = ['lora', '--db', {str(db)!r}, 'import', {str(lib)!r}, '--json']\n"
        "from lora_manager.services import prefetch, reader_process\n"
        "forks, taken = [], []\n"
        "reader_process.Forked.start = classmethod(lambda cls, *a: forks.append(a))\n"
        "close = prefetch.Prefetcher.close\n"
        "prefetch.Prefetcher.close = lambda self: (taken.append(self.used), close(self))[1]\n"
        "from lora_manager.cli import run\n"
        "code = run()\n"
        "parsers = ('lora_manager.services.reading', 'lora_manager.parsing.registry')\n"
        "print(code, len(forks), taken, [m for m in parsers if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[-1] == f"0 0 [{count}] []", done.stderr
    assert json.loads("\n".join(lines[:-1]))["updated"] == count
    listed = lora("--db", str(db), "list", "--json")
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == sorted(f"Style {i} v2" for i in range(count))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["list"], 0),
        (["list", "--json"], 0),
        (["show", "Alpha"], 2),
        (["set", "Alpha", "--weight", "0.5"], 2),
        (["status"], 0),
        (["errors"], 0),
        (["duplicates"], 0),
        (["verify"], 0),
        (["scan", "{lib}"], 0),
        (["orphans", "{lib}"], 0),
        (["import", "--dry-run", "{lib}"], 0),
    ],
)
def test_a_command_that_only_reads_makes_no_catalog(tmp_path: Path, args: list[str], code: int) -> None:
    """A mistyped ``--db`` must not leave folders and an empty catalog behind: only an import makes one."""
    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_version("Alpha"), suffix=".civitai.info")
    db = tmp_path / "typo" / "catalgo.db"
    done = lora("--db", db, *(a.replace("{lib}", str(lib)) for a in args))
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "typo").exists()
    if args[0] in ("list", "status", "errors", "duplicates"):  # a query: the path is named
        assert f"lora: warning: no catalog at {db} yet" in done.stderr
    assert lora("--db", db, "import", lib).returncode == 0
    assert db.is_file()


def test_a_catalog_path_below_a_file_is_refused_by_a_read_too(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    done = lora("--db", tmp_path / "notes.txt" / "catalog.db", "list")
    assert done.returncode == 2
    assert done.stderr.startswith("lora: error: cannot use the catalog file") and "is not a directory" in done.stderr


@pytest.mark.parametrize("closed", [0, 1, 2], ids=["stdin", "stdout", "stderr"])
def test_a_closed_standard_stream_is_no_traceback_and_never_the_catalog(tmp_path: Path, closed: int) -> None:
    """Run with ``>&-`` (or ``<&-``, ``2>&-``), the catalog opened next would take that number and
    anything printed would be written into it; and Python's ``sys.stdout`` is None."""
    write_model(tmp_path / "lib", "celestial", civitai_model(CELESTIAL, file_name="celestial.safetensors"))
    db = tmp_path / "c.db"
    pipes = {0: subprocess.DEVNULL, 1: subprocess.PIPE, 2: subprocess.PIPE}
    pipes[closed] = None  # inherited here, then closed in the child before it starts
    for args in (["--version"], ["--db", db, "import", tmp_path / "lib"], ["--db", db, "list"], ["--db", db, "status"]):
        done = subprocess.run(
            [sys.executable, "-m", "lora_manager", *map(str, args)],
            stdin=pipes[0],
            stdout=pipes[1],
            stderr=pipes[2],
            preexec_fn=lambda: os.close(closed),
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stderr)
        assert b"Traceback" not in (done.stderr or b"")
    check = subprocess.run(
        [sys.executable, "-m", "lora_manager", "--db", str(db), "list", "--json"], capture_output=True, timeout=120
    )
    assert [r["name"] for r in json.loads(check.stdout)] == [CELESTIAL]
    import sqlite3

    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_ctrl_c_inside_a_callback_python_cannot_raise_from_is_answered_not_printed(tmp_path: Path) -> None:
    """A KeyboardInterrupt in a weakref callback (where an import lets go of its module lock) is noted, not
    printed as Python's "Exception ignored", and answered: the command exits 130; an import stops at its
    next batch, as after a first Ctrl-C."""
    probe = (
        "import sys, weakref\n"
        "from lora_manager import console\n"
        "if sys.argv[1] == 'hooked':\n"
        "    sys.unraisablehook = console._unraisable\n"
        "class Held: pass\n"
        "def callback(_): raise KeyboardInterrupt\n"
        "held = Held(); ref = weakref.ref(held, callback)\n"
        "del held\n"
        "print('went on', console.interrupted)\n"
    )
    runs = {
        how: subprocess.run([sys.executable, "-c", probe, how], capture_output=True, text=True, timeout=60)
        for how in ("hooked", "plain")
    }
    assert (runs["hooked"].stdout, runs["hooked"].stderr) == ("went on True\n", "")
    assert runs["plain"].stdout == "went on False\n" and "Exception ignored" in runs["plain"].stderr
    odd = probe.replace("raise KeyboardInterrupt", "raise ValueError('odd')")
    warned = subprocess.run([sys.executable, "-c", odd, "hooked"], capture_output=True, text=True, timeout=60)
    assert warned.stdout == "went on False\n" and "ValueError: odd" in warned.stderr  # still Python's to print

    lib, db = library(tmp_path / "lib"), tmp_path / "catalog.db"
    command = (  # the console script, with such a Ctrl-C as the import reads its first batch
        "import sys, weakref\n"
        "import lora_manager.services.batching as batching\n"
        "real = batching.read_batches\n"
        "def read_batches(*args, **kwargs):\n"
        "    class Held: pass\n"
        "    def callback(_): raise KeyboardInterrupt\n"
        "    held = Held(); ref = weakref.ref(held, callback); del held\n"
        "    return real(*args, **kwargs)\n"
        "batching.read_batches = read_batches\n"
        "sys.argv = ['lora', *sys.argv[1:]]\n"
        "from lora_manager.console import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", command, "--db", str(db), "import", "--json", str(lib)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 130 and "Exception ignored" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["interrupted"] is True

"""Inputs at the edges (too long a path, a malformed URL, huge numbers, bytes that are no UTF-8, Ctrl-C at any
moment): each is one clear line and a documented exit code, never a traceback or an "unexpected" error."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import a1111, civitai_model, write_model

LONG = "a" * 300  # over NAME_MAX (255) for one path component
UNDECODABLE = os.fsdecode(b"caf\xe9")  # a Latin-1 byte on the command line: a lone surrogate in Python
LORA = Path(sys.executable).with_name("lora")  # the console script


def run(runner: CliRunner, *args: Any, **kwargs: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def assert_clean_refusal(result: Result, *expected: str) -> None:
    """Exit 2, and a clear message: each expected part in it, no traceback, no "unexpected" error."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "unexpected" not in result.output
    for part in expected:
        assert part in result.output, result.output


def alpha_catalog(runner: CliRunner, tmp_path: Path) -> None:
    """A catalog holding one record, ``alpha``."""
    write_model(tmp_path / "lib", "alpha", a1111(activation_text="x"), metadata={})
    assert run(runner, "import", tmp_path / "lib", "--quiet").exit_code == 0


@pytest.mark.parametrize(
    ("env", "args"),
    [
        ({}, ["--db", "{tmp}/{long}.db", "list"]),
        ({}, ["--db", "{tmp}/{long}/c.db", "status"]),
        ({"LORA_DB": "sqlite:///{tmp}/{long}.db"}, ["db", "status"]),
        ({"LORA_DB": "sqlite:///{tmp}/{long}.db"}, ["list"]),
        ({}, ["import", "{tmp}/{long}"]),
        ({}, ["orphans", "{tmp}/{long}"]),
        ({}, ["verify", "{tmp}/{long}"]),
    ],
    ids=["db-file", "db-folder", "env-url-db-status", "env-url-list", "import", "orphans", "verify"],
)
def test_a_path_with_a_name_too_long_is_a_usage_error_naming_it(
    runner: CliRunner, tmp_path: Path, env: dict[str, str], args: list[str]
) -> None:
    """A 300-character component in --db, LORA_DB or a PATH: exit 2 with the path and the system's reason."""
    fill = {"tmp": str(tmp_path), "long": LONG}
    result = run(runner, *(a.format(**fill) for a in args), env={k: v.format(**fill) for k, v in env.items()} or None)
    assert_clean_refusal(result, LONG, os.strerror(errno.ENAMETOOLONG))
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("url", ["postgresql://u:s3cret@host:abc/d", "postgresql://u:s3cret@[::1/d", "sqlite://x:1x/"])
def test_an_unparsable_database_url_is_a_usage_error_that_hides_the_password(runner: CliRunner, url: str) -> None:
    """A port that is no number or an unclosed IPv6 bracket: "not a valid database URL", exit 2, no password."""
    result = run(runner, "--db", url, "list")
    assert_clean_refusal(result, "not a valid database URL")
    assert "s3cret" not in result.output


def test_a_sqlite_url_with_query_parameters_is_refused_without_a_raw_warning(runner: CliRunner, tmp_path: Path) -> None:
    """``sqlite:///c.db?mode=ro`` is refused in one line naming the parameter (not ignored behind a SAWarning)."""
    result = run(runner, "--db", f"sqlite:///{tmp_path}/c.db?mode=ro", "list")
    assert_clean_refusal(result, "query parameters (mode)")
    assert "Warning" not in result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "c.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["set", "alpha", "--ordinal", "99999999999999999999"],
        ["set", "alpha", "--ordinal", "-9223372036854775809"],
        ["list", "--limit", "99999999999999999999"],
        ["status", "--runs", "99999999999999999999"],
        ["errors", "--run", "99999999999999999999"],
        ["import", "{tmp}/lib", "--max-sidecar-mb", "99999999999999999999"],
        ["hash", "--threads", "99999999999999999999"],
    ],
    ids=["ordinal", "negative-ordinal", "limit", "runs", "run", "max-sidecar-mb", "threads"],
)
def test_an_integer_option_past_64_bits_is_a_usage_error_naming_it(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    """Numbers the database cannot store are refused while the options are read, and the record is untouched."""
    alpha_catalog(runner, tmp_path)
    result = run(runner, *(a.format(tmp=tmp_path) for a in args))
    assert_clean_refusal(result, args[-2])
    listed = run(runner, "list", "--json")
    assert json.loads(listed.stdout)[0]["ordinal"] is None


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_a_weight_that_is_no_finite_number_is_a_usage_error(runner: CliRunner, tmp_path: Path, value: str) -> None:
    """``set --weight inf`` or ``nan`` is refused: the weight stays a number, and ``list --json`` strict JSON."""
    alpha_catalog(runner, tmp_path)
    result = run(runner, "set", "alpha", "--weight", value)
    assert_clean_refusal(result, "--weight", "not a finite number")
    listed = run(runner, "list", "--json")

    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant}")

    assert json.loads(listed.stdout, parse_constant=refuse)[0]["weight"] == 1.0


@pytest.mark.parametrize(
    ("args", "label"),
    [
        (["list", "--tag", UNDECODABLE], "--tag"),
        (["list", "--search", UNDECODABLE], "--search"),
        (["show", UNDECODABLE], "NAME"),
        (["set", UNDECODABLE, "--active"], "NAME"),
        (["set", "alpha", "--archetype", UNDECODABLE], "--archetype"),
        (["errors", "--path", UNDECODABLE], "--path"),
        (["--db", f"/tmp/{UNDECODABLE}.db", "list"], "--db"),
    ],
    ids=["list-tag", "list-search", "show", "set-name", "set-archetype", "errors-path", "db"],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error_naming_it(
    runner: CliRunner, tmp_path: Path, args: list[str], label: str
) -> None:
    """An undecodable byte in a name, tag or option: exit 2 naming the argument, the byte shown escaped."""
    alpha_catalog(runner, tmp_path)
    result = run(runner, *args)
    assert_clean_refusal(result, f"{label} ", "caf\\xe9", "is not valid UTF-8")
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("command", ["import", "scan", "orphans", "verify"])
def test_a_library_folder_whose_name_is_not_utf8_keeps_its_own_message(
    runner: CliRunner, tmp_path: Path, command: str
) -> None:
    """A folder PATH may legitimately be no UTF-8: the command says what it does with it, not the generic refusal."""
    folder = tmp_path / UNDECODABLE
    write_model(folder, "alpha", a1111(activation_text="x"), metadata={})
    result = run(runner, command, folder)
    assert_clean_refusal(result, "the folder's path is not valid UTF-8; rename it or import a folder below")


def test_the_import_lock_is_shared_by_every_path_to_one_catalog(tmp_path: Path) -> None:
    """With the lock held on ``c.db``, ``import --no-wait`` through a link ``link.db -> c.db`` exits 2."""
    from lora_manager.db import open_catalog
    from lora_manager.db.lock import import_lock

    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    db, link = tmp_path / "c.db", tmp_path / "link.db"
    engine = open_catalog(str(db))
    link.symlink_to(db.name)
    try:
        with import_lock(engine, wait=False):
            done = subprocess.run(
                [LORA, "--db", link, "import", lib, "--no-wait"], capture_output=True, text=True, timeout=120
            )
    finally:
        engine.dispose()
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"lora: error: another import is running on the catalog {link}; retry later, or leave out --no-wait to "
        "wait for it\n"
    )
    assert not (tmp_path / "link.db.lock").exists()
    assert (tmp_path / "c.db.lock").exists()


def probe(code: str, *args: Any) -> subprocess.CompletedProcess[str]:
    """``code`` then the console script's ``main()`` with ``lora ARGS``, in a fresh interpreter."""
    script = f"import sys\nsys.argv = ['lora', *sys.argv[1:]]\n{code}\nfrom lora_manager.console import main\nmain()\n"
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_ctrl_c_while_the_catalog_closes_at_the_end_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """A SIGINT while the connections are closed after the command: they close in one piece, then exit 130."""
    lib = tmp_path / "lib"
    write_model(lib, "alpha", civitai_model("Alpha", file_name="alpha.safetensors"))
    interrupt_in_dispose = (
        "import os, signal\n"
        "import lora_manager.db.engine as engine\n"
        "real = engine.dispose_all\n"
        "def dispose_all():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    real()\n"
        "engine.dispose_all = dispose_all\n"
    )
    done = probe(interrupt_in_dispose, "--db", tmp_path / "c.db", "import", lib, "--quiet")
    assert done.returncode == 130, done.stderr
    assert done.stderr == ""
    assert not (tmp_path / "c.db-wal").exists()  # the last connection closed: the WAL was checkpointed


def test_ctrl_c_while_the_program_loads_exits_130_without_a_traceback() -> None:
    """A SIGINT while the command's modules are imported: exit 130, nothing printed."""
    interrupt_in_import = (
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lora_manager.cli.cmd_import':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
    )
    done = probe(interrupt_in_import, "--help")
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")


def interrupted_import(args: list[str], delay: float, ready: bool = False) -> tuple[int, str]:
    """Start ``args``, wait ``delay`` seconds (after its "ready" line on stderr, with ``ready``), send SIGINT."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if ready:
            assert proc.stderr is not None
            assert proc.stderr.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, err


def test_ctrl_c_at_any_moment_of_an_import_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT to ``lora import`` right after start, during the run and as it ends: 0 or 130, never a traceback.

    "Right after start" is once the interpreter runs the console script (a line on stderr says so): a SIGINT
    during the interpreter's own start-up (its ``site`` module) is Python's, before any of lora's code runs.
    """
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    for i in range(60):
        write_model(
            lib / f"f{i % 6}", f"model-{i:02}", civitai_model(f"Model {i:02}", file_name=f"model-{i:02}.safetensors")
        )
    command = ["--db", str(db), "import", str(lib), "--force", "--quiet"]
    started = time.monotonic()
    first = subprocess.run([LORA, *command], capture_output=True, text=True, timeout=120)
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr

    launcher = "import sys\nsys.argv = ['lora', *sys.argv[1:]]\nfrom lora_manager.console import main\n"
    launcher += "sys.stderr.write('ready\\n'); sys.stderr.flush()\nmain()\n"
    runs = [interrupted_import([sys.executable, "-c", launcher, *command], d, ready=True) for d in (0, 0.001, 0.01)]
    runs += [interrupted_import([str(LORA), *command], f * duration) for f in (0.3, 0.5, 0.7, 0.85, 0.95, 1.05)]
    for code, err in runs:
        assert code in (0, 130), err
        assert "Traceback" not in err and "unexpected" not in err and "Exception closing" not in err, err
    assert any(code == 130 for code, _ in runs)


@pytest.mark.parametrize("command", ["import", "scan", "orphans", "verify"])
def test_an_empty_path_argument_is_refused_not_taken_for_the_working_folder(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """``lora import ''`` (an unset shell variable) must not import whatever folder the shell is in."""
    write_model(tmp_path / "here", "stray", a1111(activation_text="x"), metadata={})
    monkeypatch.chdir(tmp_path / "here")
    result = run(runner, command, "")
    assert_clean_refusal(result, "an empty PATH argument names no folder")
    assert json.loads(run(runner, "list", "--json").stdout) == []


def test_errors_of_a_run_that_does_not_exist_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    alpha_catalog(runner, tmp_path)
    for extra in ([], ["--json"]):
        assert_clean_refusal(run(runner, "errors", "--run", "999", *extra), "no import run 999")
    assert run(runner, "errors", "--run", "1").exit_code == 0


@pytest.mark.parametrize("url", ["mysql://u:s3cret@host/db", "mssql+pyodbc://h/db", "oracle://h/db"])
def test_a_database_we_do_not_support_is_named_as_such(runner: CliRunner, url: str) -> None:
    """Not an install hint for a driver: lora-manager keeps its catalog in SQLite or PostgreSQL only."""
    result = run(runner, "--db", url, "list")
    assert_clean_refusal(result, "is not supported (a catalog is a SQLite file or a PostgreSQL URL)")
    assert "s3cret" not in result.output


def test_hash_with_dry_run_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    """A dry run writes nothing, so it cannot record hashes: refused rather than silently ignored."""
    write_model(tmp_path / "lib", "alpha", a1111(activation_text="x"), metadata={})
    assert_clean_refusal(run(runner, "import", "--dry-run", "--hash", tmp_path / "lib"), "--hash cannot be used")


def test_an_empty_db_option_is_refused_not_taken_for_the_default_catalog(runner: CliRunner) -> None:
    assert_clean_refusal(run(runner, "--db", "", "list"), "--db is empty")


def test_hash_of_an_empty_target_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    """``lora hash ''`` must not hash the whole catalog (or the working folder)."""
    alpha_catalog(runner, tmp_path)
    assert_clean_refusal(run(runner, "hash", ""), "an empty PATH|QUERY names no folder")


def test_an_import_started_with_ctrl_c_ignored_ignores_it_throughout(tmp_path: Path) -> None:
    """``lora import ... &`` in a script starts with SIGINT ignored: a SIGINT neither stops the
    walk nor the writing (it used to stop the writing only)."""
    lib, db = tmp_path / "lib", tmp_path / "c.db"
    for i in range(300):
        write_model(lib / f"f{i % 6}", f"m{i:03}", civitai_model(f"Model {i:03}", file_name=f"m{i:03}.safetensors"))
    proc = subprocess.Popen(
        [str(LORA), "--db", str(db), "import", str(lib), "--force", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # what a shell does for `cmd &`
    )
    try:
        while proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.005)
        err = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    listed = CliRunner().invoke(app, ["--db", str(db), "list", "--json"])
    assert len(json.loads(listed.stdout)) == 300

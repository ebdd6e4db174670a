"""Reading the library leaves its files' access times as they were (Linux's ``O_NOATIME``).

An access time older than the file's mtime is what ``relatime`` (the usual mount option)
updates on the next read: each test sets it so, and checks it is still so after the read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lora_manager.cli import app
from lora_manager.paths import open_regular, resolve_root
from tests.builders import civitai_model, write_json, write_model

pytestmark = pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="O_NOATIME is Linux's")
DAY_NS = 86_400 * 10**9


def _age_access_times(root: Path) -> dict[str, int]:
    """Set every file's access time a day before its mtime; return them by path."""
    times: dict[str, int] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - DAY_NS, st.st_mtime_ns))
        times[str(path)] = st.st_mtime_ns - DAY_NS
    return times


def _access_times(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_atime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _plain_read_updates_access_time(path: Path) -> bool:
    """Whether this file system updates the access time of ``path`` on a plain read (else the tests prove nothing)."""
    st = path.stat()
    os.utime(path, ns=(st.st_mtime_ns - DAY_NS, st.st_mtime_ns))
    with open(path, "rb") as f:
        f.read()
    return path.stat().st_atime_ns != st.st_mtime_ns - DAY_NS


def test_open_regular_leaves_the_access_time(tmp_path: Path) -> None:
    path = write_json(tmp_path / "lib" / "a.json", {"name": "A"})
    content = path.read_bytes()
    if not _plain_read_updates_access_time(path):
        pytest.skip("this file system does not update access times on read (noatime)")
    before = _age_access_times(tmp_path / "lib")
    with open_regular(str(path), inside=resolve_root(tmp_path / "lib")) as f:
        assert f.read() == content
    assert _access_times(tmp_path / "lib") == before


def test_import_and_reimport_leave_every_access_time(runner: CliRunner, tmp_path: Path) -> None:
    """A first import (worker processes) and a re-import of edits (the reader process) read every
    changed sidecar and model header, and leave their access times; so do scan, orphans, hash and verify."""
    lib = tmp_path / "lib"
    for i in range(12):
        write_model(lib / f"f{i % 3}", f"model-{i}", civitai_model(f"Model {i}", file_name=f"model-{i}.safetensors"))
    if not _plain_read_updates_access_time(next(lib.rglob("*.json"))):
        pytest.skip("this file system does not update access times on read (noatime)")
    before = _age_access_times(lib)
    first = runner.invoke(app, ["import", "--json", str(lib)])
    assert first.exit_code == 0, first.output
    assert _access_times(lib) == before

    for i in range(12):
        write_json(lib / f"f{i % 3}" / f"model-{i}.json", civitai_model(f"Model {i}", description=f"edit {i}"))
    before = _age_access_times(lib)
    again = runner.invoke(app, ["import", "--json", str(lib)])
    assert again.exit_code == 0, again.output
    assert '"updated": 12' in again.output
    assert _access_times(lib) == before

    # The other commands that read the library (the README's promise): hashing reads every model file whole.
    for command in (["scan", str(lib)], ["orphans", str(lib)], ["hash"], ["verify"]):
        done = runner.invoke(app, command)
        assert done.exit_code == 0, (command, done.output)
    assert _access_times(lib) == before


def test_a_file_of_another_owner_is_still_read(tmp_path: Path) -> None:
    """The kernel refuses O_NOATIME on a file the reader does not own (without CAP_FOWNER): such files
    are opened the usual way, the first refusal and every file after it."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root (to give the files away) and setpriv (to drop CAP_FOWNER)")
    lib = tmp_path / "lib"
    paths = [write_json(lib / f"{n}.json", {"name": n}) for n in ("a", "b", "c")]
    for path in paths:
        os.chown(path, 65534, 65534)
    script = (
        "import sys; from lora_manager import paths\n"
        "for p in sys.argv[2:]:\n"
        "    with paths.open_regular(p, inside=sys.argv[1]) as f: print(f.read().decode())\n"
        "print('refused' if paths._noatime == 0 else 'allowed')\n"
    )
    drop = "-fowner"
    done = subprocess.run(
        [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--", sys.executable, "-c", script, str(lib)]
        + [str(p) for p in paths],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['{"name":', '"a"}', '{"name":', '"b"}', '{"name":', '"c"}', "refused"]

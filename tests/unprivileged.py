"""Commands run as an ordinary user would run them, so that file modes are real.

Root reads and writes through modes: as root, the command runs with the capabilities that allow
that dropped (``setpriv``); the test is skipped when that cannot be done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_DROP = "-dac_override,-dac_read_search"


def prefix() -> list[str]:
    """What to put before a command so that file modes apply to it (nothing when we are not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root reads and writes files whatever their mode, and setpriv is not here to drop that")
    return [setpriv, f"--bounding-set={_DROP}", f"--inh-caps={_DROP}", "--"]


def lora(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``lora --db DB ARGS`` in a real process, as an ordinary user."""
    command = [*prefix(), sys.executable, "-m", "lora_manager", "--db", str(db), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)

"""`lora set`: the user's own state on a record, which imports never overwrite."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from lora_manager.cli import app
from tests.builders import civitai_model, write_json, write_model

NAME = "Celestial Anime Portraits"
USER_STATE = ("active", "weight", "weight_source", "ordinal", "archetype")


def run(runner: CliRunner, *args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def ok(runner: CliRunner, *args: Any) -> Result:
    result = run(runner, *args)
    assert result.exit_code == 0, result.output
    return result


def record(runner: CliRunner, version: str | None = None) -> dict[str, Any]:
    args = ["--version", version] if version else []
    data: dict[str, Any] = json.loads(ok(runner, "show", NAME, "--json", *args).stdout)
    return data


def sidecar(weight: float = 0.6, tags: list[str] | None = None, version: str = "v1.1") -> dict[str, Any]:
    """The design's Civitai JSON, whose A1111 ``preferred weight`` is the sidecar's weight."""
    data = civitai_model(
        NAME,
        version=version,
        file_name=f"celestial-{version}.safetensors",
        tags=tags or ["anime", "portrait"],
        trained_words=["celestial portrait"],
    )
    data["preferred weight"] = weight
    return data


def edit(path: Path, data: dict[str, Any]) -> None:
    """Rewrite a sidecar and give it a later mtime, as an editor would."""
    write_json(path, data)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))


@pytest.fixture
def lib(runner: CliRunner, tmp_path: Path) -> Path:
    """A library holding the design's model, imported."""
    root = tmp_path / "lib"
    write_model(root, "celestial-v1.1", sidecar())
    ok(runner, "import", root)
    return root


def test_user_state_survives_a_reimport_after_the_sidecar_changes(runner: CliRunner, lib: Path) -> None:
    """active, weight, ordinal and archetype stay as set while the metadata follows the edited sidecar."""
    ok(runner, "set", NAME, "--active", "--weight", "0.8", "--ordinal", "3", "--archetype", "hero")
    edit(lib / "celestial-v1.1.json", sidecar(weight=0.5, tags=["anime", "portrait", "edited"]))
    data = json.loads(ok(runner, "import", "--json", lib).stdout)
    assert data["updated"] == 1
    after = record(runner)
    assert after["tags"] == ["anime", "portrait", "edited"]
    assert {k: after[k] for k in USER_STATE} == {
        "active": True,
        "weight": 0.8,
        "weight_source": "user",
        "ordinal": 3,
        "archetype": "hero",
    }


def test_user_state_survives_a_forced_reimport(runner: CliRunner, lib: Path) -> None:
    """``import --force`` rewrites the metadata columns only."""
    ok(runner, "set", NAME, "--active", "--weight", "0.8", "--ordinal", "3", "--archetype", "hero")
    before = {k: record(runner)[k] for k in USER_STATE}
    ok(runner, "import", "--force", lib)
    assert {k: record(runner)[k] for k in USER_STATE} == before


def test_sidecar_weight_is_used_until_the_user_sets_one(runner: CliRunner, lib: Path) -> None:
    """Without a user weight, an edited ``preferred weight`` in the sidecar becomes the record's weight."""
    assert (record(runner)["weight"], record(runner)["weight_source"]) == (0.6, "sidecar")
    edit(lib / "celestial-v1.1.json", sidecar(weight=0.45))
    ok(runner, "import", lib)
    assert record(runner)["weight"] == 0.45


def test_reset_weight_brings_back_the_sidecar_weight_at_once(runner: CliRunner, lib: Path) -> None:
    """``--reset-weight`` reads the sidecar's weight again now; the next import has nothing to change."""
    ok(runner, "set", NAME, "--weight", "0.9")
    ok(runner, "import", lib)
    assert record(runner)["weight"] == 0.9
    ok(runner, "set", NAME, "--reset-weight")
    after = record(runner)
    assert (after["weight"], after["weight_source"]) == (0.6, "sidecar")
    again = json.loads(ok(runner, "import", "--json", lib).stdout)
    assert (again["updated"], again["new"]) == (0, 0)
    assert (record(runner)["weight"], record(runner)["weight_source"]) == (0.6, "sidecar")


def test_reset_weight_of_a_sidecar_that_cannot_be_read_now_waits_for_the_next_import(
    runner: CliRunner, lib: Path
) -> None:
    """The default until then, and the entry is read again by the next import, which restores the sidecar's."""
    ok(runner, "set", NAME, "--weight", "0.9")
    sidecars = sorted(p for p in lib.rglob("*") if p.suffix == ".json")
    saved = {p: p.read_bytes() for p in sidecars}
    for p in sidecars:
        p.write_text("{broken", encoding="utf-8")
    ok(runner, "set", NAME, "--reset-weight")
    assert (record(runner)["weight"], record(runner)["weight_source"]) == (1.0, "default")
    for p, data in saved.items():
        p.write_bytes(data)
    ok(runner, "import", lib)
    assert (record(runner)["weight"], record(runner)["weight_source"]) == (0.6, "sidecar")


def test_set_prints_the_new_state(runner: CliRunner, lib: Path) -> None:
    """The plain output names the record and each setting; ``--json`` prints the updated record."""
    result = ok(runner, "set", NAME, "--active", "--weight", "0.8")
    assert result.stdout.strip() == f"{NAME} v1.1: active=True weight=0.8 (user) ordinal=None archetype=None"
    data = json.loads(ok(runner, "set", NAME, "--ordinal", "7", "--json").stdout)
    assert (data["name"], data["ordinal"], data["weight"]) == (NAME, 7, 0.8)


def test_inactive_clears_active_and_list_active_follows(runner: CliRunner, lib: Path) -> None:
    """``--active`` and ``--inactive`` toggle the flag that ``lora list --active`` filters on."""
    ok(runner, "set", NAME, "--active")
    assert [r["name"] for r in json.loads(ok(runner, "list", "--active", "--json").stdout)] == [NAME]
    ok(runner, "set", NAME, "--inactive")
    assert json.loads(ok(runner, "list", "--active", "--json").stdout) == []


def test_empty_archetype_clears_it(runner: CliRunner, lib: Path) -> None:
    """``--archetype ''`` removes the archetype."""
    ok(runner, "set", NAME, "--archetype", "hero")
    ok(runner, "set", NAME, "--archetype", "")
    assert record(runner)["archetype"] is None


def test_version_option_sets_only_that_version(runner: CliRunner, lib: Path) -> None:
    """With two versions catalogued, ``--version`` picks which one gets the state."""
    write_model(lib, "celestial-v2.0", sidecar(version="v2.0"))
    ok(runner, "import", lib)
    ok(runner, "set", NAME, "--version", "v1.1", "--ordinal", "1")
    assert (record(runner, "v1.1")["ordinal"], record(runner, "v2.0")["ordinal"]) == (1, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([NAME], "nothing to set"),
        ([NAME, "--weight", "0.5", "--reset-weight"], "contradict"),
        (["Celestial Anime Portrait", "--active"], "did you mean 'Celestial Anime Portraits'"),
        ([NAME, "--version", "v9", "--active"], "no version 'v9' of"),
    ],
    ids=["nothing", "contradiction", "unknown-name", "unknown-version"],
)
def test_bad_set_exits_2_and_changes_nothing(runner: CliRunner, lib: Path, args: list[str], message: str) -> None:
    """A set with nothing to do, contradicting options or an unknown record exits 2 with one line."""
    before = record(runner)
    result = run(runner, "set", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert record(runner) == before


def test_user_state_survives_missing_files_and_their_return(runner: CliRunner, lib: Path, tmp_path: Path) -> None:
    """A record whose files vanish and come back keeps the user's state."""
    ok(runner, "set", NAME, "--active", "--archetype", "hero")
    shutil.move(lib / "celestial-v1.1.json", tmp_path / "kept.json")
    write_model(lib, "other", civitai_model("Other", file_name="other.safetensors"))
    ok(runner, "import", lib)
    assert record(runner)["missing_since"] is not None
    shutil.move(tmp_path / "kept.json", lib / "celestial-v1.1.json")
    ok(runner, "import", lib)
    after = record(runner)
    assert (after["missing_since"], after["active"], after["archetype"]) == (None, True, "hero")


def test_renamed_sidecar_keeps_the_user_state(runner: CliRunner, lib: Path) -> None:
    """A sidecar edited to a new version moves its record, and the user's state moves with it."""
    ok(runner, "set", NAME, "--ordinal", "5")
    edit(lib / "celestial-v1.1.json", sidecar(version="v1.2"))
    ok(runner, "import", lib)
    after = record(runner)
    assert (after["version"], after["ordinal"], after["other_versions"]) == ("v1.2", 5, [])

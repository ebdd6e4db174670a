"""The civitai_model dialect: Civitai's model response saved as ``NAME.json`` (+ A1111 keys)."""

from __future__ import annotations

import json
from pathlib import Path

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.registry import parse_sidecar

DATA = Path(__file__).parent.parent / "data" / "civitai_model"
FIXTURE = DATA / "mecha-armor-three-versions.json"
V1_SHA = "3f48553fae48e9db816f71f0b282589a4ea0f337febcc837aba187cee83bdc29"
V2_SHA = "adee453583399ab1ebadc953d1307f35c88cbb0f26d080c590af54acf2c17ef8"


def parse(
    model_file_name: str | None = None, known: frozenset[str] = frozenset(), raw: bytes | None = None
) -> SidecarInfo:
    """Parse the three-version fixture (or ``raw``) with what the importer knows about the model file."""
    ctx = ParseContext(path=str(FIXTURE), model_file_name=model_file_name, known_sha256=known)
    return parse_sidecar(FIXTURE.read_bytes() if raw is None else raw, FIXTURE.name, ctx)


def test_version_is_chosen_by_local_file_name_ignoring_case() -> None:
    """The version whose file is named like the local file is ours, whatever the case."""
    info = parse("MECHA_ARMOR_V2.safetensors")
    assert info.dialect == "civitai_model"
    assert (info.version, info.civitai_version_id) == ("v2.0", 201002)
    assert info.base_model == "SDXL 1.0"
    assert info.hashes["sha256"] == V2_SHA


def test_version_is_chosen_by_known_sha256_when_name_matches_nothing() -> None:
    """A renamed file is matched by a SHA256 another sidecar claims."""
    info = parse("my-renamed-armor.safetensors", known=frozenset({V1_SHA}))
    assert (info.version, info.civitai_version_id) == ("v1.0", 101001)
    assert info.trained_words == ["mech armor"]


def test_file_name_match_beats_known_sha256() -> None:
    """When both could decide, the file name wins over a known SHA256."""
    info = parse("mecha_armor_v2.safetensors", known=frozenset({V1_SHA}))
    assert info.version == "v2.0"


def test_first_version_is_used_when_nothing_matches() -> None:
    """With no name or hash match, the first (newest) version is taken."""
    info = parse("unrelated.safetensors", known=frozenset({"0" * 64}))
    assert (info.version, info.civitai_version_id) == ("v3.0", 301003)
    assert info.extra["versions"] == ["v3.0", "v2.0", "v1.0"]


def test_model_level_fields_are_mapped() -> None:
    """Name, author, tag objects, model id, stats and generation support come from the model."""
    info = parse()
    assert info.name == "Mecha Armor Concept"
    assert info.author_username == "Null_Pointer"
    assert info.tags == ["concept", "mecha", "armor"]
    assert info.civitai_model_id == 65203
    assert info.supports_generation is True
    assert info.visibility == "Public"
    assert info.stats is not None and info.stats["rating"] == 4.88


def test_a1111_keys_win_as_user_fields() -> None:
    """A1111 keys in the same file are the user's words: activation text, weight, notes."""
    info = parse("mecha_armor_v2.safetensors")
    assert info.activation_text == "mecha armor, glowing seams"
    assert info.weight == 0.75
    assert info.notes == "v2 is the one I use."
    assert info.sd_version == "SDXL"
    assert info.user_fields == frozenset({"activation_text", "weight", "notes"})


def test_civitai_description_is_not_a_user_field() -> None:
    """``description`` here is Civitai's model description, not the user's A1111 description."""
    info = parse()
    assert info.description == "<p>Hard-surface mecha armor for characters. See version notes.</p>"
    assert "description" not in info.user_fields


def test_without_a1111_keys_there_are_no_user_fields() -> None:
    """A plain Civitai model response claims nothing for the user."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for key in ("sd version", "activation text", "preferred weight", "notes"):
        del data[key]
    info = parse(raw=json.dumps(data).encode())
    assert info.user_fields == frozenset()
    assert (info.weight, info.activation_text, info.sd_version) == (None, None, None)


def test_the_older_nsfw_flag_gives_a_level() -> None:
    """A model response from before Civitai's levels says only ``nsfw: true``: R (4)."""
    data = json.loads(FIXTURE.read_bytes())
    del data["nsfwLevel"]
    data["nsfw"] = True
    assert parse(raw=json.dumps(data).encode()).nsfw_level == 4

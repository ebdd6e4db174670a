"""The a1111 dialect: the webui's user metadata ``NAME.json``, with civitai-browser-plus's additions."""

from __future__ import annotations

from pathlib import Path

from lora_manager.models import SidecarInfo
from lora_manager.parsing import a1111
from lora_manager.parsing.a1111 import A1111
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.registry import parse_sidecar

DATA = Path(__file__).parent.parent / "data" / "a1111"


def parse(name: str) -> SidecarInfo:
    """Parse one fixture through the public entry point, under its real file name."""
    path = DATA / name
    return parse_sidecar(path.read_bytes(), name, ParseContext(path=str(path)))


def test_card_editor_fields_are_user_fields() -> None:
    """All of the webui editor's text fields and the weight are the user's words."""
    info = parse("webui-card-editor.json")
    assert info.dialect == "a1111"
    assert info.activation_text == "lineart, monochrome"
    assert info.weight == 0.8
    assert info.negative_text == "color, blurry"
    assert info.notes == "Use with CFG 5. Too strong above 1.0."
    assert info.user_fields == frozenset({"activation_text", "weight", "negative_text", "notes"})


def test_empty_description_is_not_set() -> None:
    """``"description": ""`` is the editor's blank, not a description."""
    info = parse("webui-card-editor.json")
    assert info.description is None
    assert "description" not in info.user_fields


def test_sd_version_is_kept_but_is_no_user_field() -> None:
    """``sd version`` fills sd_version; it is a classification, not user prose."""
    info = parse("webui-card-editor.json")
    assert info.sd_version == "SDXL"
    assert "sd_version" not in info.user_fields


def test_name_is_left_to_the_importer() -> None:
    """The dialect names nothing: the importer falls back to the file name."""
    info = parse("webui-card-editor.json")
    assert (info.name, info.version) == (None, None)


def test_model_not_found_ids_become_none_and_are_kept_in_extra() -> None:
    """browser-plus's ``"Model not found"`` is no id; the marker stays in extra for the merge step."""
    info = parse("browser-plus-not-found.json")
    assert (info.civitai_model_id, info.civitai_version_id) == (None, None)
    assert info.extra == {"modelId": "Model not found", "modelVersionId": "Model not found"}


def test_uppercase_sha256_is_stored_lowercase() -> None:
    """browser-plus writes the SHA256 uppercase; hashes hold it lowercase."""
    info = parse("browser-plus-not-found.json")
    assert info.hashes == {"sha256": "d4c3e8a11256ab82a4fc72560eb4a2b0e87bad820c290dd9b03616de240aa6db"}


def test_description_written_here_is_a_user_field() -> None:
    """A non-empty description in this file counts as the user's."""
    info = parse("browser-plus-not-found.json")
    assert info.description is not None and info.description.startswith("Pastel goth fashion")
    assert "description" in info.user_fields


def test_numeric_and_string_ids_are_read() -> None:
    """``modelId`` as a number and ``modelVersionId`` as a numeric string both become ids."""
    info = parse("browser-plus-ids.json")
    assert (info.civitai_model_id, info.civitai_version_id) == (1241890, 1388211)
    assert info.extra == {"unpackList": []}


def test_hash_only_file_is_a1111_with_just_a_hash() -> None:
    """A file holding only ``sha256`` (old browser-plus) is recognised and says only that."""
    info = parse("browser-plus-hash-only.json")
    assert info.dialect == "a1111"
    assert info.hashes == {"sha256": "6cdfd271da635d491e37a2b4a1044b306e6e9e039aeadee95bb355efadf8cb33"}
    assert info.user_fields == frozenset()


def test_preferred_weight_zero_means_default() -> None:
    """``preferred weight: 0`` is the webui's "use the default", so no weight is claimed."""
    info = parse("civitai-helper-written.json")
    assert info.weight is None
    assert "weight" not in info.user_fields


def test_unknown_sd_version_is_not_set() -> None:
    """``sd version: "Unknown"`` is the editor's default choice and says nothing."""
    info = parse("civitai-helper-written.json")
    assert info.sd_version is None


def test_civitai_helper_file_keeps_activation_text_verbatim() -> None:
    """Civitai Helper's `` || ``-joined prompt list is kept as written, with its extensions block in extra."""
    info = parse("civitai-helper-written.json")
    assert info.activation_text == "lineart, monochrome, white background || sketch"
    assert info.notes == "Fixed the washed-out blacks of v1.0."
    assert info.extra["extensions"]["sd_civitai_helper"]["skeleton_file"] is False


def test_bom_unicode_and_string_weight_are_read() -> None:
    """A BOM, CJK text and a weight written as a string parse; an empty negative text is unset."""
    info = parse("bom-unicode-strings.json")
    assert info.description == "夜桜の風景。提灯と川。"
    assert info.activation_text == "yozakura, 夜桜"
    assert info.weight == 0.65
    assert info.negative_text is None
    assert info.notes == "Δelta's favourite"


def test_detect_accepts_only_a1111_and_browser_keys() -> None:
    """Objects made only of the known keys are this dialect; an empty object is not."""
    dialect = A1111()
    assert dialect.detect({"activation text": "x"}, "a.json")
    assert dialect.detect({"modelId": 1}, "a.json")
    assert not dialect.detect({}, "a.json")
    assert not dialect.detect([{"activation text": "x"}], "a.json")


def test_detect_tolerates_a_few_unknown_keys_only_beside_two_own_keys() -> None:
    """Foreign keys are tolerated with two keys of A1111's or civitai-browser-plus's present, never with one."""
    dialect = A1111()
    assert dialect.detect({"description": "d", "notes": "n", "rating": 5, "source": "me"}, "a.json")
    fork = {"activation text": "x", "activation text groups": ["x"], "modelId": 1, "modelVersionId": 2, "sha256": ""}
    assert dialect.detect(fork, "a.json")
    assert not dialect.detect({"modelId": 1, "name": "pkg", "version": "1.0.0"}, "package.json")
    assert not dialect.detect({"description": "d", "version": "1.0.0", "name": "pkg"}, "package.json")
    many = {"description": "d", "notes": "n", "a": 1, "b": 2, "c": 3, "d": 4}
    assert not dialect.detect(many, "a.json")


def test_user_values_without_description_ignores_civitai_description() -> None:
    """``user_values`` leaves ``description`` alone unless asked: in a Civitai response it is Civitai's."""
    data = {"description": "Civitai's words", "activation text": "trigger"}
    assert a1111.user_values(data) == {"activation_text": "trigger", "user_fields": frozenset({"activation_text"})}
    assert a1111.user_values(data, with_description=True)["description"] == "Civitai's words"


def test_junk_values_are_dropped_not_fatal() -> None:
    """Wrong types (a list weight, a number note, a bool id) lose only that field."""
    data = {"preferred weight": [1], "notes": 42, "activation text": True, "modelId": True, "sha256": "nothex"}
    info = A1111().parse(data, ParseContext())
    assert info.weight is None
    assert info.notes == "42"
    assert info.activation_text is None
    assert info.civitai_model_id is None
    assert info.hashes == {}

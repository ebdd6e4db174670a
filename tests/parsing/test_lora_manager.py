"""The lora_manager dialect: ComfyUI-Lora-Manager's ``NAME.metadata.json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.lora_manager import LoraManager, usage_tips
from lora_manager.parsing.registry import parse_sidecar

DATA = Path(__file__).parent.parent / "data" / "lora_manager"


def parse(name: str, model_file_name: str | None = None) -> SidecarInfo:
    """Parse one fixture through the public entry point, under its real file name."""
    path = DATA / name
    return parse_sidecar(path.read_bytes(), name, ParseContext(path=str(path), model_file_name=model_file_name))


def test_flat_record_and_embedded_version_are_mapped() -> None:
    """Name, version (= civitai.name), author, ids, words and publish date come from the record."""
    info = parse("ink-wash-landscapes.metadata.json", "inkwash_landscapes_flux_v2.safetensors")
    assert info.dialect == "lora_manager"
    assert (info.name, info.version) == ("Ink Wash Landscapes", "v2.0 Flux")
    assert info.author_username == "brushwork_studio"
    assert (info.civitai_model_id, info.civitai_version_id) == (1241890, 1388211)
    assert info.trained_words == ["inkwash style", "sumi-e"]
    assert info.published_at == datetime(2025, 2, 11, 10, 2, 45, 889000, tzinfo=UTC)
    assert info.base_model == "Flux.1 D"
    assert info.tags == ["style", "landscapes", "ink"]


def test_usage_tips_strength_is_the_user_weight() -> None:
    """``usage_tips`` is a JSON string; its ``strength`` is the user's weight."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.weight == 0.9
    assert "weight" in info.user_fields


def test_other_usage_tips_are_kept_in_extra() -> None:
    """Clip strength and the strength range are kept (decoded) in extra, without the mapped strength."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.extra["usage_tips"] == {"strength_min": 0.6, "strength_max": 1.1, "clip_strength": 0.75}


def test_notes_are_a_user_field() -> None:
    """Lora-Manager's ``notes`` are the user's."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.notes == "Best at 0.9 with euler/simple, 28 steps."
    assert info.user_fields == frozenset({"weight", "notes"})


def test_modified_is_kept_in_extra_not_taken_as_a_date() -> None:
    """``modified`` is Lora-Manager's import time: it stays in extra, published_at is Civitai's."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.extra["modified"] == 1739270000.512
    assert info.published_at is not None and info.published_at.year == 2025


def test_example_images_are_dropped_from_extra() -> None:
    """``civitai.images`` is dropped; the version's other unmapped keys are kept under extra.civitai."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert "images" not in info.extra["civitai"]
    assert info.extra["civitai"]["air"] == "urn:air:flux1:lora:civitai:1241890@1388211"
    assert info.extra["civitai"]["model"] == {"type": "LORA", "nsfw": False, "poi": False}


def test_paths_written_by_lora_manager_stay_in_extra() -> None:
    """``file_path`` and ``preview_url`` are foreign absolute paths: kept as data, never mapped."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.extra["file_path"].startswith("D:/ComfyUI/")
    assert info.primary_file_name == "inkwash_landscapes_flux_v2.safetensors"


def test_own_sha256_beats_civitai_file_hash_and_others_are_merged() -> None:
    """The SHA256 Lora-Manager computed is used; AutoV2/CRC32/AutoV3 come from the Civitai file."""
    info = parse("ink-wash-landscapes.metadata.json")
    assert info.hashes["sha256"] == "0035fc6eaa86583b32b0545eaa72b7af7833b41f03bfeb971d28882bf010ed58"
    assert set(info.hashes) == {"sha256", "autov2", "crc32", "autov3"}


def test_custom_model_without_civitai_ids() -> None:
    """A model not from Civitai has words but no ids, version, author or file."""
    info = parse("custom-trained.metadata.json")
    assert info.name == "Mochi (my cat)"
    assert info.trained_words == ["mochi cat"]
    assert (info.version, info.author_username, info.civitai_model_id, info.primary_file_name) == (None,) * 4
    assert info.weight == 0.7
    assert info.base_model == "SD 1.5"


def test_invalid_sha256_is_dropped() -> None:
    """A SHA256 that is not 64 hex digits claims nothing."""
    info = parse("custom-trained.metadata.json")
    assert info.hashes == {}


def test_empty_strings_and_lists_are_not_set() -> None:
    """Empty notes, description and tags say nothing (None); only the weight is a user field."""
    info = parse("custom-trained.metadata.json")
    assert (info.notes, info.description, info.tags) == (None, None, None)
    assert info.user_fields == frozenset({"weight"})


def test_custom_images_are_dropped() -> None:
    """``civitai.customImages`` are pictures, not metadata; nothing of ``civitai`` is left over."""
    info = parse("custom-trained.metadata.json")
    assert "civitai" not in info.extra


def test_invalid_usage_tips_string_is_tolerated_and_kept() -> None:
    """A usage-tips string that is no JSON gives no weight and is kept verbatim in extra."""
    info = parse("junk-tips-unknown-base.metadata.json")
    assert info.weight is None
    assert "weight" not in info.user_fields
    assert info.extra["usage_tips"] == "strength=0.8, clip 1"


def test_unknown_base_model_falls_back_to_civitai() -> None:
    """Lora-Manager's ``"Unknown"`` base model gives way to Civitai's ``baseModel``."""
    info = parse("junk-tips-unknown-base.metadata.json")
    assert info.base_model == "SD 1.5"


def test_missing_tags_fall_back_to_civitai_model_tags() -> None:
    """Without top-level tags, ``civitai.model.tags`` (old tag objects here) are used."""
    info = parse("junk-tips-unknown-base.metadata.json")
    assert info.tags == ["clothing", "fashion"]


def test_string_ids_comma_words_and_creator_name_are_read() -> None:
    """String ids, a comma string of words and a creator with only ``name`` still map."""
    info = parse("junk-tips-unknown-base.metadata.json")
    assert (info.civitai_model_id, info.civitai_version_id) == (270150, 310044)
    assert info.trained_words == ["pastel goth", "pastel colors"]
    assert info.author_username == "goth_pixels"
    assert info.hashes == {"sha256": "d4c3e8a11256ab82a4fc72560eb4a2b0e87bad820c290dd9b03616de240aa6db"}


def test_already_decoded_usage_tips_object_is_read() -> None:
    """``usage_tips`` stored as an object (not a string) works too; a string strength is a number."""
    info = parse("decoded-tips.metadata.json")
    assert info.weight == 1.2
    assert info.extra["usage_tips"] == {"clip_skip": 2}
    assert info.name == "夜桜 Night Sakura"


def test_usage_tips_decoder_tolerates_everything() -> None:
    """The decoder returns an object for objects and JSON-object strings, None for all else."""
    assert usage_tips('{"strength": 0.5}') == {"strength": 0.5}
    assert usage_tips({"strength": 1}) == {"strength": 1}
    too_deep = '{"a": ' * 5000 + "1" + "}" * 5000  # valid JSON that Python's decoder cannot nest
    for junk in ("", "{}}", "[1, 2]", "0.8", None, 0.8, ["strength"], too_deep, "{}" + " " * 200_000):
        assert usage_tips(junk) is None


def test_zero_strength_is_not_a_weight() -> None:
    """A strength of 0 would switch the LoRA off; it is read as "not set"."""
    data = {"model_name": "M", "file_name": "m", "sha256": "", "usage_tips": '{"strength": 0}'}
    info = LoraManager().parse(data, ParseContext())
    assert info.weight is None
    assert info.user_fields == frozenset()


def test_detect_needs_a_name_key_and_lora_manager_keys() -> None:
    """A name key plus two more of Lora-Manager's keys is this dialect; a bare hash list is not."""
    dialect = LoraManager()
    assert dialect.detect({"model_name": "M", "sha256": "x", "usage_tips": "{}"}, "a.json")
    assert not dialect.detect({"file_name": "a", "sha256": "x", "size": 1}, "hashes.json")
    assert dialect.detect({"civitai": {}}, "a.METADATA.json")
    assert not dialect.detect({"activation text": "x"}, "a.metadata.json")


def lm_record(base_model: str | None, civitai_base_model: str | None = None) -> dict[str, object]:
    """A Lora-Manager record for a model file, with its own and its Civitai version's base model."""
    civitai: dict[str, object] = {} if civitai_base_model is None else {"baseModel": civitai_base_model}
    return {"model_name": "M", "file_name": "m", "base_model": base_model, "civitai": civitai}


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("sd_v1", "SD 1.5"),  # willmiao/ComfyUI-Lora-Manager#85: files "marked as sd_v1"
        ("sdxl_base_v1-0", "SDXL 1.0"),
        ("SD1.5", "SD 1.5"),
        ("SDXL", "SDXL 1.0"),
        ("IL", "Illustrious"),
        ("Pony", "Pony"),
        ("Flux.1 D", "Flux.1 D"),
    ],
)
def test_raw_header_strings_and_short_names_become_civitai_names(written: str, name: str) -> None:
    """Older releases wrote short names, and a header's raw string for files Civitai does not know."""
    info = LoraManager().parse(lm_record(written), ParseContext())
    assert (info.base_model, info.base_model_weak) == (name, False)


def test_an_unrecognised_base_model_gives_way_to_the_embedded_civitai_one() -> None:
    """A value that names no base model we know does not outrank Civitai's in the same file."""
    info = LoraManager().parse(lm_record("my merge v3", "Illustrious"), ParseContext())
    assert (info.base_model, info.base_model_weak) == ("Illustrious", False)
    recognised = LoraManager().parse(lm_record("SDXL", "Illustrious"), ParseContext())
    assert recognised.base_model == "SDXL 1.0"  # a name we know is Lora-Manager's (user-editable) word


def test_an_unrecognised_base_model_is_kept_weak_when_nothing_better_is_known() -> None:
    """With no Civitai base model (or only "Other"), the plausible string is kept, marked weak."""
    for civitai in (None, "Other", "Unknown"):
        info = LoraManager().parse(lm_record("my_private_base v3", civitai), ParseContext())
        assert (info.base_model, info.base_model_weak) == ("my_private_base v3", True)


def test_a_civitai_file_of_another_hash_lends_nothing() -> None:
    """The embedded version's primary file is another variant (its SHA256 is not Lora-Manager's own): none of
    its hashes, name or size is taken, so the record does not mix two files' hashes."""
    other = {"SHA256": "B" * 64, "AutoV1": "12345678", "CRC32": "ABCDEF01", "AutoV3": "AAAAAAAAAAAA"}
    data = {
        "model_name": "Mixed",
        "file_name": "mixed",
        "sha256": "c" * 64,
        "civitai": {
            "id": 7,
            "files": [{"name": "mixed_fp32.safetensors", "primary": True, "sizeKB": 9.0, "hashes": other}],
        },
    }
    ctx = ParseContext(path="/l/mixed.metadata.json", model_file_name="mixed.safetensors")
    info = parse_sidecar(json.dumps(data).encode(), "mixed.metadata.json", ctx)
    assert info.hashes == {"sha256": "c" * 64}
    assert (info.primary_file_name, info.primary_file_size_kb) == (None, None)
    assert info.civitai_version_id == 7  # the version is still this file's
    data["civitai"]["files"][0]["hashes"] = {**other, "SHA256": "C" * 64}  # the same file after all
    info = parse_sidecar(json.dumps(data).encode(), "mixed.metadata.json", ctx)
    assert info.hashes["autov3"] == "aaaaaaaaaaaa" and info.primary_file_name == "mixed_fp32.safetensors"


def test_the_older_nsfw_flag_gives_a_level() -> None:
    """An embedded version whose model says only ``nsfw: true`` (before Civitai's levels) is R (4)."""
    data = {"model_name": "Old", "file_name": "old", "civitai": {"id": 7, "model": {"name": "Old", "nsfw": True}}}
    info = parse_sidecar(json.dumps(data).encode(), "old.metadata.json", ParseContext(path="/l/old.metadata.json"))
    assert info.nsfw_level == 4

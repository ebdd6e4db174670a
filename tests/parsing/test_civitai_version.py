"""The civitai_version dialect: Civitai Helper's ``NAME.civitai.info`` (a model-version response)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.civitai_version import CivitaiVersion
from lora_manager.parsing.registry import parse_sidecar

DATA = Path(__file__).parent.parent / "data" / "civitai_version"


def parse(name: str, model_file_name: str | None = None) -> SidecarInfo:
    """Parse one fixture through the public entry point, under its real file name."""
    path = DATA / name
    return parse_sidecar(path.read_bytes(), name, ParseContext(path=str(path), model_file_name=model_file_name))


def test_version_name_is_version_and_model_name_is_name() -> None:
    """``name`` of a version response is the version; the model's name comes from ``model.name``."""
    info = parse("ink-wash-landscapes.civitai.info")
    assert info.dialect == "civitai_version"
    assert info.name == "Ink Wash Landscapes"
    assert info.version == "v2.0 Flux"


def test_full_response_maps_ids_dates_words_and_creator() -> None:
    """A by-hash response's ids, publish date, trained words, base model and top-level creator are read."""
    info = parse("ink-wash-landscapes.civitai.info", "inkwash_landscapes_flux_v2.safetensors")
    assert (info.civitai_model_id, info.civitai_version_id) == (1241890, 1388211)
    assert info.published_at == datetime(2025, 2, 11, 10, 2, 45, 889000, tzinfo=UTC)
    assert info.trained_words == ["inkwash style", "sumi-e"]
    assert info.base_model == "Flux.1 D"
    assert info.author_username == "brushwork_studio"
    assert info.stats == {"downloadCount": 4821, "ratingCount": 0, "rating": 0, "thumbsUpCount": 612}


def test_hashes_are_lowercased_and_include_autov3() -> None:
    """The chosen file's hashes are stored lowercase, AutoV3 and BLAKE3 included."""
    info = parse("ink-wash-landscapes.civitai.info")
    assert info.hashes["sha256"] == "0035fc6eaa86583b32b0545eaa72b7af7833b41f03bfeb971d28882bf010ed58"
    assert info.hashes["autov2"] == "0035fc6eaa"
    assert info.hashes["autov3"] == "7c0d2b9e41aa"
    assert info.hashes["blake3"].startswith("f2661752")


def test_images_are_not_kept_in_extra_but_unknown_keys_are() -> None:
    """Example images are dropped; keys no column holds (``air``, ``status``) stay in extra."""
    info = parse("ink-wash-landscapes.civitai.info")
    assert "images" not in info.extra
    assert info.extra["air"] == "urn:air:flux1:lora:civitai:1241890@1388211"
    assert info.extra["model"] == {"type": "LORA", "nsfw": False, "poi": False}


def test_version_description_is_the_description_when_model_has_none() -> None:
    """Without a model description, the version's own description fills the column."""
    info = parse("ink-wash-landscapes.civitai.info")
    assert info.description == "<p>Retrained on 140 images; less paper texture bleeding into faces.</p>"


def test_model_description_and_tags_copied_by_helper_fork_are_used() -> None:
    """Civitai Helper's fork copies the model's description and tags into ``model``; they win."""
    info = parse("helper-fork-multi-file.civitai.info")
    assert info.description is not None and info.description.startswith("A style LoRA for crisp")
    assert info.extra["version_description"] == "Fixed the washed-out blacks of v1.0."
    assert info.tags == ["style", "lineart", "sketch"]


def test_file_is_chosen_by_local_model_file_name_ignoring_case() -> None:
    """With several files, the one named like the local model file is ours, even if not primary."""
    info = parse("helper-fork-multi-file.civitai.info", "LineArt_XL_v1.1_Pruned.safetensors")
    assert info.primary_file_name == "lineart_xl_v1.1_pruned.safetensors"
    assert info.hashes == {
        "autov2": "9831c58000",
        "sha256": "9831c58000e9091763f4edd692576f84e6ca6602433b569988384a3028cefbda",
        "crc32": "d70f6626",
    }
    assert info.primary_file_size_kb == 111551.6


def test_primary_file_is_used_when_local_name_matches_nothing() -> None:
    """An unknown local name falls back to the ``primary`` file, not the training-data zip."""
    info = parse("helper-fork-multi-file.civitai.info", "renamed-by-user.safetensors")
    assert info.primary_file_name == "lineart_xl_v1.1.safetensors"
    assert info.primary_file_download_url == "https://civitai.com/api/download/models/204118"


def test_comma_prompt_trained_words_stay_whole() -> None:
    """A trained-words entry that is a whole prompt is one entry, not split at its commas."""
    info = parse("helper-fork-multi-file.civitai.info")
    assert info.trained_words == ["lineart, monochrome, white background", "sketch"]


def test_helper_extensions_block_is_kept_in_extra() -> None:
    """Civitai Helper's ``extensions`` block (its version stamp) is kept for diagnosis."""
    info = parse("helper-fork-multi-file.civitai.info")
    assert info.extra["extensions"]["sd_civitai_helper"]["version"] == "1.8.3"


def test_empty_object_means_not_on_civitai() -> None:
    """Civitai Helper's ``{}`` parses to an empty record that says nothing else."""
    info = parse("not-on-civitai.civitai.info")
    assert info == SidecarInfo(dialect="civitai_version", path=str(DATA / "not-on-civitai.civitai.info"), empty=True)


def test_api_error_object_means_not_on_civitai() -> None:
    """A saved 404 body ``{"error": ...}`` is "not on Civitai" too, with the message kept."""
    info = parse("api-error.civitai.info")
    assert info.empty is True
    assert info.name is None
    assert info.extra == {"error": "Model not found"}


def test_bom_numbers_as_strings_and_unicode_are_read() -> None:
    """A UTF-8 BOM, ids and sizes as strings, a comma string of words and CJK names all parse."""
    info = parse("bom-strings-unicode.civitai.info", "yozakura_v3.safetensors")
    assert info.name == "夜桜 Night Sakura"
    assert (info.civitai_model_id, info.civitai_version_id) == (77310, 98812)
    assert info.primary_file_size_kb == 36982.5
    assert info.trained_words == ["yozakura", "夜桜", "lanterns"]
    assert info.author_username == "ゆめ"


def test_old_style_tag_objects_become_names() -> None:
    """Tags as ``{"name": ...}`` objects (older responses) become plain names; a null name is dropped."""
    info = parse("bom-strings-unicode.civitai.info")
    assert info.tags == ["scenery", "japanese"]


def test_null_hash_values_are_skipped() -> None:
    """``"BLAKE3": null`` adds no hash; the others are kept."""
    info = parse("bom-strings-unicode.civitai.info")
    assert "blake3" not in info.hashes
    assert info.hashes["autov2"] == "e81d3b0e9d"


def test_detects_by_shape_without_the_suffix() -> None:
    """A version response saved under any name is recognised by ``modelId`` plus ``files``."""
    dialect = CivitaiVersion()
    assert dialect.detect({"modelId": 1, "files": []}, "x.json")
    assert dialect.detect({"model": {"name": "A"}, "name": "v1"}, "x.json")
    assert not dialect.detect({"modelId": 1, "modelVersionId": 2}, "x.json")


def test_suffix_detection_ignores_case_but_needs_an_object() -> None:
    """``*.CIVITAI.INFO`` holding an object is this dialect; a list in it is not."""
    dialect = CivitaiVersion()
    assert dialect.detect({}, "Model.CIVITAI.INFO")
    assert not dialect.detect([], "model.civitai.info")
    assert not dialect.detect({}, "model.json")


def test_zero_and_junk_ids_are_no_ids() -> None:
    """An id of 0, a negative id or a word is no Civitai id."""
    ctx = ParseContext()
    info = CivitaiVersion().parse({"modelId": 0, "id": "abc", "model": {"name": "X"}}, ctx)
    assert (info.civitai_model_id, info.civitai_version_id) == (None, None)
    info = CivitaiVersion().parse({"modelId": -5, "id": "²", "model": {"name": "X"}}, ctx)
    assert (info.civitai_model_id, info.civitai_version_id) == (None, None)


def test_other_base_model_is_weak_and_unknown_is_none() -> None:
    """Civitai's "Other" is kept but weak (a header's base model says more); "Unknown" says nothing."""
    ctx = ParseContext(path="/l/m.civitai.info")
    other = CivitaiVersion().parse({"id": 1, "modelId": 2, "name": "v1", "baseModel": "Other"}, ctx)
    assert (other.base_model, other.base_model_weak) == ("Other", True)
    unknown = CivitaiVersion().parse({"id": 1, "modelId": 2, "name": "v1", "baseModel": "Unknown"}, ctx)
    assert (unknown.base_model, unknown.base_model_weak) == (None, False)


def test_civitai_base_models_are_civitai_names_even_when_unlisted() -> None:
    """A hand-shortened "SDXL" becomes Civitai's name; a name Civitai added later is kept, not weak."""
    ctx = ParseContext(path="/l/m.civitai.info")
    short = CivitaiVersion().parse({"id": 1, "modelId": 2, "name": "v1", "baseModel": "SDXL"}, ctx)
    assert (short.base_model, short.base_model_weak) == ("SDXL 1.0", False)
    newer = CivitaiVersion().parse({"id": 1, "modelId": 2, "name": "v1", "baseModel": "Flux.2 D"}, ctx)
    assert (newer.base_model, newer.base_model_weak) == ("Flux.2 D", False)


def test_a1111_keys_in_a_version_json_are_the_users_words(tmp_path: Path) -> None:
    """The webui's card editor (and civitai-browser-plus) rewrites the loaded NAME.json with its
    keys added: they are read as in a model response; ``description`` stays the version's."""
    data = {
        "id": 5678,
        "modelId": 1234,
        "name": "v2.0",
        "description": "<p>Changelog</p>",
        "baseModel": "SDXL 1.0",
        "trainedWords": ["inkwash style"],
        "model": {"name": "Ink Wash", "type": "LORA"},
        "files": [{"name": "ink.safetensors", "primary": True}],
        "activation text": "inkwash style, sumi-e",
        "preferred weight": 0.6,
        "notes": "best at 0.6",
        "negative text": "color",
        "sd version": "SDXL",
    }
    path = tmp_path / "ink.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    info = parse_sidecar(path.read_bytes(), path.name, ParseContext(path=str(path)))
    assert info.dialect == "civitai_version"
    assert (info.activation_text, info.weight, info.notes) == ("inkwash style, sumi-e", 0.6, "best at 0.6")
    assert (info.negative_text, info.sd_version, info.description) == ("color", "SDXL", "<p>Changelog</p>")
    assert info.user_fields == frozenset({"activation_text", "weight", "notes", "negative_text"})
    assert "activation text" not in info.extra and "preferred weight" not in info.extra


def test_the_older_nsfw_flag_gives_a_level_and_a_level_outranks_it() -> None:
    """A response from before Civitai's levels says only ``model.nsfw``: true is R (4). ``nsfwLevel`` wins."""
    data = {"id": 9, "modelId": 8, "name": "v1", "model": {"name": "Old", "nsfw": True}}
    ctx = ParseContext(path="/l/old.civitai.info")
    assert parse_sidecar(json.dumps(data).encode(), "old.civitai.info", ctx).nsfw_level == 4
    data["nsfwLevel"] = 16
    assert parse_sidecar(json.dumps(data).encode(), "old.civitai.info", ctx).nsfw_level == 16
    data.pop("nsfwLevel")
    data["model"]["nsfw"] = False
    assert parse_sidecar(json.dumps(data).encode(), "old.civitai.info", ctx).nsfw_level is None

"""The stability_matrix dialect: Stability Matrix's ``NAME.cm-info.json`` (ConnectedModelInfo)."""

from __future__ import annotations

import json
from pathlib import Path

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.registry import parse_sidecar
from lora_manager.parsing.stability_matrix import StabilityMatrix

DATA = Path(__file__).parent.parent / "data" / "stability_matrix"


def parse(name: str) -> SidecarInfo:
    """Parse one fixture through the public entry point, under its real file name."""
    path = DATA / name
    return parse_sidecar(path.read_bytes(), name, ParseContext(path=str(path)))


def test_pascal_case_record_is_mapped() -> None:
    """Model and version names, ids, author, base model, tags and words come from PascalCase keys."""
    info = parse("lineart-xl.cm-info.json")
    assert info.dialect == "stability_matrix"
    assert (info.name, info.version) == ("Clean LineArt XL", "LineArt-XL v1.1")
    assert (info.civitai_model_id, info.civitai_version_id) == (180655, 204118)
    assert info.author_username == "inkbot"
    assert info.base_model == "SDXL 1.0"
    assert info.tags == ["style", "lineart", "sketch"]
    assert info.trained_words == ["lineart, monochrome, white background", "sketch"]


def test_model_description_wins_and_version_description_is_kept() -> None:
    """The model's description fills the column; the version's is kept in extra."""
    info = parse("lineart-xl.cm-info.json")
    assert info.description == "<p>A style LoRA for crisp, inked line art.</p>"
    assert info.extra["VersionDescription"] == "<p>Fixed the washed-out blacks of v1.0.</p>"


def test_hashes_skip_nulls_and_are_lowercase() -> None:
    """``"BLAKE3": null`` is skipped; SHA256 and CRC32 are stored lowercase."""
    info = parse("lineart-xl.cm-info.json")
    assert info.hashes == {
        "sha256": "9831c58000e9091763f4edd692576f84e6ca6602433b569988384a3028cefbda",
        "crc32": "d70f6626",
    }


def test_remote_file_name_is_the_primary_file() -> None:
    """``RemoteFileName`` is the Civitai file this local file was downloaded as."""
    info = parse("lineart-xl.cm-info.json")
    assert info.primary_file_name == "lineart_xl_v1.1_pruned.safetensors"
    assert info.extra["RemoteFileId"] == 160020


def test_imported_at_is_no_publish_date() -> None:
    """``ImportedAt`` is Stability Matrix's import time: kept in extra, never published_at."""
    info = parse("lineart-xl.cm-info.json")
    assert info.published_at is None
    assert info.extra["ImportedAt"] == "2024-06-18T21:03:44.5121336+02:00"


def test_real_camel_case_stats_are_kept() -> None:
    """Stats as Stability Matrix really writes them (camelCase JSON names) are kept as they are."""
    info = parse("lineart-xl.cm-info.json")
    assert info.stats is not None
    assert info.stats["downloadCount"] == 15230
    assert info.stats["rating"] == 4.93


def test_legacy_pascal_case_stats_are_normalised_to_camel_case() -> None:
    """``DownloadCount``-style stat keys become Civitai's ``downloadCount`` style."""
    info = parse("legacy-strings-no-author.cm-info.json")
    assert info.stats == {"downloadCount": 3120, "favoriteCount": 211, "rating": 4.7}


def test_missing_author_ids_as_strings_and_null_words() -> None:
    """No ``AuthorUsername`` is no author; string ids parse; ``TrainedWords: null`` says nothing."""
    info = parse("legacy-strings-no-author.cm-info.json")
    assert info.author_username is None
    assert (info.civitai_model_id, info.civitai_version_id) == (270150, 310044)
    assert info.trained_words is None
    assert info.hashes == {"sha256": "d4c3e8a11256ab82a4fc72560eb4a2b0e87bad820c290dd9b03616de240aa6db"}


def test_empty_model_description_falls_back_to_version_description() -> None:
    """An empty ``ModelDescription`` lets the version's description fill the column."""
    info = parse("legacy-strings-no-author.cm-info.json")
    assert info.description == "First release"
    assert "VersionDescription" not in info.extra


def test_openmodeldb_model_has_no_civitai_ids() -> None:
    """An OpenModelDB upscaler has names and a hash but no Civitai ids or author."""
    info = parse("openmodeldb-upscaler.cm-info.json")
    assert (info.name, info.version) == ("4x-nomos8k-span", "4x Nomos8k SPAN")
    assert (info.civitai_model_id, info.civitai_version_id) == (None, None)
    assert info.extra["Source"] == "OpenModelDb"
    assert info.stats is None
    assert info.hashes["sha256"].startswith("b3ff5e5e")


def test_non_civitai_source_ignores_stray_ids() -> None:
    """Ids in a record whose ``Source`` names another site are not taken as Civitai's."""
    data = {"ModelName": "X", "ModelId": 5, "VersionId": 6, "Source": "OpenModelDb"}
    info = StabilityMatrix().parse(data, ParseContext())
    assert (info.civitai_model_id, info.civitai_version_id) == (None, None)
    numeric = StabilityMatrix().parse({**data, "Source": 0}, ParseContext())
    assert (numeric.civitai_model_id, numeric.civitai_version_id) == (5, 6)


def test_detect_needs_a_name_or_id_key_and_more() -> None:
    """A name/id key plus two more PascalCase keys is this dialect; the suffix lowers the bar."""
    dialect = StabilityMatrix()
    assert dialect.detect({"ModelName": "X", "Hashes": {}, "ImportedAt": "2024-01-01"}, "x.json")
    assert not dialect.detect({"ModelName": "X", "Tags": []}, "x.json")
    assert dialect.detect({"ModelName": "X"}, "x.CM-INFO.json")
    assert not dialect.detect({"modelName": "x"}, "x.cm-info.json")


def test_the_nsfw_flag_gives_a_level() -> None:
    """``Nsfw: true`` is Civitai's R (4), the first level it counts as mature; ``false`` says nothing."""
    for flag, level in ((True, 4), (False, None)):
        data = {"ModelName": "Night", "VersionName": "v1", "Nsfw": flag}
        info = parse_sidecar(json.dumps(data).encode(), "n.cm-info.json", ParseContext(path="/l/n.cm-info.json"))
        assert info.nsfw_level == level

"""Sidecars shaped as their real writers write them, read from real files.

Each shape follows the code that writes it (cited per test): Civitai Helper's maintained fork
(zixaphir, ``ch_lib/model_action_civitai.py`` ``get_metadata_skeleton``), Civitai's REST API
(``/api/v1/model-versions/{id}`` and ``/api/v1/models/{id}``), ComfyUI-Lora-Manager
(``py/utils/models.py`` ``BaseModelMetadata``), Stability Matrix (``ConnectedModelInfo``)
AUTOMATIC1111 / civitai-browser-plus and its forks, and SignalFlagZ's civitai browser. Values
are short and made up; the shapes are not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from lora_manager.db import open_catalog
from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.registry import parse_sidecar
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import write_safetensors

SHA_A = "9f3c1a7e2b4d6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708"
SHA_B = "a5f58eb1c3" + "1" * 54
SHA_C = "c" * 64
HELPER_BLOCK = {"sd_civitai_helper": {"version": "1.8.3", "last_update": 1699001234, "skeleton_file": True}}


def write(path: Path, data: Any, *, crlf: bool = False, bom: bool = False) -> Path:
    """Write ``data`` as its writer would: indented JSON, optionally with CRLF line ends and a BOM."""
    text = json.dumps(data, indent=4, ensure_ascii=False)
    raw = (text.replace("\n", "\r\n") if crlf else text).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    return path


def parse_file(path: Path, model_file_name: str | None = None, known: frozenset[str] = frozenset()) -> SidecarInfo:
    """Parse a sidecar on disk the way the importer does."""
    stem = path.name.split(".")[0]
    ctx = ParseContext(path=str(path), stem=stem, model_file_name=model_file_name, known_sha256=known)
    return parse_sidecar(path.read_bytes(), path.name, ctx)


def import_rows(tmp_path: Path, lib: Path) -> list[dict[str, Any]]:
    """Import ``lib`` into a fresh SQLite catalog and return ``lora list``'s rows."""
    engine: Engine = open_catalog(str(tmp_path / "catalog.db"))
    try:
        run_import(engine, ImportOptions(roots=[str(lib)]))
        return list_adapters(engine, ListQuery())
    finally:
        engine.dispose()


def helper_skeleton(file_name: str, sha256: str) -> dict[str, Any]:
    """Civitai Helper's skeleton ``.civitai.info`` for a model Civitai does not know."""
    return {
        "id": "",
        "modelId": "",
        "name": "",
        "trainedWords": ["mochi cat"],
        "baseModel": "Unknown",
        "description": "",
        "model": {"name": file_name, "type": "lora", "nsfw": "", "poi": "", "description": ""},
        "files": [
            {
                "name": file_name,
                "sizeKB": 147571,
                "type": "Model",
                "hashes": {"AutoV2": sha256[:10], "SHA256": sha256},
            }
        ],
        "tags": ["cat", "sofa"],
        "downloadUrl": "",
        "skeleton_file": True,
        "extensions": HELPER_BLOCK,
    }


def test_civitai_helper_skeleton_imports_under_the_stem_with_the_header_base_model(tmp_path: Path) -> None:
    """A skeleton's ``model.name`` is the file name with its extension and its base model is
    ``"Unknown"``: neither may become the record's; its locally computed SHA256 still counts."""
    lib = tmp_path / "lib"
    write_safetensors(lib / "mochi_cat_v2.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    write(lib / "mochi_cat_v2.civitai.info", helper_skeleton("mochi_cat_v2.safetensors", SHA_A), crlf=True)
    sd15 = {"description": "", "sd version": "Unknown", "activation text": "mochi cat", "preferred weight": 0}
    write(lib / "mochi_cat_v2.json", {**sd15, "extensions": HELPER_BLOCK})

    [row] = import_rows(tmp_path, lib)

    assert row["name"] == "mochi_cat_v2"
    assert row["base_model"] == "SDXL 1.0"
    assert row["primary_file_sha256"] == SHA_A
    assert row["trained_words"] == ["mochi cat"]
    assert row["civitai_model_id"] is None and row["civitai_version_id"] is None


def test_skeleton_flag_in_the_extension_block_alone_is_enough(tmp_path: Path) -> None:
    """Older skeletons carry the flag only inside ``extensions.sd_civitai_helper``."""
    data = helper_skeleton("x.safetensors", SHA_A)
    del data["skeleton_file"]
    info = parse_file(write(tmp_path / "x.civitai.info", data), "x.safetensors")
    assert info.name is None
    assert info.base_model is None
    assert info.hashes["sha256"] == SHA_A


def modern_version_response() -> dict[str, Any]:
    """A 2025 ``/api/v1/model-versions/{id}``: null description, no ``primary`` flag, a pruned
    variant typed ``"Pruned Model"`` next to a larger training-data zip, ``publishedAt`` without Z."""
    return {
        "id": 2514310,
        "modelId": 827184,
        "name": "v16.0",
        "description": None,
        "baseModel": "Illustrious",
        "availability": "Public",
        "nsfwLevel": 3,
        "publishedAt": "2025-12-18T09:16:12.062",
        "trainedWords": [],
        "stats": {"downloadCount": 2156, "thumbsUpCount": 138},
        "model": {"name": "Watercolor Bloom", "type": "LORA", "nsfw": False, "poi": False, "minor": False},
        "files": [
            {
                "id": 1,
                "name": "bloom_dataset.zip",
                "type": "Training Data",
                "sizeKB": 512000.0,
                "metadata": {"format": "Other", "size": None, "fp": None},
                "hashes": {"SHA256": "A" * 64},
                "downloadUrl": "https://civitai.com/api/download/models/2514310?type=Training%20Data",
            },
            {
                "id": 2,
                "name": "watercolor_bloom_v16.safetensors",
                "type": "Pruned Model",
                "sizeKB": 223100.5,
                "hashes": {
                    "AutoV1": "4748A7F6",
                    "AutoV2": SHA_B[:10].upper(),
                    "SHA256": SHA_B.upper(),
                    "CRC32": "DAEE95B7",
                    "AutoV3": "22D8CB95B807",
                },
                "downloadUrl": "https://civitai.com/api/download/models/2514310?type=Pruned%20Model",
            },
        ],
        "images": [{"url": "https://image.civitai.com/x/1.jpeg", "nsfwLevel": 1, "meta": None}],
    }


def test_a_training_data_zip_never_stands_for_the_model_file(tmp_path: Path) -> None:
    """With the local file renamed and no ``primary`` flag, the pruned model file is ours, not the zip."""
    info = parse_file(write(tmp_path / "renamed.civitai.info", modern_version_response()), "renamed.safetensors")
    assert info.primary_file_name == "watercolor_bloom_v16.safetensors"
    assert info.hashes["sha256"] == SHA_B
    assert info.hashes["autov3"] == "22d8cb95b807"
    assert info.primary_file_download_url is not None and info.primary_file_download_url.endswith("Pruned%20Model")
    # The rest of the modern shape maps as it is.
    assert (info.name, info.version, info.description) == ("Watercolor Bloom", "v16.0", None)
    assert (info.nsfw_level, info.visibility, info.trained_words) == (3, "Public", [])
    assert info.published_at is not None and info.published_at.isoformat() == "2025-12-18T09:16:12.062000+00:00"


def two_variant_model_response() -> dict[str, Any]:
    """An older ``/api/v1/models/{id}``: ``nsfw`` without ``nsfwLevel``, a version changelog, and
    fp16 (primary) and fp32 files of one version, both typed ``"Model"``."""
    return {
        "id": 3036,
        "name": "CharTurner",
        "description": "<h1>CharTurner</h1>",
        "type": "LORA",
        "nsfw": True,
        "mode": None,
        "creator": {"username": "mousewrites", "image": None},
        "tags": ["character", "turnaround"],
        "modelVersions": [
            {
                "id": 9857,
                "modelId": 3036,
                "name": "v2",
                "createdAt": "2023-02-12T22:44:01.442Z",
                "description": "<p>Fixed the hands.</p>",
                "trainedWords": ["charturnerv2"],
                "baseModel": "SD 1.5",
                "files": [
                    {
                        "name": "charturner_v2_fp16.safetensors",
                        "sizeKB": 18.0,
                        "type": "Model",
                        "primary": True,
                        "hashes": {"SHA256": SHA_A.upper()},
                    },
                    {
                        "name": "charturner_v2_fp32.safetensors",
                        "sizeKB": 36.0,
                        "type": "Model",
                        "hashes": {"SHA256": SHA_C.upper()},
                    },
                ],
                "images": [{"url": "https://imagecache.civitai.com/x/96744.jpeg", "nsfw": False, "meta": None}],
            }
        ],
    }


def test_a_sha256_another_sidecar_claims_picks_the_file_of_the_version(tmp_path: Path) -> None:
    """A renamed fp32 file whose SHA256 another sidecar claims is the fp32 entry, not the primary fp16."""
    path = write(tmp_path / "mine.json", two_variant_model_response())
    info = parse_file(path, "mine.safetensors", frozenset({SHA_C}))
    assert info.primary_file_name == "charturner_v2_fp32.safetensors"
    assert info.primary_file_size_kb == 36.0
    assert info.hashes["sha256"] == SHA_C


def test_an_old_model_response_keeps_its_nsfw_flag_and_the_version_changelog(tmp_path: Path) -> None:
    """``nsfw`` and the version's ``description`` have no column; they were dropped, not kept in extra."""
    info = parse_file(write(tmp_path / "charturner.json", two_variant_model_response()), "x.safetensors")
    assert info.extra["nsfw"] is True
    assert info.extra["version"]["description"] == "<p>Fixed the hands.</p>"
    assert info.description == "<h1>CharTurner</h1>"


def lora_manager_record(**changes: Any) -> dict[str, Any]:
    """A current ComfyUI-Lora-Manager ``.metadata.json`` (``autov3``, ``sub_type``-era keys)."""
    record: dict[str, Any] = {
        "file_name": "inkwash_v3",
        "model_name": "Ink Wash",
        "file_path": "C:/ComfyUI/models/loras/inkwash_v3.safetensors",
        "size": 19878328.0,
        "modified": 1739270000.512,
        "sha256": SHA_C,
        "base_model": "Unknown",
        "preview_url": "",
        "preview_nsfw_level": 0,
        "notes": "",
        "from_civitai": False,
        "civitai": {},
        "tags": [],
        "modelDescription": "",
        "civitai_deleted": False,
        "favorite": False,
        "exclude": False,
        "db_checked": False,
        "skip_metadata_refresh": False,
        "metadata_source": None,
        "last_checked_at": 0,
        "hash_status": "completed",
        "autov3": "ABCDEF012345",
        "usage_tips": "{}",
    }
    return {**record, **changes}


def test_lora_manager_top_level_autov3_is_a_hash_claim(tmp_path: Path) -> None:
    """Lora-Manager's own ``autov3`` (from the header or the matching Civitai file) is kept as a hash."""
    info = parse_file(write(tmp_path / "inkwash_v3.metadata.json", lora_manager_record(), bom=True))
    assert info.hashes == {"sha256": SHA_C, "autov3": "abcdef012345"}
    assert "autov3" not in info.extra
    assert info.base_model is None  # "Unknown", and the embedded version says nothing either


def test_lora_manager_null_autov3_means_checked_and_unavailable(tmp_path: Path) -> None:
    """``"autov3": null`` is Lora-Manager's "checked, none": no claim, nothing invented."""
    info = parse_file(write(tmp_path / "a.metadata.json", lora_manager_record(autov3=None)))
    assert "autov3" not in info.hashes


def test_lora_manager_own_sha256_picks_the_embedded_file(tmp_path: Path) -> None:
    """Lora-Manager hashed the local file: of the embedded version's files, the one with that SHA256 is ours."""
    civitai = {
        "id": 9857,
        "modelId": 3036,
        "name": "v2",
        "baseModel": "Unknown",
        "files": two_variant_model_response()["modelVersions"][0]["files"],
    }
    path = write(tmp_path / "renamed.metadata.json", lora_manager_record(civitai=civitai))
    info = parse_file(path, "renamed.safetensors")
    assert info.primary_file_name == "charturner_v2_fp32.safetensors"
    assert info.base_model is None


def test_other_real_shapes_map_as_a_user_expects(tmp_path: Path) -> None:
    """Shapes that already mapped right stay so: Stability Matrix's compact serialisation with a
    numeric ``Source``, an A1111 card with a checkpoint's ``vae`` key and a weight as text, and
    civitai-browser-plus's file that holds only ``modelId``."""
    sm = {
        "ModelId": 120096, "ModelName": "Pixel Art XL", "ModelDescription": "<p>pixels</p>", "Nsfw": False,
        "Tags": ["pixel art"], "ModelType": "LORA", "VersionId": 135931, "VersionName": "v1.1",
        "VersionDescription": None, "AuthorUsername": "NeriJS", "BaseModel": "SDXL 1.0",
        "RemoteFileName": "pixel-art-xl.safetensors", "RemoteFileId": 99001, "FileMetadata": None,
        "ImportedAt": "2024-01-05T12:00:00+01:00",
        "Hashes": {"SHA256": SHA_B.upper(), "CRC32": "0A1B2C3D", "BLAKE3": None},
        "TrainedWords": ["pixel art"], "Stats": {"downloadCount": 100, "ratingCount": 2, "rating": 5.0},
        "UserTitle": None, "ThumbnailImageUrl": None, "InferenceDefaults": {"Sampler": "euler"}, "Source": 0,
    }  # fmt: skip
    sm_path = tmp_path / "pixel.cm-info.json"
    sm_path.write_text(json.dumps(sm, separators=(",", ":")))
    info = parse_file(sm_path)
    assert (info.dialect, info.name, info.civitai_model_id, info.author_username) == (
        "stability_matrix",
        "Pixel Art XL",
        120096,
        "NeriJS",
    )
    assert info.hashes == {"sha256": SHA_B, "crc32": "0a1b2c3d"}

    card = {"description": "Mine", "sd version": "SDXL", "activation text": "", "preferred weight": "0.7",
            "negative text": "", "notes": "", "vae": "sdxl_vae.safetensors"}  # fmt: skip
    info = parse_file(write(tmp_path / "card.json", card, crlf=True))
    assert (info.dialect, info.weight, info.description, info.sd_version) == ("a1111", 0.7, "Mine", "SDXL")
    assert info.extra == {"vae": "sdxl_vae.safetensors"}

    info = parse_file(write(tmp_path / "ids.json", {"modelId": 5529}))
    assert (info.dialect, info.civitai_model_id) == ("a1111", 5529)


def test_civitai_browser_forks_ids_file_with_the_model_page_url_is_read(tmp_path: Path) -> None:
    """sd-civitai-browser-neo's scan (``civitai_file_manage.py`` ``find_and_save``) writes the ids,
    the SHA256 and the model page's URL: A1111's file, the URL kept in ``extra``."""
    data = {
        "modelId": 1241890,
        "modelVersionId": 1388211,
        "modelPageURL": "https://civitai.com/models/1241890?modelVersionId=1388211",
        "sha256": SHA_A.upper(),
    }
    info = parse_file(write(tmp_path / "a.json", data))
    assert (info.dialect, info.civitai_model_id, info.civitai_version_id) == ("a1111", 1241890, 1388211)
    assert info.hashes == {"sha256": SHA_A}
    assert info.extra == {"modelPageURL": data["modelPageURL"]}


def test_browser_copies_of_civitai_responses_are_sidecars_of_their_model(tmp_path: Path) -> None:
    """civitai-browser-plus's ``NAME.api_info.json`` (``save_model_info``) and SignalFlagZ's
    ``NAME.civitai.json`` (``civsfz_filemanage.py``) merge into NAME's record with its other
    sidecars, even when they name the file as Civitai does, not as it is called here."""
    lib = tmp_path / "lib"
    write_safetensors(lib / "ink.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    write(lib / "ink.json", {"activation text": "ink wash", "sd version": "Unknown", "modelId": 1241890})
    version = modern_version_response()
    version.update(name="v2.0 Flux", baseModel="Flux.1 D", model={"name": "Ink Wash Landscapes", "type": "LORA"})
    write(lib / "ink.api_info.json", version)
    write_safetensors(lib / "cat.safetensors", {})
    write(lib / "cat.json", {"activation text": "cat", "sd version": "SD1"})
    model = {
        "id": 4201, "name": "Cat Ears", "type": "LORA", "tags": ["cat"], "creator": {"username": "mira"},
        "modelVersions": [{
            "id": 9001, "modelId": 4201, "name": "v3", "baseModel": "SD 1.5", "trainedWords": ["cat ears"],
            "files": [{"name": "cat_ears_v3.safetensors", "primary": True, "hashes": {"SHA256": SHA_C}}],
        }],
        "html0": "<div>the browser's own card</div>",
    }  # fmt: skip
    write(lib / "cat.civitai.json", model)

    rows = {r["name"]: r for r in import_rows(tmp_path, lib)}

    assert set(rows) == {"Ink Wash Landscapes", "Cat Ears"}
    ink, cat = rows["Ink Wash Landscapes"], rows["Cat Ears"]
    assert (ink["version"], ink["base_model"], ink["activation_text"]) == ("v2.0 Flux", "Flux.1 D", "ink wash")
    assert (cat["version"], cat["base_model"], cat["activation_text"]) == ("v3", "SD 1.5", "cat")
    assert cat["primary_file_sha256"] == SHA_C and cat["author_username"] == "mira"


def test_a_2023_version_without_published_at_is_dated_by_its_creation(tmp_path: Path) -> None:
    """Versions saved before Civitai had ``publishedAt`` carry ``createdAt`` only (Civitai Helper, 2023)."""
    data = {
        "id": 9857, "modelId": 3036, "name": "CharTurner V2 - For 2.1", "createdAt": "2023-02-12T22:44:01.442Z",
        "updatedAt": "2023-02-13T01:02:03.000Z", "baseModel": "SD 2.1", "model": {"name": "Character Turner"},
        "files": [{"name": "charturnerv2.pt", "hashes": {"SHA256": SHA_A}}],
    }  # fmt: skip
    info = parse_file(write(tmp_path / "charturner.civitai.info", data), "charturnerv2.pt")
    assert info.published_at is not None and info.published_at.isoformat() == "2023-02-12T22:44:01.442000+00:00"
    data["publishedAt"] = "2023-02-14T00:00:00Z"
    info = parse_file(write(tmp_path / "charturner.civitai.info", data), "charturnerv2.pt")
    assert info.published_at is not None and info.published_at.isoformat() == "2023-02-14T00:00:00+00:00"


def test_an_older_helper_skeleton_without_its_flag_is_still_a_skeleton(tmp_path: Path) -> None:
    """Civitai Helper forks before the flag (zixaphir's ``get_metadata_skeleton``) wrote empty ids
    and the file name as the model name: the record takes the stem, not ``mochi_cat_v2.safetensors``."""
    data = helper_skeleton("mochi_cat_v2.safetensors", SHA_A)
    del data["skeleton_file"]
    data["extensions"] = {"sd_civitai_helper": {"version": "1.7.2"}}
    info = parse_file(write(tmp_path / "mochi_cat_v2.civitai.info", data), "mochi_cat_v2.safetensors")
    assert info.name is None and info.hashes["sha256"] == SHA_A
    # A real version whose model happens to be called like its file keeps its name.
    real = {**data, "id": 77, "modelId": 66}
    info = parse_file(write(tmp_path / "real.civitai.info", real), "mochi_cat_v2.safetensors")
    assert info.name == "mochi_cat_v2.safetensors"


def test_a1111_sd_version_naming_a_base_model_outranks_the_header(tmp_path: Path) -> None:
    """Browser forks write Civitai's base model ("Pony") into ``sd version``; the header of a Pony
    LoRA says SDXL. The webui's own families ("SDXL", "SD1") say less than the header."""
    lib = tmp_path / "lib"
    for stem, sd_version in (("pony", "Pony"), ("family", "SDXL"), ("forge", "Flux")):
        write_safetensors(lib / f"{stem}.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
        write(lib / f"{stem}.json", {"activation text": stem, "sd version": sd_version, "modelId": 1})
    rows = {r["name"]: r for r in import_rows(tmp_path, lib)}
    assert (rows["pony"]["base_model"], rows["pony"]["sd_version"]) == ("Pony", "Pony")
    assert (rows["family"]["base_model"], rows["family"]["sd_version"]) == ("SDXL 1.0", "SDXL")
    assert rows["forge"]["base_model"] == "SDXL 1.0"  # Forge's "Flux" family: the header says more


def test_a_version_file_of_a_renamed_variant_follows_the_sha256_hashed_here(tmp_path: Path) -> None:
    """Civitai Helper saves a by-hash response whole, every file of the version listed; with the
    local fp32 file renamed, the SHA256 civitai-browser-plus computed here (``NAME.json``) picks
    the fp32 entry: name, size and hash of one file, not the primary fp16's name with fp32's hash.
    A model JSON beside them follows the same pick."""
    lib = tmp_path / "lib"
    write_safetensors(lib / "renamed_fp32.safetensors", {})
    [version] = two_variant_model_response()["modelVersions"]
    write(lib / "renamed_fp32.civitai.info", {**version, "model": {"name": "Character Turner"}})
    write(lib / "renamed_fp32.json", {"modelId": 3036, "sha256": SHA_C})

    [row] = import_rows(tmp_path, lib)

    assert row["primary_file_name"] == "charturner_v2_fp32.safetensors"
    assert (row["primary_file_size_kb"], row["primary_file_sha256"]) == (36.0, SHA_C)


def test_civitai_other_base_model_gives_way_to_the_header(tmp_path: Path) -> None:
    """Civitai's "Other" hides nothing the header knows; with a header that says nothing it is kept."""
    lib = tmp_path / "lib"
    for stem, header in (("known", {"ss_base_model_version": "sdxl_base_v1-0"}), ("bare", {})):
        write_safetensors(lib / f"{stem}.safetensors", header)
        version = {"id": 7, "modelId": 8, "name": "v1", "baseModel": "Other", "model": {"name": stem}}
        write(lib / f"{stem}.civitai.info", version)
    rows = {r["name"]: r for r in import_rows(tmp_path, lib)}
    assert (rows["known"]["base_model"], rows["bare"]["base_model"]) == ("SDXL 1.0", "Other")


def test_lora_manager_raw_and_unrecognised_base_models_yield_to_recognised_ones(tmp_path: Path) -> None:
    """Lora-Manager's "sd_v1" (issue #85) becomes "SD 1.5"; an unrecognised value loses to the header."""
    lib = tmp_path / "lib"
    for stem, base_model in (("raw", "sd_v1"), ("custom", "my merge v3"), ("alone", "my merge v3")):
        write_safetensors(lib / f"{stem}.safetensors", {} if stem == "alone" else {"ss_base_model_version": "sd_v1"})
        write(lib / f"{stem}.metadata.json", {"model_name": stem, "file_name": stem, "base_model": base_model})
    rows = {r["name"]: r for r in import_rows(tmp_path, lib)}
    assert [rows[s]["base_model"] for s in ("raw", "custom", "alone")] == ["SD 1.5", "SD 1.5", "my merge v3"]


def test_a1111_sd_version_is_read_as_a_base_model_name(tmp_path: Path) -> None:
    """ "SD1.5" is Civitai's "SD 1.5"; an ``sd version`` naming nothing we know loses to the header."""
    lib = tmp_path / "lib"
    for stem, sd_version in (("short", "SD1.5"), ("custom", "my base")):
        write_safetensors(lib / f"{stem}.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
        write(lib / f"{stem}.json", {"activation text": stem, "sd version": sd_version, "modelId": 1})
    rows = {r["name"]: r for r in import_rows(tmp_path, lib)}
    assert (rows["short"]["base_model"], rows["custom"]["base_model"]) == ("SD 1.5", "SDXL 1.0")
    assert rows["custom"]["sd_version"] == "my base"


def test_a1111_keys_in_a_version_json_outrank_civitai_as_in_a_model_json(tmp_path: Path) -> None:
    """A version response saved as NAME.json and edited in the webui: its activation text, weight
    and notes outrank Civitai's trained words, as they do in a model response and beside a
    ``.civitai.info``."""
    lib = tmp_path / "lib"
    write_safetensors(lib / "ink.safetensors", {})
    version = {
        "id": 7,
        "modelId": 8,
        "name": "v2.0",
        "baseModel": "SDXL 1.0",
        "trainedWords": ["inkwash style"],
        "model": {"name": "Ink Wash"},
        "files": [{"name": "ink.safetensors", "primary": True, "hashes": {"SHA256": SHA_A}}],
    }
    write(lib / "ink.json", {**version, "activation text": "sumi-e", "preferred weight": 0.6, "notes": "mine"})
    write(lib / "ink.civitai.info", version)
    [row] = import_rows(tmp_path, lib)
    assert (row["activation_text"], row["triggers"], row["weight"]) == ("sumi-e", ["sumi-e"], 0.6)
    assert row["notes"] == "mine"

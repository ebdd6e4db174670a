"""Write ``examples/library``: the small sample library the README's quickstart imports.

Standard library only and deterministic: the same bytes on every run, so the committed
library and this script never drift apart (``tests/test_examples.py`` checks that).

    python examples/make_examples.py            # rewrite examples/library
    python examples/make_examples.py OUT_DIR    # write the library somewhere else

What the library holds, and what ``lora import examples/library`` makes of it:

========================================  =============================================
``anime/celestial-anime-portraits``       Civitai model JSON (the design's example) and
                                          a ``.preview.png``
``anime/ink-wash-landscapes``             ``.civitai.info`` plus an A1111 ``.json``
                                          beside it (the user's trigger words and weight)
``sdxl/mecha-armor-v2``                   Civitai model JSON listing three versions;
                                          the local file picks v2
``sdxl/neon-city-nights``                 ComfyUI-Lora-Manager ``.metadata.json``
``sdxl/clean-lineart-xl``                 Stability Matrix ``.cm-info.json``
``unsorted/mystery-style.safetensors``    an orphan: no sidecar, only its kohya header
``unsorted/pixel-knights.json``           a sidecar whose model file is missing
``unsorted/config.json``                  a diffusers config: not LoRA metadata
========================================  =============================================

Five records, one orphan, one skipped file and one failure (``model_missing``), so the
import exits 1: the quickstart shows what a failure looks like.

Every model file is a real safetensors file of a few hundred bytes (two small F16
tensors and a kohya ``__metadata__`` header). Hashes in the sidecars are the files' real
SHA256 (and CRC32, AutoV2); ``sshs_model_hash`` is the SHA256 of the tensor data, as
kohya's scripts write it (Civitai's AutoV3 is its first 12 hex digits).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LIBRARY = HERE / "library"


# ---------------------------------------------------------------- model files


def tensor_data(seed: str, size: int) -> bytes:
    """Deterministic stand-in weights."""
    out = b""
    block = seed.encode()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return out[:size]


def safetensors_bytes(seed: str, metadata: dict[str, str]) -> bytes:
    """A valid safetensors file: u64 header length, JSON header padded to 8 bytes, tensor data."""
    down, up = tensor_data(seed + "/down", 64), tensor_data(seed + "/up", 64)
    data = down + up
    meta = dict(metadata)
    meta["sshs_model_hash"] = hashlib.sha256(data).hexdigest()
    header: dict[str, Any] = {
        "__metadata__": meta,
        "lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": {
            "dtype": "F16",
            "shape": [4, 8],
            "data_offsets": [0, 64],
        },
        "lora_unet_mid_block_attentions_0_proj_in.lora_up.weight": {
            "dtype": "F16",
            "shape": [8, 4],
            "data_offsets": [64, 128],
        },
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def kohya(output_name: str, base: str, tags: dict[str, int] | None = None) -> dict[str, str]:
    """The ``__metadata__`` kohya's sd-scripts write (the keys a catalog cares about)."""
    meta = {
        "ss_output_name": output_name,
        "ss_base_model_version": base,
        "ss_network_module": "networks.lora",
        "ss_network_dim": "8",
        "ss_network_alpha": "4",
        "ss_training_started_at": "1714557600.0",
    }
    if tags:
        meta["ss_tag_frequency"] = json.dumps({"10_train": tags}, separators=(",", ":"))
    return meta


def hashes(model: bytes) -> dict[str, str]:
    """The hashes Civitai lists for a file (uppercase, as the API writes them)."""
    sha = hashlib.sha256(model).hexdigest().upper()
    return {"AutoV2": sha[:10], "SHA256": sha, "CRC32": f"{zlib.crc32(model):08X}"}


def png_1x1(rgb: tuple[int, int, int]) -> bytes:
    """A valid one-pixel PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(rgb), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- sidecars


def celestial(model: bytes) -> dict[str, Any]:
    """Civitai model JSON with A1111's keys in the same file: the design document's example."""
    return {
        "id": 101101,
        "name": "Celestial Anime Portraits",
        "description": (
            "Create luminous anime-inspired character portraits with starlit skin and soft watercolor skies."
        ),
        "type": "LORA",
        "tags": ["anime", "portrait", "fantasy", "celestial", "watercolor"],
        "creator": {"username": "stargazer"},
        "modelVersions": [
            {
                "id": 202202,
                "name": "v1.1",
                "publishedAt": "2024-05-01T12:00:00Z",
                "baseModel": "SD 1.5",
                "trainedWords": ["celestial portrait", "shimmering eyes"],
                "files": [
                    {
                        "name": "celestial-anime-portraits.safetensors",
                        "downloadUrl": "http://example.com/model.safetensors",
                        "hashes": hashes(model),
                        "sizeKB": round(len(model) / 1024, 3),
                        "type": "Model",
                        "primary": True,
                    }
                ],
            }
        ],
        "stats": {"downloadCount": 4200, "favoriteCount": 380, "rating": 4.6},
        "supportsGeneration": True,
        "sd version": "SD1.5",
        "nsfwLevel": 0,
        "activation text": "celestial portrait",
    }


def ink_wash_info(model: bytes) -> dict[str, Any]:
    """Civitai Helper's ``.civitai.info``: the model-version response (``name`` is the version's).

    The maintained fork of Civitai Helper copies the parent model's tags into ``model``.
    """
    return {
        "id": 303303,
        "modelId": 404404,
        "name": "v1.0",
        "publishedAt": "2024-09-10T08:30:00Z",
        "trainedWords": ["ink wash painting"],
        "baseModel": "SD 1.5",
        "description": "<p>Trained on 80 scroll paintings.</p>",
        "model": {
            "name": "Ink Wash Landscapes",
            "type": "LORA",
            "nsfw": False,
            "poi": False,
            "tags": ["landscape", "ink", "traditional"],
        },
        "creator": {"username": "brushwork_studio"},
        "files": [
            {
                "id": 505505,
                "name": "ink-wash-landscapes.safetensors",
                "sizeKB": round(len(model) / 1024, 3),
                "type": "Model",
                "primary": True,
                "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                "hashes": hashes(model),
                "downloadUrl": "https://civitai.example/api/download/models/303303",
            }
        ],
        "stats": {"downloadCount": 912, "ratingCount": 14, "rating": 4.8},
    }


def ink_wash_user() -> dict[str, Any]:
    """A1111's extra-networks card: what the user typed, which outranks Civitai."""
    return {
        "description": "Misty mountains and rivers in sumi-e style.",
        "sd version": "SD1",
        "activation text": "ink wash painting, monochrome",
        "preferred weight": 0.7,
        "negative text": "color, photo",
        "notes": "Best between 0.6 and 0.8.",
    }


def mecha(model: bytes) -> dict[str, Any]:
    """A Civitai model JSON listing three versions; the one naming the local file is taken."""

    def version(number: int, name: str, published: str, files: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": 606600 + number,
            "name": name,
            "publishedAt": published,
            "baseModel": "SDXL 1.0",
            "trainedWords": ["mecha armor", f"mk{number} plating"],
            "files": files,
        }

    def remote(name: str) -> dict[str, Any]:
        return {"name": name, "sizeKB": 55000.5, "type": "Model", "primary": True, "hashes": {}}

    local = {
        "name": "mecha-armor-v2.safetensors",
        "sizeKB": round(len(model) / 1024, 3),
        "type": "Model",
        "primary": True,
        "hashes": hashes(model),
        "downloadUrl": "https://civitai.example/api/download/models/606602",
    }
    return {
        "id": 606000,
        "name": "Mecha Armor",
        "description": "<p>Hard-surface armor for robots and knights alike.</p>",
        "type": "LORA",
        "tags": ["mecha", "sci-fi", "armor", "concept art"],
        "creator": {"username": "ironsmith"},
        "nsfwLevel": 1,
        "modelVersions": [
            version(3, "v3", "2025-01-20T09:00:00Z", [remote("mecha-armor-v3.safetensors")]),
            version(2, "v2", "2024-11-02T09:00:00Z", [local]),
            version(1, "v1", "2024-07-15T09:00:00Z", [remote("mecha-armor-v1.safetensors")]),
        ],
        "stats": {"downloadCount": 2300, "favoriteCount": 150, "rating": 4.4},
    }


def neon(model: bytes) -> dict[str, Any]:
    """ComfyUI-Lora-Manager's ``.metadata.json``: its own flat record plus the Civitai version it matched."""
    sha = hashlib.sha256(model).hexdigest()
    return {
        "file_name": "neon-city-nights",
        "model_name": "Neon City Nights",
        "file_path": "C:/ComfyUI/models/loras/sdxl/neon-city-nights.safetensors",
        "size": len(model),
        "modified": 1730000000.0,
        "sha256": sha,
        "base_model": "SDXL 1.0",
        "preview_url": "",
        "preview_nsfw_level": 0,
        "notes": "Pairs well with rainy street prompts.",
        "from_civitai": True,
        "civitai": {
            "id": 707707,
            "modelId": 808808,
            "name": "v1.0",
            "publishedAt": "2024-10-31T18:00:00Z",
            "trainedWords": ["neon city", "night rain"],
            "baseModel": "SDXL 1.0",
            "model": {"name": "Neon City Nights", "type": "LORA", "nsfw": False, "poi": False},
            "creator": {"username": "voltage"},
            "files": [
                {
                    "id": 909909,
                    "name": "neon-city-nights.safetensors",
                    "sizeKB": round(len(model) / 1024, 3),
                    "type": "Model",
                    "primary": True,
                    "hashes": hashes(model),
                    "downloadUrl": "https://civitai.example/api/download/models/707707",
                }
            ],
        },
        "tags": ["cyberpunk", "city", "neon", "night"],
        "modelDescription": "<p>Rain-soaked streets under neon signs.</p>",
        "civitai_deleted": False,
        "favorite": False,
        "exclude": False,
        "db_checked": True,
        "metadata_source": "civitai_api",
        "last_checked_at": 1730000500.0,
        "hash_status": "completed",
        "usage_tips": json.dumps({"strength": 0.65, "clip_strength": 1.0}, separators=(",", ":")),
    }


def lineart(model: bytes) -> dict[str, Any]:
    """Stability Matrix's ``.cm-info.json`` (its ``ConnectedModelInfo``, PascalCase, nulls written out)."""
    h = hashes(model)
    return {
        "ModelId": 180655,
        "ModelName": "Clean LineArt XL",
        "ModelDescription": "<p>A style LoRA for crisp, inked line art.</p>",
        "Nsfw": False,
        "Tags": ["style", "lineart", "sketch"],
        "ModelType": "LORA",
        "VersionId": 204118,
        "VersionName": "v1.1",
        "VersionDescription": "<p>Fixed the washed-out blacks of v1.0.</p>",
        "AuthorUsername": "inkbot",
        "BaseModel": "SDXL 1.0",
        "RemoteFileName": "clean-lineart-xl.safetensors",
        "RemoteFileId": 160020,
        "FileMetadata": {"fp": "fp16", "size": "pruned", "format": "SafeTensor"},
        "ImportedAt": "2024-06-18T21:03:44.5121336+02:00",
        "Hashes": {"SHA256": h["SHA256"], "CRC32": h["CRC32"], "BLAKE3": None},
        "TrainedWords": ["lineart, monochrome, white background", "sketch"],
        "Stats": {"favoriteCount": 0, "commentCount": 41, "downloadCount": 15230, "rating": 4.93},
        "UserTitle": None,
        "ThumbnailImageUrl": None,
        "InferenceDefaults": None,
        "Source": "Civitai",
    }


def pixel_knights() -> dict[str, Any]:
    """A Civitai model JSON left behind after its model file was deleted."""
    return {
        "id": 909000,
        "name": "Pixel Knights",
        "description": "<p>16-bit knights and castles.</p>",
        "type": "LORA",
        "tags": ["pixel art", "retro"],
        "creator": {"username": "bitcrafter"},
        "modelVersions": [
            {
                "id": 909001,
                "name": "v1.0",
                "publishedAt": "2023-12-24T10:00:00Z",
                "baseModel": "SD 1.5",
                "trainedWords": ["pixel knight"],
                "files": [{"name": "pixel-knights.safetensors", "sizeKB": 18000.0, "type": "Model", "primary": True}],
            }
        ],
    }


def diffusers_config() -> dict[str, Any]:
    """A diffusers ``config.json`` that somebody copied into the folder: JSON, but no LoRA metadata."""
    return {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.27.2",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": 768,
        "sample_size": 64,
    }


# ---------------------------------------------------------------- the library


def build() -> dict[str, bytes]:
    """Every file of the library by relative path, as bytes."""
    models = {
        "anime/celestial-anime-portraits": safetensors_bytes(
            "celestial", kohya("celestial-anime-portraits", "sd_v1", {"1girl": 40, "starry sky": 31})
        ),
        "anime/ink-wash-landscapes": safetensors_bytes("ink", kohya("ink_wash_landscapes_v1", "sd_v1")),
        "sdxl/mecha-armor-v2": safetensors_bytes("mecha", kohya("mecha_armor_v2", "sdxl_base_v1-0")),
        "sdxl/neon-city-nights": safetensors_bytes("neon", kohya("neon-city-nights", "sdxl_base_v1-0")),
        "sdxl/clean-lineart-xl": safetensors_bytes("lineart", kohya("lineart_xl_v1.1", "sdxl_base_v1-0")),
        "unsorted/mystery-style": safetensors_bytes(
            "mystery", kohya("mystery_style_v3", "sd_v1", {"oil painting": 52, "impasto": 30, "portrait": 12})
        ),
    }
    files: dict[str, bytes] = {f"{stem}.safetensors": data for stem, data in models.items()}

    def put(path: str, data: Any) -> None:
        files[path] = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()

    put("anime/celestial-anime-portraits.json", celestial(models["anime/celestial-anime-portraits"]))
    files["anime/celestial-anime-portraits.preview.png"] = png_1x1((92, 70, 160))
    put("anime/ink-wash-landscapes.civitai.info", ink_wash_info(models["anime/ink-wash-landscapes"]))
    put("anime/ink-wash-landscapes.json", ink_wash_user())
    put("sdxl/mecha-armor-v2.json", mecha(models["sdxl/mecha-armor-v2"]))
    put("sdxl/neon-city-nights.metadata.json", neon(models["sdxl/neon-city-nights"]))
    put("sdxl/clean-lineart-xl.cm-info.json", lineart(models["sdxl/clean-lineart-xl"]))
    put("unsorted/pixel-knights.json", pixel_knights())
    put("unsorted/config.json", diffusers_config())
    return files


def write(target: Path) -> list[Path]:
    """Replace ``target`` with a fresh copy of the library; returns the files written."""
    if target.exists():
        shutil.rmtree(target)
    written = []
    for rel, data in sorted(build().items()):
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else LIBRARY
    written = write(target)
    print(f"wrote {len(written)} files under {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The sidecar documents of the synthetic library, one builder per dialect (used by genlib.py).

Shapes follow what each tool really writes, because the importer's cost depends on it:
Civitai responses carry long HTML descriptions and image lists with generation prompts,
which is why real ``NAME.json`` files run from 2 KB to 60 KB.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# fmt: off
TAGS = ("anime", "portrait", "fantasy", "style", "character", "concept", "clothing", "photorealistic",
        "landscape", "celestial", "watercolor", "poses", "background", "objects", "sci-fi", "cute", "armor")
PROMPT_WORDS = ("masterpiece", "best quality", "1girl", "solo", "looking at viewer", "detailed background",
                "soft lighting", "cinematic", "depth of field", "smile", "long hair", "outdoors", "night sky",
                "from side", "upper body", "intricate details", "film grain", "bokeh", "wind", "city lights")
DESC_WORDS = ("trained", "on", "a", "small", "curated", "dataset", "works", "best", "with", "weight", "around",
              "0.7", "use", "the", "trigger", "words", "<b>recommended</b>", "sampler", "style", "clean", "lines")
# fmt: on
EPOCH = datetime(2023, 3, 1, tzinfo=UTC)


@dataclass
class ModelFacts:
    """What every sidecar of one model agrees on."""

    index: int
    title: str
    stem: str
    folder: Path
    base_model: str
    sd_version: str
    creator: str
    words: list[str]
    tags: list[str]
    body: bytes
    sha256: str


def iso(dt: datetime) -> str:
    """Civitai's timestamp format, millisecond precision with a Z."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class DocFactory:
    """Builds sidecar documents from a model's facts, drawing randomness from the shared stream."""

    tags = TAGS

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd

    def dump(self, doc: Any) -> bytes:
        """Serialise the way tools do: compact or indented, ASCII-escaped or not."""
        rnd = self.rnd
        return json.dumps(doc, ensure_ascii=rnd.random() < 0.5, indent=rnd.choice((None, None, 2, 4))).encode()

    def sidecars(self, kind: str, f: ModelFacts) -> list[tuple[str, Any]]:
        """(file name, document) pairs for one model written by the tool ``kind`` stands for."""
        if kind == "civitai_model":
            return [(f"{f.stem}.json", self.civitai_model(f))]
        if kind == "civitai_version":
            return [(f"{f.stem}.civitai.info", self.civitai_info(f))]
        if kind == "a1111_pair":
            return [(f"{f.stem}.civitai.info", self.civitai_info(f)), (f"{f.stem}.json", self.a1111(f, paired=True))]
        if kind == "lora_manager":
            return [(f"{f.stem}.metadata.json", self.lora_manager(f))]
        if kind == "stability_matrix":
            return [(f"{f.stem}.cm-info.json", self.stability_matrix(f))]
        return [(f"{f.stem}.json", self.a1111(f, paired=False))]

    # -- shared pieces -------------------------------------------------------------------------

    def description(self) -> str:
        words = self.rnd.choices(DESC_WORDS, k=self.rnd.randint(5, 600))
        return "<p>" + " ".join(words) + "</p>"

    def stats(self) -> dict[str, Any]:
        r = self.rnd
        return {
            "downloadCount": r.randint(0, 90_000),
            "favoriteCount": r.randint(0, 5000),
            "thumbsUpCount": r.randint(0, 9000),
            "commentCount": r.randint(0, 300),
            "ratingCount": r.randint(0, 100),
            "rating": round(r.uniform(3, 5), 2),
        }

    def images(self, f: ModelFacts, version_id: int) -> list[dict[str, Any]]:
        """0-12 gallery images, each with generation ``meta`` and a long prompt (most of a file's bulk)."""
        r = self.rnd
        out = []
        for k in range(r.choice((0, 0, 1, 2, 3, 4, 6, 8, 12))):
            prompt = ", ".join([*f.words, *r.choices(PROMPT_WORDS, k=r.randint(15, 90))])
            out.append(
                {
                    "url": f"https://image.civitai.example/{version_id}/{k}/width=832/{r.getrandbits(40)}.jpeg",
                    "nsfwLevel": r.choice((1, 1, 1, 2, 4)),
                    "width": 832,
                    "height": 1216,
                    "type": "image",
                    "hash": "U" + "".join(r.choices("0123456789ABCDEFGHabcdefgh~$%", k=27)),
                    "meta": {
                        "seed": r.getrandbits(48),
                        "steps": r.choice((20, 25, 30)),
                        "sampler": "DPM++ 2M Karras",
                        "cfgScale": r.choice((3.5, 5, 7)),
                        "Size": "832x1216",
                        "prompt": prompt,
                        "negativePrompt": "lowres, bad anatomy, bad hands, " * r.randint(1, 8),
                        "resources": [{"name": f.stem, "type": "lora", "weight": 0.8}],
                    },
                }
            )
        return out

    def files(self, f: ModelFacts, version_id: int, file_name: str, sha: str) -> list[dict[str, Any]]:
        return [
            {
                "id": version_id + 7,
                "name": file_name,
                "sizeKB": round(len(f.body) / 1024, 4),
                "type": "Model",
                "primary": True,
                "metadata": {"format": "SafeTensor", "size": None, "fp": "fp16"},
                "hashes": {
                    "AutoV2": sha[:10].upper(),
                    "SHA256": sha.upper(),
                    "CRC32": f"{version_id * 7919:08X}",
                    "BLAKE3": hashlib.blake2s(sha.encode()).hexdigest().upper(),
                },
                "downloadUrl": f"https://civitai.example/api/download/models/{version_id}",
            }
        ]

    def versions(self, f: ModelFacts) -> tuple[list[dict[str, Any]], int]:
        """1-3 Civitai version objects, newest first, and the index of the one on disk."""
        r = self.rnd
        n = r.choice((1, 1, 1, 2, 3))
        local = r.randrange(n)
        published = EPOCH + timedelta(minutes=r.randint(0, 900_000), milliseconds=r.randint(0, 999))
        out = []
        for j in range(n):
            vid = 200_000 + f.index * 4 + j
            is_local = j == local
            name = f"{f.stem}.safetensors" if is_local else f"{f.stem}-v{n - j}.safetensors"
            sha = f.sha256 if is_local else hashlib.sha256(name.encode()).hexdigest()
            out.append(
                {
                    "id": vid,
                    "modelId": 10_000 + f.index,
                    "name": f"v{n - j}.0",
                    "createdAt": iso(published - timedelta(hours=1)),
                    "publishedAt": iso(published),
                    "updatedAt": iso(published),
                    "baseModel": f.base_model,
                    "baseModelType": "Standard",
                    "trainedWords": f.words if is_local else [f"old{j}"],
                    "description": "<p>changes</p>" if r.random() < 0.5 else None,
                    "files": self.files(f, vid, name, sha),
                    "images": self.images(f, vid),
                    "downloadUrl": f"https://civitai.example/api/download/models/{vid}",
                }
            )
        return out, local

    # -- one builder per dialect ---------------------------------------------------------------

    def civitai_model(self, f: ModelFacts) -> dict[str, Any]:
        """Civitai ``/api/v1/models/{id}`` response, sometimes with A1111's keys added by the webui."""
        r = self.rnd
        versions, _ = self.versions(f)
        doc: dict[str, Any] = {
            "id": 10_000 + f.index,
            "name": f.title,
            "description": self.description(),
            "type": "LORA",
            "poi": False,
            "nsfw": False,
            "nsfwLevel": r.choice((1, 1, 2)),
            "allowNoCredit": True,
            "tags": f.tags,
            "creator": {"username": f.creator, "image": None},
            "stats": self.stats(),
            "modelVersions": versions,
            "supportsGeneration": r.random() < 0.5,
        }
        if r.random() < 0.3:
            doc["sd version"] = f.sd_version
            doc["activation text"] = ", ".join(f.words)
        return doc

    def civitai_info(self, f: ModelFacts) -> dict[str, Any]:
        """Civitai Helper's ``/api/v1/model-versions/{id}`` response: name is the version's."""
        versions, local = self.versions(f)
        doc = versions[local]
        doc["stats"] = self.stats()
        doc["model"] = {"name": f.title, "type": "LORA", "nsfw": False, "poi": False}
        return doc

    def a1111(self, f: ModelFacts, paired: bool) -> dict[str, Any]:
        """A1111 extra-networks user metadata."""
        r = self.rnd
        return {
            "description": f"my notes on {f.title}" if paired else "",
            "sd version": f.sd_version,
            "activation text": ", ".join(f.words),
            "preferred weight": r.choice((0.6, 0.7, 0.8, 1.0)),
            "negative text": r.choice(("", "lowres, blurry")),
            "notes": r.choice(("", "from a friend")),
        }

    def lora_manager(self, f: ModelFacts) -> dict[str, Any]:
        """ComfyUI-Lora-Manager's ``NAME.metadata.json``; ``usage_tips`` is JSON inside a string."""
        r = self.rnd
        versions, local = self.versions(f)
        civ = versions[local]
        if r.random() < 0.5:
            civ.pop("images")
        desc = self.description()
        civ["model"] = {"name": f.title, "type": "LORA", "nsfw": False, "tags": f.tags, "description": desc}
        civ["creator"] = {"username": f.creator}
        path = f.folder / f"{f.stem}.safetensors"
        return {
            "file_name": f.stem,
            "model_name": f.title,
            "file_path": path.as_posix(),
            "size": len(f.body),
            "modified": (EPOCH + timedelta(days=f.index % 700)).timestamp(),
            "sha256": f.sha256,
            "base_model": f.base_model,
            "preview_url": "",
            "preview_nsfw_level": 0,
            "notes": "",
            "from_civitai": True,
            "civitai": civ,
            "tags": f.tags,
            "modelDescription": desc,
            "civitai_deleted": False,
            "favorite": r.random() < 0.1,
            "exclude": False,
            "db_checked": False,
            "metadata_source": "civitai_api",
            "last_checked_at": 0,
            "usage_tips": json.dumps({"strength": r.choice((0.6, 0.8, 0.9, 1.0))}),
        }

    def stability_matrix(self, f: ModelFacts) -> dict[str, Any]:
        """Stability Matrix ``NAME.cm-info.json``: PascalCase, one version flattened in."""
        r = self.rnd
        versions, local = self.versions(f)
        v, stats = versions[local], self.stats()
        return {
            "ModelId": 10_000 + f.index,
            "VersionId": v["id"],
            "ModelName": f.title,
            "ModelDescription": self.description(),
            "Nsfw": False,
            "Tags": f.tags,
            "ModelType": "LORA",
            "VersionName": v["name"],
            "VersionDescription": None,
            "BaseModel": f.base_model,
            "FileMetadata": {"Format": "SafeTensor", "Size": None, "Fp": "fp16"},
            "ImportedAt": iso(EPOCH + timedelta(days=r.randint(0, 700))),
            "Hashes": {
                "SHA256": f.sha256.upper(),
                "BLAKE3": v["files"][0]["hashes"]["BLAKE3"],
                "CRC32": v["files"][0]["hashes"]["CRC32"],
            },
            "TrainedWords": f.words,
            "Stats": {
                "DownloadCount": stats["downloadCount"],
                "FavoriteCount": stats["favoriteCount"],
                "Rating": stats["rating"],
            },
            "ThumbnailImageUrl": None,
        }

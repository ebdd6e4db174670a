"""Civitai's model response (``/api/v1/models/{id}``) saved as ``NAME.json``: the design's format.

It lists every version of the model; the one that describes *this* file is chosen by the
file name its ``files[]`` give, then by a SHA256 another sidecar claims, then by a version id
another sidecar names (civitai-browser-plus renames downloads and writes only the ids into its
``NAME.json``), else the first.
A1111's user keys (``activation text``, ``sd version``, ``preferred weight``, ``notes``)
are often written into the same file; they count as the user's own words.
"""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing import a1111
from lora_manager.parsing.base import (
    ParseContext,
    as_bool,
    as_datetime,
    as_dict,
    as_float,
    as_id,
    as_int,
    as_str,
    as_str_list,
    hashes_from,
    pick_unmapped,
    safe_file_name,
)
from lora_manager.parsing.base_models import base_model_fields

_MAPPED = frozenset(
    {
        "id",
        "name",
        "description",
        "tags",
        "creator",
        "modelVersions",
        "stats",
        "supportsGeneration",
        "nsfwLevel",
        "availability",
    }
    | a1111.USER_KEYS
)
# ``nsfw`` (the older responses' only NSFW flag: it gives ``nsfw_level`` when ``nsfwLevel`` is
# absent) and the version's ``description`` (its changelog) have no column of their own: they
# are not listed above or below, so ``extra`` keeps them.
_VERSION_MAPPED = frozenset(
    {
        "id",
        "modelId",
        "name",
        "publishedAt",
        "trainedWords",
        "baseModel",
        "files",
        "images",
        "downloadUrl",
    }
)


# Civitai's file types that hold the model itself (the others: "Training Data", "VAE",
# "Config", "Negative", "Archive"...); an entry without a type is taken for a model.
_MODEL_FILE_TYPES = (None, "Model", "Pruned Model")


class CivitaiModel:
    """The Civitai model dialect."""

    name = "civitai_model"

    def detect(self, data: Any, file_name: str) -> bool:
        return isinstance(data, dict) and isinstance(data.get("modelVersions"), list)

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        versions = [v for v in data.get("modelVersions") or [] if isinstance(v, dict)]
        version = choose_version(versions, ctx)
        file = primary_file(as_list(version.get("files")), ctx.model_file_name, ctx.known_sha256)
        # The model's own id first: a version object's modelId is absent in older responses.
        model_id = as_id(data.get("id")) or as_id(version.get("modelId"))
        info = SidecarInfo(
            dialect=self.name,
            path=ctx.path,
            name=as_str(data.get("name")),
            version=as_str(version.get("name")) or as_str(data.get("version")),
            description=as_str(data.get("description")),
            author_username=as_str(as_dict(data.get("creator")).get("username")),
            tags=as_str_list(data.get("tags")),
            **{**version_fields(version, file), "civitai_model_id": model_id},
            **listing_fields(data, data.get("nsfw")),
            extra={
                **pick_unmapped(data, _MAPPED),
                "version": pick_unmapped(version, _VERSION_MAPPED),
                "versions": [as_str(v.get("name")) for v in versions],
            },
        )
        # The A1111 keys in the same file are the user's words and outrank Civitai's.
        user = a1111.user_values(data)
        return info.model_copy(update=user) if user else info


def as_list(value: Any) -> list[dict[str, Any]]:
    """The dict items of a JSON array (anything else is dropped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def choose_version(versions: list[dict[str, Any]], ctx: ParseContext) -> dict[str, Any]:
    """The version whose files name the local model file, else whose SHA256 is known, else whose
    id another sidecar names, else the first."""
    if not versions:
        return {}
    if ctx.model_file_name:
        local = ctx.model_file_name.lower()
        for version in versions:
            if any(str(f.get("name", "")).lower() == local for f in as_list(version.get("files"))):
                return version
    if ctx.known_sha256:
        for version in versions:
            for f in as_list(version.get("files")):
                if hashes_from(f.get("hashes")).get("sha256") in ctx.known_sha256:
                    return version
    if ctx.known_version_ids:
        for version in versions:
            if as_id(version.get("id")) in ctx.known_version_ids:
                return version
    return versions[0]


def primary_file(
    files: list[dict[str, Any]], model_file_name: str | None, known_sha256: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The file entry that is our model file.

    By name first, then by a SHA256 another sidecar claims (a renamed file of a version with
    fp16 and fp32 variants), then ``primary``, else the largest *model* file: Civitai types
    pruned variants ``"Pruned Model"``, and a training-data zip, often the largest file of a
    version, must never stand for the model.
    """
    if not files:
        return {}
    if model_file_name:
        local = model_file_name.lower()
        for f in files:
            if str(f.get("name", "")).lower() == local:
                return f
    if known_sha256:
        for f in files:
            if hashes_from(f.get("hashes")).get("sha256") in known_sha256:
                return f
    for f in files:
        if f.get("primary") is True:
            return f
    models = [f for f in files if f.get("type") in _MODEL_FILE_TYPES] or files
    return max(models, key=lambda f: as_float(f.get("sizeKB")) or 0.0)


# The keys of a version object that :func:`version_fields` and :func:`listing_fields` map, plus
# those no column keeps (images, the model and creator objects, read by each dialect itself).
VERSION_OBJECT_KEYS = frozenset(
    {
        "id",
        "modelId",
        "name",
        "description",
        "publishedAt",
        "trainedWords",
        "baseModel",
        "files",
        "images",
        "downloadUrl",
        "model",
        "creator",
        "nsfwLevel",
        "supportsGeneration",
        "availability",
        "stats",
    }
)


def version_fields(version: dict[str, Any], file: dict[str, Any]) -> dict[str, Any]:
    """The SidecarInfo fields of a Civitai model-version object and its chosen file.

    Civitai Helper saves a version object whole, the model response lists them, and
    Lora-Manager embeds one: all three read it through here.
    """
    return {
        # Versions saved before Civitai had ``publishedAt`` (2023) carry only ``createdAt``.
        "published_at": as_datetime(version.get("publishedAt")) or as_datetime(version.get("createdAt")),
        "trained_words": as_str_list(version.get("trainedWords"), split_commas=True),
        **base_model_fields(version.get("baseModel"), by_civitai=True),
        "civitai_model_id": as_id(version.get("modelId")),
        "civitai_version_id": as_id(version.get("id")),
        "primary_file_name": safe_file_name(file.get("name")),
        "primary_file_size_kb": as_float(file.get("sizeKB")),
        "primary_file_download_url": as_str(file.get("downloadUrl")) or as_str(version.get("downloadUrl")),
        "hashes": hashes_from(file.get("hashes")),
    }


# Civitai's levels are PG 1, PG-13 2, R 4, X 8, XXX 16. Responses from before them (2024) and
# Stability Matrix say only ``nsfw: true``: R, the first level Civitai counts as mature.
NSFW_FLAG_LEVEL = 4


def nsfw_level(level: Any, flag: Any) -> int | None:
    """Civitai's ``nsfwLevel``, else the level an older ``nsfw`` flag stands for (None: not said)."""
    return as_int(level) or (NSFW_FLAG_LEVEL if as_bool(flag) else None)


def listing_fields(obj: dict[str, Any], nsfw_flag: Any = None) -> dict[str, Any]:
    """Civitai's listing fields (NSFW level, on-site generation, availability, stats) of ``obj``.

    ``nsfw_flag`` is the older boolean, where the caller's object keeps it (a version's ``model.nsfw``).
    """
    return {
        "nsfw_level": nsfw_level(obj.get("nsfwLevel"), nsfw_flag),
        "supports_generation": as_bool(obj.get("supportsGeneration")),
        "visibility": as_str(obj.get("availability")),
        "stats": as_dict(obj.get("stats")) or None,
    }

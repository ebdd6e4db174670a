"""Stability Matrix's ``NAME.cm-info.json`` (its ``ConnectedModelInfo``).

Stability Matrix serialises its C# class with default options, so top-level keys are
PascalCase and nulls are written out (``"BLAKE3": null``). Nested objects are Civitai's
own types, whose properties carry JSON names: ``Stats`` is camelCase
(``downloadCount``, ``rating``, ``favoriteCount``...) and so is ``FileMetadata``
(``fp``, ``size``, ``format``). ``Hashes`` holds only ``SHA256``, ``CRC32`` and ``BLAKE3``.

``ImportedAt`` is when Stability Matrix imported the file, never a publish date; models
from OpenModelDB (upscalers) have no ``ModelId`` and ``Source`` says so.
"""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import (
    ParseContext,
    as_dict,
    as_id,
    as_str,
    as_str_list,
    hashes_from,
    pick_unmapped,
    safe_file_name,
)
from lora_manager.parsing.base_models import base_model_fields
from lora_manager.parsing.civitai_model import nsfw_level
from lora_manager.parsing.civitai_version import has_suffix

SUFFIX = ".cm-info.json"
_SIGNATURE = frozenset(
    {
        "ModelId",
        "ModelName",
        "ModelDescription",
        "Nsfw",
        "Tags",
        "ModelType",
        "VersionId",
        "VersionName",
        "VersionDescription",
        "AuthorUsername",
        "BaseModel",
        "RemoteFileName",
        "RemoteFileId",
        "FileMetadata",
        "ImportedAt",
        "Hashes",
        "TrainedWords",
        "Stats",
        "UserTitle",
        "ThumbnailImageUrl",
        "InferenceDefaults",
        "Source",
    }
)
_NAME_KEYS = frozenset({"ModelName", "VersionName", "ModelId", "VersionId"})
_MIN_SIGNATURE = 3
_MAPPED = frozenset(
    {
        "ModelId",
        "ModelName",
        "ModelDescription",
        "Tags",
        "VersionId",
        "VersionName",
        "VersionDescription",
        "AuthorUsername",
        "BaseModel",
        "RemoteFileName",
        "Hashes",
        "TrainedWords",
        "Stats",
    }
)


def camel_keys(stats: dict[str, Any]) -> dict[str, Any]:
    """Stats with camelCase keys, as Civitai writes them (older files may say ``DownloadCount``)."""
    return {str(k)[:1].lower() + str(k)[1:]: v for k, v in stats.items()}


class StabilityMatrix:
    """The Stability Matrix connected-model dialect."""

    name = "stability_matrix"

    def detect(self, data: Any, file_name: str) -> bool:
        """PascalCase ``ConnectedModelInfo`` keys: a name or id key plus a few others."""
        if not isinstance(data, dict):
            return False
        found = len(_SIGNATURE.intersection(data))
        if has_suffix(file_name, SUFFIX) and found >= 1:
            return True
        return bool(_NAME_KEYS.intersection(data)) and found >= _MIN_SIGNATURE

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        """Map the connected-model record; Civitai ids only when Civitai is the source."""
        # ``Source`` is an enum; only a name other than Civitai's (OpenModelDb) rules the ids out.
        source = as_str(data.get("Source"))
        from_civitai = source is None or not source.isalpha() or source.lower() == "civitai"
        stats = as_dict(data.get("Stats"))
        model_description = as_str(data.get("ModelDescription"))
        version_description = as_str(data.get("VersionDescription"))
        extra = pick_unmapped(data, _MAPPED)
        if model_description and version_description:
            extra["VersionDescription"] = version_description
        return SidecarInfo(
            dialect=self.name,
            path=ctx.path,
            name=as_str(data.get("ModelName")),
            version=as_str(data.get("VersionName")),
            description=model_description or version_description,
            author_username=as_str(data.get("AuthorUsername")),
            tags=as_str_list(data.get("Tags")),
            trained_words=as_str_list(data.get("TrainedWords"), split_commas=True),
            **base_model_fields(data.get("BaseModel"), by_civitai=True),
            stats=camel_keys(stats) or None,
            nsfw_level=nsfw_level(None, data.get("Nsfw")),
            civitai_model_id=as_id(data.get("ModelId")) if from_civitai else None,
            civitai_version_id=as_id(data.get("VersionId")) if from_civitai else None,
            primary_file_name=safe_file_name(data.get("RemoteFileName")),
            hashes=hashes_from(data.get("Hashes")),
            extra=extra,
        )

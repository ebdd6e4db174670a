"""Civitai's model-version response saved as ``NAME.civitai.info`` (Civitai Helper and friends).

This is ``/api/v1/model-versions/{id}`` or ``/by-hash/{sha256}``: one version, so ``name``
is the *version's* name and the model's name sits in ``model.name``. What the response
carries varies with when it was fetched and by whom:

* ``model`` holds ``name``, ``type``, ``nsfw``, ``poi``; Civitai Helper's maintained fork
  also copies the parent model's ``description`` and ``tags`` into it.
* newer responses carry a top-level ``creator``, ``stats``, ``nsfwLevel`` and ``air``.
* Civitai Helper writes ``{}`` when the hash is unknown to Civitai; some tools save the
  API's ``{"error": "Model not found"}`` instead. Both mean "not on Civitai".
* Civitai Helper's maintained fork writes a *skeleton* instead (``"skeleton_file": true``):
  empty ids, ``baseModel`` ``"Unknown"``, ``model.name`` set to the file name *with* its
  extension, and the SHA256 it computed. Its hashes and trained words (from the header's
  tag frequencies) are worth keeping; its name is no model name.
* saved as ``NAME.json`` (civitai-browser-plus), the webui's card editor rewrites the file with
  A1111's user keys added (``activation text``, ``preferred weight``, ``notes``...): they are
  the user's words, read as in a Civitai model response.
"""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing import a1111
from lora_manager.parsing.base import (
    ParseContext,
    as_dict,
    as_id,
    as_str,
    as_str_list,
    pick_unmapped,
)
from lora_manager.parsing.civitai_model import (
    VERSION_OBJECT_KEYS,
    as_list,
    listing_fields,
    primary_file,
    version_fields,
)

SUFFIX = ".civitai.info"
_MAPPED = VERSION_OBJECT_KEYS | a1111.USER_KEYS
_MODEL_MAPPED = frozenset({"name", "description", "tags", "creator"})
# What a "not on Civitai" file may say besides nothing at all.
_NOT_FOUND_KEYS = frozenset({"error", "message"})


def has_suffix(file_name: str, suffix: str) -> bool:
    """Whether the file name ends with ``suffix``, ignoring case (Windows users rename freely)."""
    return file_name.lower().endswith(suffix)


class CivitaiVersion:
    """The Civitai model-version dialect."""

    name = "civitai_version"

    def detect(self, data: Any, file_name: str) -> bool:
        """A version response by shape, or any object in a file named ``*.civitai.info``."""
        if not isinstance(data, dict):
            return False
        if has_suffix(file_name, SUFFIX):
            return True
        if "modelId" in data and ("files" in data or "model" in data):
            return True
        return isinstance(data.get("model"), dict) and isinstance(data.get("name"), str)

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        """Map one version; ``{}`` (or a bare API error) becomes ``empty=True``."""
        if not data or (set(data) <= _NOT_FOUND_KEYS and "id" not in data):
            return SidecarInfo(dialect=self.name, path=ctx.path, empty=True, extra=dict(data))
        model = as_dict(data.get("model"))
        file = primary_file(as_list(data.get("files")), ctx.model_file_name, ctx.known_sha256)
        creator = as_dict(data.get("creator")) or as_dict(model.get("creator"))
        extra = pick_unmapped(data, _MAPPED)
        model_extra = pick_unmapped(model, _MODEL_MAPPED)
        if model_extra:
            extra["model"] = model_extra
        model_description = as_str(model.get("description"))
        version_description = as_str(data.get("description"))
        if model_description and version_description:
            extra["version_description"] = version_description
        info = SidecarInfo(
            dialect=self.name,
            path=ctx.path,
            # A skeleton's model name is the file name: the record falls back to the stem instead.
            name=None if is_skeleton(data) else as_str(model.get("name")),
            version=as_str(data.get("name")),
            # The column is the model's description; a version response only has one when a
            # helper copied it in, else the version's own notes are the best there is.
            description=model_description or version_description,
            author_username=as_str(creator.get("username")),
            tags=as_str_list(model.get("tags")),
            **version_fields(data, file),
            **listing_fields(data, model.get("nsfw")),
            extra=extra,
        )
        # The A1111 keys in the same file are the user's words and outrank Civitai's; its
        # ``description`` is the version's own (Civitai's), as in a model response.
        user = a1111.user_values(data)
        return info.model_copy(update=user) if user else info


def is_skeleton(data: dict[str, Any]) -> bool:
    """Whether Civitai Helper wrote ``data`` from local facts because Civitai does not know the file.

    Its forks flag a skeleton; older ones did not, but their skeleton is still plain to see:
    no ids, and a "model name" that is one of its own file names.
    """
    helper = as_dict(as_dict(data.get("extensions")).get("sd_civitai_helper"))
    if data.get("skeleton_file") is True or helper.get("skeleton_file") is True:
        return True
    if as_id(data.get("id")) is not None or as_id(data.get("modelId")) is not None:
        return False
    model_name = as_str(as_dict(data.get("model")).get("name"))
    files = {as_str(f.get("name")) for f in as_list(data.get("files")) if isinstance(f, dict)}
    return model_name is not None and model_name.lower() in {n.lower() for n in files if n}

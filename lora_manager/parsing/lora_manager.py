"""ComfyUI-Lora-Manager's ``NAME.metadata.json``.

Lora-Manager keeps its own flat record (``model_name``, ``file_name`` without extension,
``file_path``, ``size``, ``sha256`` it computed itself, a ``base_model``) and
stores the Civitai model-version response it matched under ``civitai``. Things that are
easy to get wrong:

* ``modified`` is when Lora-Manager added the file, not the file's mtime: it goes to extra.
* ``usage_tips`` is a JSON *string* (``"{\\"strength\\": 0.6, \\"clip_strength\\": 0.5}"``,
  also ``strength_min``/``strength_max``/``clip_skip``); ``"{}"`` when unset. Some files
  hold junk or an already-decoded object.
* ``civitai`` may be ``{}`` or hold only ``trainedWords`` for models not from Civitai.
* ``preview_url`` is a local path despite its name; ``file_path`` is an absolute path on
  the machine that wrote the file. Neither is trusted as a path: both stay in extra.
* ``base_model`` is Civitai's name when Lora-Manager had one; older releases wrote short names
  ("SD1.5", "SDXL", "IL"), and for files Civitai does not know it holds the header's raw string
  ("sd_v1", issue #85). All become Civitai's names (see ``base_models``).
* newer releases write a top-level ``autov3`` (12 hex digits, ``null`` once checked and
  unavailable), taken from the header or from the Civitai file whose SHA256 matches.
* the embedded version's ``files[]`` may hold no entry with Lora-Manager's own SHA256 (the
  version's other variant was matched by name or marked primary): that entry's hashes, name
  and size are then not taken, as they describe another file.
"""

from __future__ import annotations

import json
from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import (
    ParseContext,
    as_dict,
    as_float,
    as_hash,
    as_str,
    as_str_list,
    hashes_from,
    pick_unmapped,
)
from lora_manager.parsing.base_models import base_model_fields
from lora_manager.parsing.civitai_model import (
    VERSION_OBJECT_KEYS,
    as_list,
    listing_fields,
    primary_file,
    version_fields,
)
from lora_manager.parsing.civitai_version import has_suffix

SUFFIX = ".metadata.json"
# Keys only Lora-Manager writes; detection needs a few of them together.
_SIGNATURE = frozenset(
    {
        "model_name",
        "file_name",
        "file_path",
        "sha256",
        "base_model",
        "preview_url",
        "preview_nsfw_level",
        "notes",
        "from_civitai",
        "civitai",
        "usage_tips",
        "modelDescription",
        "civitai_deleted",
        "favorite",
        "exclude",
        "db_checked",
        "last_checked_at",
        "metadata_source",
        "hash_status",
        "skip_metadata_refresh",
    }
)
_MIN_SIGNATURE = 3
_MAPPED = frozenset(
    {"model_name", "sha256", "autov3", "base_model", "notes", "civitai", "tags", "modelDescription", "usage_tips"}
)
_CIVITAI_MAPPED = VERSION_OBJECT_KEYS | {"customImages"}  # example images are no metadata and can be huge
_MODEL_MAPPED = frozenset({"name", "description", "tags"})
_MAX_TIPS_CHARS = 100_000  # usage tips are a few keys; anything longer is junk we do not decode


def usage_tips(value: Any) -> dict[str, Any] | None:
    """The usage tips as an object: decoded from their JSON string, or as given; None if unusable."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or len(value) > _MAX_TIPS_CHARS:
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def own_base_model(own: Any, civitai: Any) -> dict[str, Any]:
    """The base model fields from Lora-Manager's own ``base_model``, else its Civitai ``baseModel``.

    Its own value wins when it names a base model we recognise. Older releases wrote short names
    ("SD1.5", "SDXL", "IL") and, for files Civitai does not know, the header's raw string
    ("sd_v1", "sdxl_base_v1-0"): those become Civitai's names. A value recognised as none gives
    way to the embedded Civitai version's base model; with none there, it is kept, weak.
    """
    mine = base_model_fields(own, by_civitai=False)
    if mine["base_model"] is not None and not mine["base_model_weak"]:
        return mine
    theirs = base_model_fields(civitai, by_civitai=True)
    if theirs["base_model"] is not None and (mine["base_model"] is None or not theirs["base_model_weak"]):
        return theirs
    return mine


class LoraManager:
    """The ComfyUI-Lora-Manager dialect."""

    name = "lora_manager"

    def detect(self, data: Any, file_name: str) -> bool:
        """Lora-Manager's snake_case record: a name key plus a few of its own keys."""
        if not isinstance(data, dict):
            return False
        found = len(_SIGNATURE.intersection(data))
        if has_suffix(file_name, SUFFIX) and found >= 1:
            return True
        return ("model_name" in data or "file_name" in data) and found >= _MIN_SIGNATURE

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        """Map the flat record, then fill gaps from the embedded Civitai version."""
        civitai = as_dict(data.get("civitai"))
        model = as_dict(civitai.get("model"))
        creator = as_dict(civitai.get("creator")) or as_dict(model.get("creator"))
        own_sha = as_hash(data.get("sha256"))
        claims = ctx.known_sha256 | {own_sha} if own_sha else ctx.known_sha256
        file = primary_file(as_list(civitai.get("files")), ctx.model_file_name, claims)
        hashes = hashes_from(file.get("hashes"))
        if own_sha and hashes.get("sha256") not in (None, own_sha):
            # Civitai's entry describes another file of the version (the fp32 variant of this
            # fp16 file, say): none of its hashes, name or size is this file's.
            file, hashes = {}, {}
        tips = usage_tips(data.get("usage_tips"))
        weight = as_float(as_dict(tips).get("strength"))
        notes = as_str(data.get("notes"))
        user_fields = {name for name, value in (("weight", weight), ("notes", notes)) if value}

        if own_sha:  # Lora-Manager hashed the file itself; that beats what Civitai lists
            hashes["sha256"] = own_sha
        own_autov3 = as_hash(data.get("autov3"), (12,))
        if own_autov3:  # matched to this very file by Lora-Manager, so it beats the files[] pick too
            hashes["autov3"] = own_autov3
        base_model = own_base_model(data.get("base_model"), civitai.get("baseModel"))

        extra = pick_unmapped(data, _MAPPED)
        civitai_extra = pick_unmapped(civitai, _CIVITAI_MAPPED)
        model_extra = pick_unmapped(model, _MODEL_MAPPED)
        if model_extra:
            civitai_extra["model"] = model_extra
        if civitai_extra:
            extra["civitai"] = civitai_extra
        if tips is not None:
            other_tips = {k: v for k, v in tips.items() if k != "strength"}
            if other_tips:
                extra["usage_tips"] = other_tips
        elif as_str(data.get("usage_tips")):
            extra["usage_tips"] = data["usage_tips"]  # junk kept verbatim, for `lora show`

        return SidecarInfo(
            dialect=self.name,
            path=ctx.path,
            name=as_str(data.get("model_name")) or as_str(model.get("name")),
            version=as_str(civitai.get("name")),
            description=as_str(data.get("modelDescription")) or as_str(model.get("description")),
            author_username=as_str(creator.get("username")) or as_str(creator.get("name")),
            # Lora-Manager copies the model's tags and lets the user edit them; an empty list
            # there is as likely "never filled" as "cleared", so Civitai's tags fill it, and
            # with neither it says nothing (None), leaving other sidecars' tags to the merge.
            tags=as_str_list(data.get("tags")) or as_str_list(model.get("tags")) or None,
            weight=weight or None,  # a strength of 0 would disable the LoRA: it means "not set"
            notes=notes,
            **{**version_fields(civitai, file), **base_model, "hashes": hashes},
            **listing_fields(civitai, model.get("nsfw")),
            user_fields=frozenset(user_fields),
            extra=extra,
        )

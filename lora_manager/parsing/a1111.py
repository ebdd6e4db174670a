"""AUTOMATIC1111's extra-networks user metadata, ``NAME.json``.

The webui's card editor writes six keys (``description``, ``sd version``, ``activation
text``, ``preferred weight``, ``negative text``, ``notes``); they are the user's own words
and outrank anything Civitai says. Extensions add to the same file:

* civitai-browser-plus writes ``modelId``, ``modelVersionId`` (the string ``"Model not
  found"`` after a 404, or ``""``) and ``sha256`` (uppercase, or lowercase in older
  releases); a file may hold *only* those keys, or only ``sha256``.
* Civitai Helper writes an ``extensions`` block with its own version, and ``unpackList``
  appears in some browser-plus files.

Detection is by key set, because ``NAME.json`` is also what Civitai model responses,
diffusers configs and ComfyUI workflows are saved as.
"""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext, as_float, as_hash, as_int, as_str, pick_unmapped
from lora_manager.parsing.base_models import base_model_fields

USER_KEYS = frozenset({"description", "sd version", "activation text", "preferred weight", "negative text", "notes"})
# Keys that civitai-browser-plus adds to the same file (its forks add the model page's URL,
# which has no column: it stays in ``extra``).
_BROWSER_MAPPED = frozenset({"modelId", "modelVersionId", "sha256"})
BROWSER_KEYS = _BROWSER_MAPPED | {"modelPageURL"}
# Keys other writers of this file are known to add; they never count against detection.
TOOL_KEYS = frozenset({"extensions", "unpackList"})
_KNOWN = USER_KEYS | BROWSER_KEYS | TOOL_KEYS
# How many foreign keys a file may carry and still be A1111's, when it has enough of its own
# (the card editor's or civitai-browser-plus's: a fork's ``activation text groups`` beside
# ``activation text`` and the browser's ids is still this file).
_MAX_UNKNOWN = 3
_MIN_OWN_FOR_UNKNOWN = 2
# The webui's "sd version" dropdown defaults to this; it means the user chose nothing.
_UNSET_SD_VERSION = frozenset({"unknown", ""})
# The webuis' own "sd version" choices (their ``SdVersion`` enums: AUTOMATIC1111's, Forge's
# ``Flux``, SD.Next's ``F1``, ``SC``, ``HV``, ``CHROMA``): a family, less than the header says.
# Anything else names a base model: civitai-browser-plus's forks write Civitai's own there
# ("Pony", "Illustrious"), which the header cannot tell from plain SDXL.
_FAMILIES = frozenset({"unknown", "other", "sd1", "sd2", "sd3", "sdxl", "flux", "f1", "sc", "hv", "chroma"})


def user_values(data: dict[str, Any], with_description: bool = False) -> dict[str, Any]:
    """The user-written A1111 values of ``data`` as SidecarInfo fields, with ``user_fields`` set.

    ``description`` is only read with ``with_description``: inside a Civitai model response
    the same key is Civitai's model description, not the user's.
    """
    values: dict[str, Any] = {}
    text_fields = [("activation text", "activation_text"), ("notes", "notes"), ("negative text", "negative_text")]
    if with_description:
        text_fields.append(("description", "description"))
    for key, field_name in text_fields:
        text = as_str(data.get(key))
        if text:
            values[field_name] = text
    weight = as_float(data.get("preferred weight"))
    if weight:  # 0 is the webui's "use the default multiplier", not a weight of zero
        values["weight"] = weight
    if values:
        values["user_fields"] = frozenset(values)
    sd_version = as_str(data.get("sd version"))
    if sd_version and sd_version.lower() not in _UNSET_SD_VERSION:
        values["sd_version"] = sd_version
    return values


def _civitai_id(value: Any) -> int | None:
    """A positive id, or None for ``"Model not found"``, ``""``, 0 and junk."""
    try:
        number = as_int(value)
    except ValueError:  # str.isdigit() accepts digits that int() refuses (e.g. "²")
        return None
    return number if number is not None and number > 0 else None


class A1111:
    """The A1111 user-metadata dialect (with civitai-browser-plus's additions)."""

    name = "a1111"

    def detect(self, data: Any, file_name: str) -> bool:
        """True for a non-empty object whose keys are (almost) all A1111's or its extensions'."""
        if not isinstance(data, dict) or not data:
            return False
        keys = set(data)
        unknown = keys - _KNOWN
        if not unknown:
            return True
        own = len(keys & (USER_KEYS | BROWSER_KEYS))
        return own >= _MIN_OWN_FOR_UNKNOWN and len(unknown) <= _MAX_UNKNOWN

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        """Map the user keys and the browser's ids; ``name`` stays None (the importer uses the file name)."""
        sha256 = as_hash(data.get("sha256"))
        extra = pick_unmapped(data, USER_KEYS | _BROWSER_MAPPED)
        # Keep what an id field said when it is no id: "Model not found" tells the merge step
        # that this file was looked up and is not on Civitai.
        for key in ("modelId", "modelVersionId"):
            if key in data and _civitai_id(data[key]) is None and data[key] not in (None, ""):
                extra[key] = data[key]
        values = user_values(data, with_description=True)
        sd_version = values.get("sd_version")
        names_one = sd_version is not None and sd_version.lower() not in _FAMILIES
        return SidecarInfo(
            dialect=self.name,
            path=ctx.path,
            # Ranked last of the sidecars (see ``merge``): any other's base model comes first, and
            # one no name we know (the user's own words) is weak: the header's outranks it too.
            **base_model_fields(sd_version if names_one else None, by_civitai=False),
            civitai_model_id=_civitai_id(data.get("modelId")),
            civitai_version_id=_civitai_id(data.get("modelVersionId")),
            hashes={"sha256": sha256} if sha256 else {},
            extra=extra,
            **values,
        )

"""AUTOMATIC1111's extra-networks user metadata, ``NAME.json`` (placeholder until the dialect lands)."""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext, as_float, as_str

USER_KEYS = frozenset({"description", "sd version", "activation text", "preferred weight", "negative text", "notes"})


def user_values(data: dict[str, Any]) -> dict[str, Any]:
    """The user-written A1111 values of ``data`` as SidecarInfo fields, with ``user_fields`` set."""
    values: dict[str, Any] = {}
    if as_str(data.get("activation text")):
        values["activation_text"] = as_str(data.get("activation text"))
    weight = as_float(data.get("preferred weight"))
    if weight:  # 0 means "use the default"
        values["weight"] = weight
    if as_str(data.get("notes")):
        values["notes"] = as_str(data.get("notes"))
    if as_str(data.get("negative text")):
        values["negative_text"] = as_str(data.get("negative text"))
    sd_version = as_str(data.get("sd version"))
    if values:
        values["user_fields"] = frozenset(k for k in values if k != "sd_version")
    if sd_version:
        values["sd_version"] = sd_version
    return values


class A1111:
    name = "a1111"

    def detect(self, data: Any, file_name: str) -> bool:
        return False

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        raise NotImplementedError

"""Placeholder until the stability_matrix dialect lands."""

from __future__ import annotations

from typing import Any

from lora_manager.models import SidecarInfo
from lora_manager.parsing.base import ParseContext


class StabilityMatrix:
    name = "stability_matrix"

    def detect(self, data: Any, file_name: str) -> bool:
        return False

    def parse(self, data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        raise NotImplementedError

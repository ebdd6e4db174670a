"""Pydantic records that flow between the layers.

``SidecarInfo`` is what one sidecar file says (every field optional: dialects differ in
what they know); ``HeaderInfo`` is what a safetensors header says; ``AdapterRecord`` is
the merged record for one model file, whose field names are the ``adapter`` table's
columns (our contract with ``lora list --json``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SidecarInfo(BaseModel):
    """What one sidecar says about its model. ``None`` means "this dialect does not say"."""

    model_config = ConfigDict(extra="forbid")

    dialect: str
    path: str = ""
    name: str | None = None
    version: str | None = None
    description: str | None = None
    author_username: str | None = None
    published_at: datetime | None = None
    tags: list[str] | None = None
    trained_words: list[str] | None = None
    activation_text: str | None = None
    weight: float | None = None
    notes: str | None = None
    negative_text: str | None = None
    base_model: str | None = None
    # True when ``base_model`` is no name we recognise and no Civitai response gave it (a raw or
    # hand-written string), or is Civitai's catch-all "Other": any recognised base model from
    # another sidecar or the header outranks it (see parsing.base_models).
    base_model_weak: bool = False
    sd_version: str | None = None
    nsfw_level: int | None = None
    supports_generation: bool | None = None
    visibility: str | None = None
    stats: dict[str, Any] | None = None
    civitai_model_id: int | None = None
    civitai_version_id: int | None = None
    primary_file_name: str | None = None
    primary_file_size_kb: float | None = None
    primary_file_download_url: str | None = None
    # Hashes this sidecar claims for the model file, lowercase: sha256, autov2, autov3, blake3, crc32.
    hashes: dict[str, str] = Field(default_factory=dict)
    # Fields of this sidecar that a user wrote locally (activation_text, weight, notes, negative_text,
    # description): they outrank Civitai data (see parsing.merge for the whole precedence).
    user_fields: frozenset[str] = frozenset()
    # What no column holds, kept as the dialect wrote it.
    extra: dict[str, Any] = Field(default_factory=dict)
    # True for Civitai Helper's "{}": the model is not on Civitai; it says nothing else.
    empty: bool = False


class HeaderInfo(BaseModel):
    """The ``__metadata__`` of a safetensors header, and what we derive from it."""

    metadata: dict[str, str] = Field(default_factory=dict)
    title: str | None = None
    output_name: str | None = None
    base_model: str | None = None
    autov3: str | None = None
    tensor_data_offset: int = 0


class SidecarRef(BaseModel):
    """One sidecar that fed a record: where it is and the stat we compare on the next run."""

    path: str
    dialect: str
    size: int
    mtime_ns: int


class AdapterRecord(BaseModel):
    """The merged record of one model file: the ``adapter`` table's metadata columns."""

    name: str
    version: str | None = None
    canonical_version_name: str | None = None
    description: str | None = None
    author_username: str | None = None
    visibility: str = "Public"
    published_at: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    trained_words: list[str] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)
    file_path: str
    weight: float = 1.0
    weight_source: str = "default"  # default | sidecar | user
    primary_file_name: str | None = None
    primary_file_size_kb: float | None = None
    primary_file_sha256: str | None = None
    primary_file_autov2: str | None = None
    primary_file_autov3: str | None = None
    primary_file_download_url: str | None = None
    primary_file_local_path: str | None = None
    hash_sources: dict[str, str] = Field(default_factory=dict)  # hash name -> sidecar dialect | header | computed
    supports_generation: bool = False
    sd_version: str | None = None
    base_model: str | None = None
    nsfw_level: int = 0
    activation_text: str | None = None
    notes: str | None = None
    negative_text: str | None = None
    civitai_model_id: int | None = None
    civitai_version_id: int | None = None
    preview_path: str | None = None
    stats: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # per dialect: {"civitai_model": {...}, ...}
    header_metadata: dict[str, str] | None = None
    sidecars: list[SidecarRef] = Field(default_factory=list)
    json_file_path: str | None = None
    json_file_mtime: datetime | None = None
    json_file_size: int | None = None


class FileProblem(BaseModel):
    """One file that could not be used, and why (``kind`` is a FailureKind value)."""

    path: str
    kind: str
    message: str

"""Property tests: whatever a sidecar holds, parsing yields a record or a categorised SidecarError.

The importer catches only :class:`SidecarError`; anything else escaping ``parse_sidecar``
would stop a whole import run because of one odd file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import SidecarInfo
from lora_manager.parsing import a1111
from lora_manager.parsing.a1111 import A1111
from lora_manager.parsing.base import Dialect, ParseContext
from lora_manager.parsing.civitai_version import CivitaiVersion
from lora_manager.parsing.lora_manager import LoraManager
from lora_manager.parsing.registry import DIALECT_NAMES, load_json, parse_sidecar
from lora_manager.parsing.stability_matrix import StabilityMatrix

DATA = Path(__file__).parent.parent / "data"
SETTINGS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
HEX = re.compile(r"^[0-9a-f]+$")

# Real key names of every dialect, so generated objects look enough like sidecars to reach parsing.
REAL_KEYS = sorted(
    a1111.USER_KEYS
    | a1111.BROWSER_KEYS
    | a1111.TOOL_KEYS
    | {  # Civitai model and version responses, and their files
        "id",
        "modelId",
        "name",
        "description",
        "tags",
        "creator",
        "username",
        "modelVersions",
        "stats",
        "nsfwLevel",
        "supportsGeneration",
        "availability",
        "publishedAt",
        "trainedWords",
        "baseModel",
        "files",
        "images",
        "model",
        "downloadUrl",
        "hashes",
        "SHA256",
        "AutoV2",
        "AutoV3",
        "BLAKE3",
        "CRC32",
        "sizeKB",
        "primary",
        "type",
        "error",
    }
    | {  # ComfyUI-Lora-Manager
        "model_name",
        "file_name",
        "file_path",
        "sha256",
        "base_model",
        "preview_url",
        "notes",
        "civitai",
        "usage_tips",
        "strength",
        "modelDescription",
        "from_civitai",
        "modified",
        "favorite",
        "customImages",
    }
    | {  # Stability Matrix
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
        "ImportedAt",
        "Source",
    }
)
FILE_NAMES = st.sampled_from(
    ["m.json", "m.civitai.info", "M.CIVITAI.INFO", "m.metadata.json", "m.cm-info.json", "m.preview.json", ""]
)
MODEL_FILE_NAMES = st.none() | st.sampled_from(
    ["m.safetensors", "lineart_xl_v1.1.safetensors", "MECHA_ARMOR_V2.safetensors"]
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
keys = st.sampled_from(REAL_KEYS) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25,
)
contexts = st.builds(
    ParseContext,
    model_file_name=MODEL_FILE_NAMES,
    known_sha256=st.frozensets(
        st.sampled_from(["a" * 64, "9831c58000e9091763f4edd692576f84e6ca6602433b569988384a3028cefbda"])
    ),
)
FIXTURE_OBJECTS = [(path.parent.name, load_json(path.read_bytes())) for path in sorted(DATA.glob("*/*"))]
OWN_DIALECTS: dict[str, Dialect] = {d.name: d for d in (CivitaiVersion(), A1111(), LoraManager(), StabilityMatrix())}


def check_outcome(raw: bytes, file_name: str, ctx: ParseContext) -> SidecarInfo | None:
    """Parse and check the contract: a valid record, or a SidecarError with a kind and a message."""
    try:
        info = parse_sidecar(raw, file_name, ctx)
    except SidecarError as error:
        assert isinstance(error.kind, FailureKind)
        assert error.message
        return None
    assert isinstance(info, SidecarInfo)
    assert info.dialect in DIALECT_NAMES
    assert all(HEX.match(value) for value in info.hashes.values())
    return info


@SETTINGS
@given(value=json_values, file_name=FILE_NAMES, ctx=contexts)
def test_any_json_value_parses_or_fails_with_a_kind(value: Any, file_name: str, ctx: ParseContext) -> None:
    """For any JSON value, ``parse_sidecar`` returns a SidecarInfo or raises SidecarError, nothing else."""
    check_outcome(json.dumps(value).encode(), file_name, ctx)


@SETTINGS
@given(raw=st.binary(max_size=300), file_name=FILE_NAMES)
def test_any_bytes_parse_or_fail_with_a_kind(raw: bytes, file_name: str) -> None:
    """For arbitrary bytes, ``parse_sidecar`` returns a SidecarInfo or raises SidecarError, nothing else."""
    check_outcome(raw, file_name, ParseContext())


@SETTINGS
@given(
    base=st.sampled_from(FIXTURE_OBJECTS),
    overlay=st.dictionaries(st.sampled_from(REAL_KEYS), json_values, max_size=6),
    ctx=contexts,
)
def test_real_sidecars_with_junk_values_still_parse(
    base: tuple[str, Any], overlay: dict[str, Any], ctx: ParseContext
) -> None:
    """A real sidecar with some values replaced by junk still satisfies the contract."""
    _, data = base
    mutated = {**data, **overlay} if isinstance(data, dict) else data
    check_outcome(json.dumps(mutated).encode(), "m.json", ctx)


@SETTINGS
@given(
    base=st.sampled_from([(name, data) for name, data in FIXTURE_OBJECTS if name in OWN_DIALECTS]),
    overlay=st.dictionaries(st.sampled_from(REAL_KEYS), json_values, max_size=6),
    ctx=contexts,
)
def test_junk_values_never_cost_the_file_in_these_dialects(
    base: tuple[str, Any], overlay: dict[str, Any], ctx: ParseContext
) -> None:
    """These four dialects drop an unusable value, never the whole file (no INVALID_METADATA)."""
    name, data = base
    info = OWN_DIALECTS[name].parse({**data, **overlay}, ctx)
    assert info.dialect == name

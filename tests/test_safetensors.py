"""The bounded header reader: never the tensors, never more than the header says."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.safetensors import MAX_HEADER_BYTES, read_header, top_tags
from tests.builders import write_safetensors


def test_header_metadata_base_model_tags_and_autov3_are_read(tmp_path: Path) -> None:
    """kohya's keys map to a Civitai base model, top tags and AutoV3."""
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {
            "ss_output_name": "my_lora",
            "ss_base_model_version": "sdxl_base_v1-0",
            "ss_tag_frequency": json.dumps({"1_x": {"girl": 9, "hat": 3}, "2_y": {"hat": 8}}),
            "sshs_model_hash": "ABCDEF0123456789" + "0" * 48,
            "modelspec.title": "My LoRA",
        },
    )
    header = read_header(str(path))
    assert header.output_name == "my_lora" and header.title == "My LoRA"
    assert header.base_model == "SDXL 1.0"
    assert top_tags(header.metadata["ss_tag_frequency"]) == ["hat", "girl"]
    assert header.autov3 == "abcdef012345"
    assert header.tensor_data_offset == 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_placeholder_autov3_and_embedded_images_are_dropped(tmp_path: Path) -> None:
    """The SHA256-of-nothing placeholder is no hash; cover images are not kept."""
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {
            "sshs_model_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "ssmd_cover_images": json.dumps(["data:image/png;base64,AAAA"]),
            "modelspec.thumbnail": "data:...",
            "ss_base_model_version": "flux1",
        },
    )
    header = read_header(str(path))
    assert header.autov3 is None
    assert "ssmd_cover_images" not in header.metadata and "modelspec.thumbnail" not in header.metadata
    assert header.base_model == "Flux.1 D"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\x01\x02", FailureKind.BAD_HEADER),
        (struct.pack("<Q", 1000) + b"{}", FailureKind.BAD_HEADER),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", FailureKind.TOO_LARGE),
        (struct.pack("<Q", 4) + b"[1,2", FailureKind.BAD_HEADER),
        (struct.pack("<Q", 2) + b"[]", FailureKind.BAD_HEADER),
    ],
    ids=["short", "length-beyond-file", "absurd-length", "bad-json", "not-an-object"],
)
def test_broken_headers_fail_with_a_category(tmp_path: Path, raw: bytes, kind: FailureKind) -> None:
    """Truncated, lying or malformed headers raise SidecarError, never anything else."""
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(SidecarError) as info:
        read_header(str(path))
    assert info.value.kind == kind


def test_non_string_metadata_values_become_text(tmp_path: Path) -> None:
    """The spec says strings; some trainers write numbers or objects, which we keep as JSON text."""
    path = tmp_path / "m.safetensors"
    raw = json.dumps({"__metadata__": {"ss_network_dim": 32, "nested": {"a": 1}}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert read_header(str(path)).metadata == {"ss_network_dim": "32", "nested": '{"a": 1}'}

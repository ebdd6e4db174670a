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
    ("metadata", "base_model"),
    [
        ({"modelspec.architecture": "stable-diffusion-3-medium/lora"}, "SD 3"),
        ({"modelspec.architecture": "stable-diffusion-3-m/lora"}, "SD 3"),
        ({"modelspec.architecture": "stable-diffusion-3.5-large/lora"}, "SD 3.5 Large"),
        (
            {"modelspec.architecture": "stable-diffusion-3-5-large/lora", "ss_base_model_version": "5-large"},
            "SD 3.5 Large",
        ),
        ({"modelspec.architecture": "stable-diffusion-3.5-medium/lora"}, "SD 3.5 Medium"),
        ({"modelspec.architecture": "stable-diffusion-3-5-medium/lora"}, "SD 3.5 Medium"),
        ({"modelspec.architecture": "Flux.1-dev/lora"}, "Flux.1 D"),
        ({"modelspec.architecture": "flux-1-dev/lora", "ss_base_model_version": "flux1"}, "Flux.1 D"),
        ({"modelspec.architecture": "Flux.1-schnell/lora"}, "Flux.1 S"),
        ({"modelspec.architecture": "flux-1-schnell/lora", "ss_base_model_version": "flux1"}, "Flux.1 S"),
        ({"modelspec.architecture": "chroma/lora", "ss_base_model_version": "chroma"}, "Chroma"),
        ({"ss_base_model_version": "sd3"}, "SD 3"),
        ({"ss_base_model_version": "sd_v1"}, "SD 1.5"),
        ({"ss_base_model_version": "sdxl_"}, "SDXL 1.0"),  # OneTrainer
        ({"ss_base_model_version": "flux2_klein_9b"}, None),  # Flux.2 is no Flux.1
        ({"ss_base_model_version": "Other"}, None),
    ],
)
def test_sd3_and_flux_headers_name_civitai_base_models(
    tmp_path: Path, metadata: dict[str, str], base_model: str | None
) -> None:
    """kohya's SD3/SD3.5/Flux.1 architectures (sai_model_spec.py) and others' spellings of them map."""
    path = write_safetensors(tmp_path / "m.safetensors", metadata)
    assert read_header(str(path)).base_model == base_model


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


def _write_raw_header(path: Path, raw: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    return path


def test_metadata_nested_past_the_encoders_depth_is_dropped_not_raised(tmp_path: Path) -> None:
    """orjson decodes 1,000 levels; writing the value back as text would overflow Python's stack."""
    deep = b"[" * 1000 + b"]" * 1000
    raw = b'{"__metadata__": {"x": ' + deep + b', "ss_output_name": "ok"}}'
    path = _write_raw_header(tmp_path / "m.safetensors", raw)
    header = read_header(str(path))
    assert header.metadata == {"ss_output_name": "ok"}


def test_a_header_nested_too_deeply_to_decode_says_so(tmp_path: Path) -> None:
    path = _write_raw_header(tmp_path / "m.safetensors", b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(SidecarError) as info:
        read_header(str(path))
    assert info.value.kind == FailureKind.BAD_HEADER and "nested too deeply" in info.value.message


def test_a_header_of_a_million_tiny_values_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """Decoded, ``{}`` costs ~70 bytes: 3 MB of them would take 70 MB, 100 MB of them gigabytes."""
    raw = b'{"__metadata__": {}, "t": [' + b",".join([b"{}"] * 1_000_001) + b"]}"
    path = _write_raw_header(tmp_path / "m.safetensors", raw)
    with pytest.raises(SidecarError) as info:
        read_header(str(path))
    assert info.value.kind == FailureKind.TOO_LARGE and "1,000,000 JSON values" in info.value.message


def test_a_header_longer_than_the_first_read_is_read_whole(tmp_path: Path) -> None:
    """The first 64 KiB come with the length; the rest is read into the same buffer."""
    path = write_safetensors(tmp_path / "m.safetensors", {"ss_output_name": "long", "pad": "x" * 200_000})
    header = read_header(str(path))
    assert header.output_name == "long" and "pad" not in header.metadata  # over MAX_VALUE_CHARS: dropped


def test_a_header_whose_file_shrank_is_a_bad_header(tmp_path: Path) -> None:
    raw = json.dumps({"__metadata__": {"pad": "x" * 100_000}}).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw[:90_000])
    with pytest.raises(SidecarError) as info:
        read_header(str(path), file_size=len(raw) + 8)  # the size the walk saw, before it shrank
    assert info.value.kind == FailureKind.BAD_HEADER


def test_tag_counts_past_a_floats_range_are_not_counted() -> None:
    """An int past 1e308 added to a float raised OverflowError and ended ``lora orphans``."""
    frequency = json.dumps({"a": {"x": 0.5, "y": 2}, "b": {"x": 10**400, "y": True, "z": "7"}})
    assert top_tags(frequency) == ["y", "x"]

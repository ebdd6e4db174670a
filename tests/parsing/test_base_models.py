"""Base model names: every spelling a tool writes finds Civitai's name, and nothing else does."""

from __future__ import annotations

import pytest

from lora_manager.parsing.base_models import CIVITAI_NAMES, base_model_fields, civitai_name, from_header


def test_every_civitai_name_is_its_own_name() -> None:
    """Civitai's names map to themselves, and no two of them squash to one key."""
    assert [civitai_name(name) for name in CIVITAI_NAMES] == list(CIVITAI_NAMES)
    assert [civitai_name(name.upper()) for name in CIVITAI_NAMES] == list(CIVITAI_NAMES)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("SD1.5", "SD 1.5"),
        ("sd 1.5", "SD 1.5"),
        ("SDXL", "SDXL 1.0"),
        ("IL", "Illustrious"),
        ("Pony", "Pony"),
        ("Flux.1 D", "Flux.1 D"),
        ("flux.1-dev", "Flux.1 D"),
        ("SDXL Lightning", "SDXL Lightning"),
        ("My Own Merge", None),
        ("flux1", None),  # a header string, not a name
    ],
)
def test_short_names_find_civitai_names(text: str, name: str | None) -> None:
    """Older Lora-Manager releases and people write "SD1.5", "SDXL", "IL": Civitai's names for them."""
    assert civitai_name(text) == name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("sd_v1", "SD 1.5"),
        ("sdxl_base_v1-0", "SDXL 1.0"),
        ("sd_v2_768_v", "SD 2.1"),
        ("flux1", "Flux.1 D"),
        ("stable-diffusion-xl-v1-base/lora", "SDXL 1.0"),
        ("stable-diffusion-3.5-large-turbo/lora", "SD 3.5 Large Turbo"),
        ("SDXL Lightning", "SDXL Lightning"),  # a name it knows is never cut down to a prefix
        ("flux2_klein_4b", None),
        ("lumina-2/lora", None),
    ],
)
def test_header_strings_find_civitai_names(text: str, name: str | None) -> None:
    """kohya's and ModelSpec's strings map by prefix, after the names and short names."""
    assert from_header(text) == name


def test_sidecar_base_models_read_the_same_short_or_long() -> None:
    """Short texts are read through a cache, long ones directly: the answers are the same kind."""
    assert base_model_fields(" sd_v1 ", by_civitai=False) == {"base_model": "SD 1.5", "base_model_weak": False}
    assert base_model_fields("Other", by_civitai=True) == {"base_model": "Other", "base_model_weak": True}
    assert base_model_fields("unknown", by_civitai=True) == {"base_model": None, "base_model_weak": False}
    long = "sd_v1 " + "x" * 200
    assert base_model_fields(long, by_civitai=False) == {"base_model": "SD 1.5", "base_model_weak": False}
    assert base_model_fields("y" * 200, by_civitai=False) == {"base_model": "y" * 200, "base_model_weak": True}
    assert base_model_fields("y" * 200, by_civitai=True) == {"base_model": "y" * 200, "base_model_weak": False}

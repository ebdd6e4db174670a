"""Base model names, as Civitai spells them, from whatever a tool wrote.

One catalog column holds the base model, and ``lora list --base-model`` matches it exactly
(ignoring case), so every source must say it the same way. Sources differ:

* Civitai's ``baseModel`` (in its responses, and copied by Civitai Helper, Lora-Manager and
  Stability Matrix) is the canonical name: ``"SD 1.5"``, ``"SDXL 1.0"``, ``"Illustrious"``.
* Short names people and older tools write: ``"SD1.5"``, ``"SDXL"``, ``"IL"`` (older
  ComfyUI-Lora-Manager releases wrote these).
* Trainers' header strings: kohya's ``ss_base_model_version`` (``"sd_v1"``,
  ``"sdxl_base_v1-0"``, ``"flux1"``) and ModelSpec's ``modelspec.architecture``
  (``"stable-diffusion-3.5-large/lora"``, ``"Flux.1-dev/lora"``). Lora-Manager copies these
  into its own ``base_model`` when Civitai does not know the file.

Lookups are one dict access or a short prefix scan: this runs for every sidecar of a cold import.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from lora_manager.parsing.base import as_str

# Civitai's base model names (its model-version ``baseModel`` values). A name Civitai adds later
# is still kept as Civitai wrote it; this list only lets other spellings find their way to it.
CIVITAI_NAMES = (
    "ODOR",
    "SD 1.4",
    "SD 1.5",
    "SD 1.5 LCM",
    "SD 1.5 Hyper",
    "SD 2.0",
    "SD 2.0 768",
    "SD 2.1",
    "SD 2.1 768",
    "SD 2.1 Unclip",
    "SDXL 0.9",
    "SDXL 1.0",
    "SD 3",
    "SD 3.5",
    "SD 3.5 Medium",
    "SD 3.5 Large",
    "SD 3.5 Large Turbo",
    "Pony",
    "Pony V7",
    "Flux.1 S",
    "Flux.1 D",
    "Flux.1 Krea",
    "Flux.1 Kontext",
    "AuraFlow",
    "SDXL 1.0 LCM",
    "SDXL Distilled",
    "SDXL Turbo",
    "SDXL Lightning",
    "SDXL Hyper",
    "Stable Cascade",
    "SVD",
    "SVD XT",
    "Playground v2",
    "PixArt a",
    "PixArt E",
    "Hunyuan 1",
    "Hunyuan Video",
    "Lumina",
    "Kolors",
    "Illustrious",
    "Mochi",
    "LTXV",
    "CogVideoX",
    "NoobAI",
    "Wan Video",
    "Wan Video 1.3B t2v",
    "Wan Video 14B t2v",
    "Wan Video 14B i2v 480p",
    "Wan Video 14B i2v 720p",
    "HiDream",
    "Chroma",
    "Qwen",
    "Other",
)
# Civitai's catch-all: a base model, but one that any recognised name says more than.
OTHER = "Other"
# What Civitai Helper's skeleton and Lora-Manager write for "no base model known".
UNKNOWN = frozenset({"unknown", ""})
# Short names beyond Civitai's own spellings (whose spaces, dots and case never matter).
_ALIASES = {
    "sdxl": "SDXL 1.0",
    "sdxl1": "SDXL 1.0",
    "sdxlbase": "SDXL 1.0",
    "il": "Illustrious",
    "illustriousxl": "Illustrious",
    "ponyxl": "Pony",
    "ponydiffusion": "Pony",
    "sd3medium": "SD 3",
    "flux1dev": "Flux.1 D",
    "fluxdev": "Flux.1 D",
    "flux1schnell": "Flux.1 S",
    "fluxschnell": "Flux.1 S",
}
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_MAX_CACHED = 100  # characters of a base model text whose reading is cached (real ones are short)


def _squash(text: str) -> str:
    """``text`` lowercased with everything but letters and digits dropped: ``"SD 1.5"`` -> ``"sd15"``."""
    return _NOT_ALNUM.sub("", text.lower())


_BY_SQUASHED = {_squash(name): name for name in CIVITAI_NAMES} | _ALIASES
# Header strings by prefix, most specific first, matched on the text lowercased, cut at its
# first "/" (ModelSpec's "/lora" adapter suffix) and with every run of other characters made
# one "-": kohya's "sd_v1" is "sd-v1", "stable-diffusion-3.5-large" is "stable-diffusion-3-5-large".
# kohya's sai_model_spec.py writes "stable-diffusion-3-" plus its SD3 model type ("medium",
# "5-large", "5-medium"), "flux-1-dev", "flux-1-schnell" and "chroma"; its
# ss_base_model_version is "flux1" for every Flux.1 (the architecture tells dev from schnell).
HEADER_PREFIXES = (
    ("sdxl", "SDXL 1.0"),
    ("stable-diffusion-xl", "SDXL 1.0"),
    ("sd-v1", "SD 1.5"),
    ("stable-diffusion-v1", "SD 1.5"),
    ("sd-v2", "SD 2.1"),
    ("stable-diffusion-v2", "SD 2.1"),
    ("stable-diffusion-3-5-large-turbo", "SD 3.5 Large Turbo"),
    ("stable-diffusion-3-5-large", "SD 3.5 Large"),
    ("stable-diffusion-3-5-medium", "SD 3.5 Medium"),
    ("stable-diffusion-3-5", "SD 3.5"),
    ("stable-diffusion-3", "SD 3"),
    ("stable-diffusion-v3", "SD 3"),
    ("sd3-5-large-turbo", "SD 3.5 Large Turbo"),
    ("sd3-5-large", "SD 3.5 Large"),
    ("sd3-5-medium", "SD 3.5 Medium"),
    ("sd3-5", "SD 3.5"),
    ("sd3", "SD 3"),
    ("flux-1-schnell", "Flux.1 S"),
    ("flux1-schnell", "Flux.1 S"),
    ("flux-1-kontext", "Flux.1 Kontext"),
    ("flux-1-krea", "Flux.1 Krea"),
    ("flux-1", "Flux.1 D"),
    ("flux1", "Flux.1 D"),
    ("chroma", "Chroma"),
)


def civitai_name(text: str) -> str | None:
    """Civitai's name for ``text`` when it is one of its names or a short name for one, else None."""
    return _BY_SQUASHED.get(_squash(text))


def from_header(text: str) -> str | None:
    """Civitai's name for a trainer's header string (or any spelling :func:`civitai_name` knows), else None."""
    name = civitai_name(text)
    if name is not None:
        return name
    slug = _NOT_ALNUM.sub("-", text.lower().split("/", 1)[0]).strip("-")
    for prefix, name in HEADER_PREFIXES:
        if slug.startswith(prefix):
            return name
    return None


def base_model_fields(value: Any, *, by_civitai: bool) -> dict[str, Any]:
    """A sidecar's base model as SidecarInfo fields: ``base_model`` and ``base_model_weak``.

    ``by_civitai`` says the value is Civitai's ``baseModel`` (in its response, or copied by a
    tool): a spelling we know becomes Civitai's name, and one we do not is still Civitai's own
    (a base model added after this list), kept as written. Any other writer's value (Lora-Manager's
    own ``base_model``, which may be a raw header string, an A1111 ``sd version``) is also read
    as a header string, and when nothing is recognised it is kept but *weak*: any recognised
    name, even the header's, outranks it. Civitai's ``"Other"`` is weak too; ``"Unknown"`` is
    no base model at all.
    """
    text = as_str(value)
    if text is None:
        return {"base_model": None, "base_model_weak": False}
    # A library holds a few dozen spellings: each is worked out once. The cache is bounded in
    # entries and only holds short texts, so a library of long made-up names costs no memory.
    base_model, weak = _read_cached(text, by_civitai) if len(text) <= _MAX_CACHED else _read(text, by_civitai)
    return {"base_model": base_model, "base_model_weak": weak}


def _read(text: str, by_civitai: bool) -> tuple[str | None, bool]:
    """:func:`base_model_fields` of a stripped text, as ``(base_model, weak)``."""
    if text.lower() in UNKNOWN:
        return None, False
    name = civitai_name(text) if by_civitai else from_header(text)
    if name is None:
        return text, not by_civitai
    return name, name == OTHER


_read_cached = lru_cache(maxsize=4096)(_read)

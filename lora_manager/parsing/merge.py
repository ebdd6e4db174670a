"""Merge what every sidecar of one model file says into one record.

Precedence, highest first:

1. what the user wrote locally (A1111's ``activation text``, ``preferred weight``,
   ``notes``, ``description``; Lora-Manager's ``notes`` and ``usage_tips``);
2. Civitai data, in the order of ``CIVITAI_ORDER`` (the full model response knows tags and
   the creator; a version response knows neither);
3. the safetensors header (base model, AutoV3);
4. the file name (the record's name when no sidecar gives one).
"""

from __future__ import annotations

import re
from typing import Any

from lora_manager.models import AdapterRecord, HeaderInfo, SidecarInfo, SidecarRef
from lora_manager.parsing.base import from_mtime_ns
from lora_manager.parsing.base_models import OTHER

CIVITAI_ORDER = ("civitai_model", "civitai_version", "lora_manager", "stability_matrix", "a1111")
USER_ORDER = ("a1111", "lora_manager", "civitai_model", "civitai_version", "stability_matrix")
# Hashes a tool computed from the local file outrank hashes copied from a Civitai response,
# which may describe another file of the version (a pruned variant, say).
HASH_ORDER = ("lora_manager", "a1111", "stability_matrix", "civitai_version", "civitai_model")
# Civitai Helper joins alternative prompts with " || "; A1111 users write commas. A run of more
# bars is one separator too, so no "|" is left over as a trigger. The pieces are stripped
# afterwards (``_distinct``): whitespace around the separator in the pattern made a long run of
# spaces with no separator after it cost quadratic time (100 KB of spaces: 42 s).
_TRIGGER_SPLIT = re.compile(r",|\|\|+")


# Civitai gives a model a few dozen tags; a sidecar listing more is junk, and each tag is a row of
# ``adapter_tag`` (900,000 of them took 440 MB to write): the first 1,000 are kept.
MAX_TAGS = 1000


def _rank(order: tuple[str, ...], dialect: str) -> int:
    return order.index(dialect) if dialect in order else len(order)


def _first(layers: list[SidecarInfo], field: str) -> Any:
    """The first layer's value that says something (an empty list says nothing)."""
    for layer in layers:
        value = getattr(layer, field)
        if value is not None and value != []:
            return value
    return None


def merge(
    sidecars: list[SidecarInfo],
    refs: list[SidecarRef],
    model_path: str,
    stem: str,
    header: HeaderInfo | None = None,
    preview_path: str | None = None,
) -> AdapterRecord:
    """The record for ``model_path`` from its parsed sidecars (in any order) and header."""
    # Every value comes from validated SidecarInfo and HeaderInfo records: no second validation
    # (it was a tenth of a cold import's reading time).
    return AdapterRecord.model_construct(**merged_fields(sidecars, refs, model_path, stem, header, preview_path))


def merged_fields(
    sidecars: list[SidecarInfo],
    refs: list[SidecarRef],
    model_path: str,
    stem: str,
    header: HeaderInfo | None = None,
    preview_path: str | None = None,
) -> dict[str, Any]:
    """:func:`merge`'s record as a plain dict of every :class:`AdapterRecord` field, in their order.

    The importer's readers build rows from this directly: making the model and dumping it
    again cost a fifth of reading an entry.
    """
    civitai = sorted((s for s in sidecars if not s.empty), key=lambda s: _rank(CIVITAI_ORDER, s.dialect))
    user = sorted((s for s in civitai if s.user_fields), key=lambda s: _rank(USER_ORDER, s.dialect))

    def user_first(field: str) -> Any:
        for layer in user:
            if field in layer.user_fields and getattr(layer, field) is not None:
                return getattr(layer, field)
        return _first(civitai, field)

    hashes, hash_sources = _hashes(civitai, header)
    weight = next((s.weight for s in user if "weight" in s.user_fields and s.weight), None)
    activation_text = user_first("activation_text")
    words = {f: user_first(f) for f in ("description", "notes", "negative_text")}
    words |= {"activation_text": activation_text, "weight": weight}
    trained_words = _first(civitai, "trained_words") or []
    triggers = _distinct(_TRIGGER_SPLIT.split(activation_text) if activation_text else trained_words)
    model_name = model_path.replace("\\", "/").rsplit("/", 1)[-1]
    primary = _primary_ref(refs, civitai)
    return dict(
        name=_first(civitai, "name") or stem,
        version=_first(civitai, "version"),
        canonical_version_name=_first(civitai, "version"),
        description=words["description"],
        author_username=_first(civitai, "author_username"),
        visibility=_first(civitai, "visibility") or "Public",
        published_at=_first(civitai, "published_at"),
        tags=(_first(civitai, "tags") or [])[:MAX_TAGS],
        trained_words=trained_words,
        triggers=triggers,
        file_path=model_path,
        weight=weight if weight is not None else 1.0,
        weight_source="sidecar" if weight is not None else "default",
        primary_file_name=_first(civitai, "primary_file_name") or model_name,
        primary_file_size_kb=_first(civitai, "primary_file_size_kb"),
        primary_file_sha256=hashes.get("sha256"),
        primary_file_autov2=hashes.get("autov2"),
        primary_file_autov3=hashes.get("autov3"),
        primary_file_download_url=_first(civitai, "primary_file_download_url"),
        primary_file_local_path=model_path,
        hash_sources=hash_sources,
        supports_generation=bool(_first(civitai, "supports_generation")),
        sd_version=_first(civitai, "sd_version"),
        base_model=_base_model(civitai, header),
        nsfw_level=_first(civitai, "nsfw_level") or 0,
        activation_text=activation_text,
        notes=words["notes"],
        negative_text=words["negative_text"],
        civitai_model_id=_first(civitai, "civitai_model_id"),
        civitai_version_id=_first(civitai, "civitai_version_id"),
        preview_path=preview_path,
        stats=_first(civitai, "stats"),
        extra=_extra(civitai, user, words),
        header_metadata=header.metadata if header and header.metadata else None,
        sidecars=refs,
        json_file_path=primary.path if primary else None,
        json_file_mtime=from_mtime_ns(primary.mtime_ns) if primary else None,
        json_file_size=primary.size if primary else None,
    )


def _extra(civitai: list[SidecarInfo], user: list[SidecarInfo], chosen: dict[str, Any]) -> dict[str, Any]:
    """Each dialect's ``extra``, plus what a user wrote in a sidecar that lost to another's words.

    Two tools' notes (Lora-Manager's beside the ``notes`` Civitai Helper filled in a ``NAME.json``)
    both count as the user's; the record shows the higher-ranked one, and the other is kept here
    under its dialect rather than lost.
    """
    extra = {s.dialect: dict(s.extra) for s in civitai if s.extra}
    for layer in user:
        for field in sorted(layer.user_fields):
            value = getattr(layer, field, None)
            if value is not None and field in chosen and value != chosen[field]:
                extra.setdefault(layer.dialect, {}).setdefault(field, value)
    return extra


def _distinct(words: list[str]) -> list[str]:
    """The words stripped, without empties and repeats (ignoring case), first occurrence first.

    Civitai Helper's alternatives repeat words ("1girl, red hair || 1girl, blue hair"), and
    trained words repeat in another case; one trigger is typed once.
    """
    seen: set[str] = set()
    out: list[str] = []
    for word in words:
        word = word.strip()
        key = word.casefold()
        if word and key not in seen:
            seen.add(key)
            out.append(word)
    return out


def _base_model(civitai: list[SidecarInfo], header: HeaderInfo | None) -> str | None:
    """The first recognised base model in Civitai order, else the header's, else the first weak one.

    A weak value (no name we know, or Civitai's "Other") never hides a name we recognise, but is
    kept when nothing better is known; "Other" comes last even among those.
    """
    weak: list[str] = []
    for layer in civitai:
        if layer.base_model is not None:
            if not layer.base_model_weak:
                return layer.base_model
            weak.append(layer.base_model)
    if header is not None and header.base_model:
        return header.base_model
    return next((w for w in weak if w != OTHER), weak[0] if weak else None)


def _hashes(civitai: list[SidecarInfo], header: HeaderInfo | None) -> tuple[dict[str, str], dict[str, str]]:
    """The claimed hashes and where each came from.

    AutoV2 is by definition the SHA256's first 10 hex digits: with a SHA256 recorded, AutoV2 is
    derived from it (and credited to its source), never kept from another sidecar that may have
    described another file (Lora-Manager's own SHA256 beside a Civitai entry of a pruned variant).
    """
    hashes: dict[str, str] = {}
    sources: dict[str, str] = {}
    for layer in sorted(civitai, key=lambda s: _rank(HASH_ORDER, s.dialect)):
        for kind, digest in layer.hashes.items():
            if kind not in hashes:
                hashes[kind], sources[kind] = digest, layer.dialect
    if "sha256" in hashes:
        hashes["autov2"], sources["autov2"] = hashes["sha256"][:10], sources["sha256"]
    if "autov3" not in hashes and header and header.autov3:
        hashes["autov3"], sources["autov3"] = header.autov3, "header"
    return hashes, sources


def _primary_ref(refs: list[SidecarRef], civitai: list[SidecarInfo]) -> SidecarRef | None:
    """The sidecar that counts as the record's ``json_file_path``: the highest-ranked one."""
    if not refs:
        return None
    by_path = {r.path: r for r in refs}
    for layer in civitai:
        if layer.path in by_path:
            return by_path[layer.path]
    return refs[0]

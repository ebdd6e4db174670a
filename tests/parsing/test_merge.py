"""Merge precedence: the user's words > Civitai data > the safetensors header > the file name."""

from __future__ import annotations

from lora_manager.models import HeaderInfo, SidecarInfo, SidecarRef
from lora_manager.parsing.merge import merge


def _ref(path: str, dialect: str) -> SidecarRef:
    return SidecarRef(path=path, dialect=dialect, size=10, mtime_ns=1_700_000_000_000_000_000)


def test_user_fields_beat_civitai_and_weight_comes_from_the_user() -> None:
    """A1111's activation text, weight, notes and description win over Civitai's."""
    civitai = SidecarInfo(
        dialect="civitai_version",
        path="/l/x.civitai.info",
        name="X",
        version="v2",
        description="civitai text",
        trained_words=["cw1", "cw2"],
        base_model="Pony",
        hashes={"sha256": "a" * 64},
    )
    user = SidecarInfo(
        dialect="a1111",
        path="/l/x.json",
        description="mine",
        activation_text="w1, w2",
        weight=0.7,
        notes="n",
        user_fields=frozenset({"description", "activation_text", "weight", "notes"}),
    )
    record = merge(
        [user, civitai],
        [_ref("/l/x.json", "a1111"), _ref("/l/x.civitai.info", "civitai_version")],
        "/l/x.safetensors",
        "x",
    )
    assert (record.name, record.version) == ("X", "v2")
    assert record.description == "mine" and record.notes == "n"
    assert record.activation_text == "w1, w2" and record.triggers == ["w1", "w2"]
    assert record.trained_words == ["cw1", "cw2"]
    assert (record.weight, record.weight_source) == (0.7, "sidecar")
    assert record.primary_file_sha256 == "a" * 64 and record.primary_file_autov2 == "a" * 10
    assert record.hash_sources == {"sha256": "civitai_version", "autov2": "civitai_version"}
    assert record.json_file_path == "/l/x.civitai.info"


def test_the_full_model_response_outranks_a_version_response_for_tags_and_creator() -> None:
    """Civitai's model JSON knows tags and the creator; a version response knows neither."""
    model = SidecarInfo(dialect="civitai_model", name="M", version="v1", tags=["anime"], author_username="kohaku")
    version = SidecarInfo(dialect="civitai_version", name="M (renamed)", version="v1", tags=None)
    record = merge([version, model], [], "/l/m.safetensors", "m")
    assert record.name == "M" and record.tags == ["anime"] and record.author_username == "kohaku"


def test_header_fills_what_no_sidecar_says_and_file_name_is_the_last_resort() -> None:
    """Without Civitai data the name is the file's stem and the base model comes from the header."""
    user = SidecarInfo(dialect="a1111", activation_text="trig", user_fields=frozenset({"activation_text"}))
    header = HeaderInfo(base_model="SD 1.5", autov3="0123456789ab", title="Header Title")
    record = merge([user], [], "/l/my_lora.safetensors", "my_lora", header)
    assert record.name == "my_lora" and record.version is None
    assert record.base_model == "SD 1.5"
    assert record.primary_file_autov3 == "0123456789ab" and record.hash_sources["autov3"] == "header"
    assert (record.weight, record.weight_source) == (1.0, "default")
    assert record.primary_file_name == "my_lora.safetensors"


def test_an_empty_civitai_info_contributes_nothing() -> None:
    """Civitai Helper's `{}` (not found on Civitai) leaves the record to the other sources."""
    empty = SidecarInfo(dialect="civitai_version", empty=True, name="should not be used")
    record = merge([empty], [], "/l/mine.safetensors", "mine", HeaderInfo(base_model="Flux.1 D"))
    assert record.name == "mine" and record.base_model == "Flux.1 D"


def test_extra_is_kept_per_dialect() -> None:
    """What no column holds stays in `extra`, under the dialect that said it."""
    a = SidecarInfo(dialect="civitai_model", name="A", extra={"poi": False})
    b = SidecarInfo(dialect="stability_matrix", name="A", extra={"ImportedAt": "2024"})
    record = merge([a, b], [], "/l/a.safetensors", "a")
    assert record.extra == {"civitai_model": {"poi": False}, "stability_matrix": {"ImportedAt": "2024"}}


def test_the_readers_row_is_the_records_row_for_every_example_entry() -> None:
    """The importer builds rows from the merged fields directly; they equal the rows of the merged records."""
    from pathlib import Path

    from lora_manager.db.jsontext import JsonText, dumps
    from lora_manager.db.rows import PRESERIALISED, fields_row, record_row
    from lora_manager.discovery import walk
    from lora_manager.parsing.merge import merged_fields
    from lora_manager.paths import resolve_root
    from lora_manager.services.reading import _header, _parse_sidecars

    root = resolve_root(Path(__file__).resolve().parents[2] / "examples" / "library")
    compared = 0
    for entry in walk(root).entries:
        model = entry.model
        if model is None or not entry.sidecars:
            continue
        parsed, refs = _parse_sidecars(entry, model.name, 1 << 20, [], root)
        if not parsed:
            continue
        header = _header(entry.path(model.name), model.size, [], root)
        args = (parsed, refs, entry.path(model.name), entry.stem, header, None)
        fast, slow = fields_row(merged_fields(*args)), record_row(merge(*args))
        for column in PRESERIALISED:  # JSON text, stored exactly as the value is
            assert type(fast[column]) is JsonText and fast[column] == dumps(slow[column])
            fast[column] = slow[column]
        assert fast == slow
        compared += 1
    assert compared >= 5


def test_a_weak_base_model_gives_way_to_a_recognised_one_from_below() -> None:
    """An unrecognised or "Other" base model never hides a recognised one, even the header's."""
    own = SidecarInfo(dialect="lora_manager", base_model="sd_v1_custom", base_model_weak=True)
    other = SidecarInfo(dialect="civitai_version", base_model="Other", base_model_weak=True)
    sm = SidecarInfo(dialect="stability_matrix", base_model="Pony")
    assert merge([own, other, sm], [], "/l/m.safetensors", "m").base_model == "Pony"
    header = HeaderInfo(base_model="SDXL 1.0")
    assert merge([own, other], [], "/l/m.safetensors", "m", header).base_model == "SDXL 1.0"


def test_a_weak_base_model_is_kept_when_nothing_better_is_known() -> None:
    """With no recognised base model anywhere, the plausible string is kept, and "Other" only last."""
    own = SidecarInfo(dialect="lora_manager", base_model="sd_v1_custom", base_model_weak=True)
    other = SidecarInfo(dialect="civitai_version", base_model="Other", base_model_weak=True)
    assert merge([own, other], [], "/l/m.safetensors", "m", HeaderInfo()).base_model == "sd_v1_custom"
    assert merge([other], [], "/l/m.safetensors", "m").base_model == "Other"


def test_autov2_is_always_the_recorded_sha256s_prefix() -> None:
    """An AutoV2 from a sidecar describing another file never contradicts the SHA256 recorded."""
    own = SidecarInfo(dialect="lora_manager", hashes={"sha256": "a" * 64})
    civitai = SidecarInfo(dialect="civitai_version", hashes={"sha256": "b" * 64, "autov2": "b" * 10})
    record = merge([civitai, own], [], "/l/m.safetensors", "m")
    assert (record.primary_file_sha256, record.primary_file_autov2) == ("a" * 64, "a" * 10)
    assert record.hash_sources["autov2"] == record.hash_sources["sha256"] == "lora_manager"
    alone = merge([SidecarInfo(dialect="civitai_version", hashes={"autov2": "c" * 10})], [], "/l/m.safetensors", "m")
    assert (alone.primary_file_sha256, alone.primary_file_autov2) == (None, "c" * 10)


def test_triggers_split_on_bars_and_commas_without_repeats() -> None:
    """Civitai Helper's " || " alternatives give each word once, in order, no "|" fragment left."""
    user = SidecarInfo(
        dialect="a1111",
        activation_text="1girl, red hair || 1girl, Blue Hair, maid ||| ,, RED HAIR |||| tail",
        user_fields=frozenset({"activation_text"}),
    )
    record = merge([user], [], "/l/m.safetensors", "m")
    assert record.triggers == ["1girl", "red hair", "Blue Hair", "maid", "tail"]


def test_triggers_from_trained_words_have_no_repeats() -> None:
    """Without activation text the trained words are the triggers, each once whatever its case."""
    civitai = SidecarInfo(dialect="civitai_version", trained_words=["Sumi-e", "ink wash", "sumi-e", " "])
    record = merge([civitai], [], "/l/m.safetensors", "m")
    assert record.triggers == ["Sumi-e", "ink wash"]


def test_a_users_words_that_lose_to_another_tools_are_kept_in_extra() -> None:
    """Civitai Helper fills a NAME.json's ``notes``; Lora-Manager's own notes lose to it, but are not lost."""
    helper = SidecarInfo(
        dialect="a1111",
        path="/l/x.json",
        notes="Changelog: fixed hands",
        weight=0.8,
        user_fields=frozenset({"notes", "weight"}),
        extra={"extensions": {"sd_civitai_helper": {"version": "1.8.1"}}},
    )
    lm = SidecarInfo(
        dialect="lora_manager",
        path="/l/x.metadata.json",
        name="X",
        notes="MY OWN NOTE",
        weight=0.8,
        user_fields=frozenset({"notes", "weight"}),
    )
    record = merge([lm, helper], [], "/l/x.safetensors", "x")
    assert record.notes == "Changelog: fixed hands"
    assert record.extra["lora_manager"] == {"notes": "MY OWN NOTE"}  # the same weight is no loss
    assert record.extra["a1111"] == {"extensions": {"sd_civitai_helper": {"version": "1.8.1"}}}


def test_a_long_run_of_spaces_in_the_activation_text_splits_in_linear_time() -> None:
    """Whitespace around the separators was part of the split pattern: 100 KB of spaces with no
    separator after them cost 42 s (quadratic; the 1,000,000 characters a sidecar may hold, an hour)."""
    spaces = " " * 300_000
    user = SidecarInfo(
        dialect="a1111",
        path="/l/x.json",
        activation_text=f"a{spaces}b , c ||| d||e",
        user_fields=frozenset({"activation_text"}),
    )
    record = merge([user], [], "/l/x.safetensors", "x")
    assert record.triggers == [f"a{spaces}b", "c", "d", "e"]


def test_tags_past_a_thousand_are_left_out() -> None:
    """A sidecar of 900,000 tags took 440 MB to write, one ``adapter_tag`` row each: the first 1,000 are kept."""
    from lora_manager.parsing.merge import MAX_TAGS

    civitai = SidecarInfo(dialect="civitai_model", name="Many", tags=[f"t{i}" for i in range(MAX_TAGS + 500)])
    record = merge([civitai], [], "/l/m.safetensors", "m")
    assert record.tags == [f"t{i}" for i in range(MAX_TAGS)]

"""Which dialect a sidecar is, by content: ``parse_sidecar`` over every fixture and over noise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lora_manager.errors import FailureKind, SidecarError
from lora_manager.models import SidecarInfo
from lora_manager.parsing import registry
from lora_manager.parsing.base import ParseContext
from lora_manager.parsing.registry import DIALECT_NAMES, parse_sidecar

DATA = Path(__file__).parent.parent / "data"
CTX = ParseContext()
# Files that only their suffix makes metadata: under another name they are no sidecar.
SUFFIX_ONLY = {"not-on-civitai.civitai.info", "api-error.civitai.info"}
FIXTURES = sorted(
    (path.parent.name, path)
    for path in DATA.glob("*/*")
    if path.parent.name in DIALECT_NAMES and path.name not in SUFFIX_ONLY
)


def kind_of(raw: bytes, file_name: str = "model.json") -> FailureKind:
    """The failure kind ``parse_sidecar`` raises for ``raw`` (the test fails if it parses)."""
    with pytest.raises(SidecarError) as caught:
        parse_sidecar(raw, file_name, CTX)
    return caught.value.kind


def test_every_dialect_has_fixtures() -> None:
    """Each registered dialect has at least one fixture on disk (so the next test covers it)."""
    assert {dialect for dialect, _ in FIXTURES} == set(DIALECT_NAMES)


@pytest.mark.parametrize(("dialect", "path"), FIXTURES, ids=[p.name for _, p in FIXTURES])
def test_fixture_is_detected_by_content_under_a_plain_json_name(dialect: str, path: Path) -> None:
    """Every fixture saved as a plain ``NAME.json`` is still recognised as its own dialect."""
    assert parse_sidecar(path.read_bytes(), "renamed.json", CTX).dialect == dialect


@pytest.mark.parametrize(("dialect", "path"), FIXTURES, ids=[p.name for _, p in FIXTURES])
def test_fixture_is_detected_under_its_own_name(dialect: str, path: Path) -> None:
    """Every fixture under its real file name parses as its own dialect."""
    assert parse_sidecar(path.read_bytes(), path.name, CTX).dialect == dialect


def test_dialect_order_puts_specific_shapes_first() -> None:
    """The registry tries Lora-Manager, Stability Matrix, Civitai model, Civitai version, A1111."""
    assert DIALECT_NAMES == ("lora_manager", "stability_matrix", "civitai_model", "civitai_version", "a1111")


def test_empty_object_is_metadata_only_as_civitai_info() -> None:
    """``{}`` is "not on Civitai" in ``.civitai.info`` and no metadata in ``.json``."""
    assert parse_sidecar(b"{}", "x.Civitai.Info", CTX).empty is True
    assert kind_of(b"{}", "x.json") is FailureKind.NOT_METADATA


def test_model_response_in_a_civitai_info_file_is_civitai_model() -> None:
    """Old civitai-browser-plus saved the *model* response as ``.civitai.info``; its shape wins."""
    raw = (DATA / "civitai_model" / "mecha-armor-three-versions.json").read_bytes()
    assert parse_sidecar(raw, "mecha.civitai.info", CTX).dialect == "civitai_model"


def test_lora_manager_record_with_embedded_version_is_lora_manager() -> None:
    """A Lora-Manager record embeds a version response; the outer record decides the dialect."""
    data = {"model_name": "M", "file_name": "m", "sha256": "", "civitai": {"modelId": 1, "files": [], "name": "v1"}}
    assert parse_sidecar(json.dumps(data).encode(), "m.json", CTX).dialect == "lora_manager"


def test_a1111_file_with_browser_ids_is_not_a_version_response() -> None:
    """``modelId`` beside A1111 keys (no ``files``/``model``) stays A1111."""
    raw = json.dumps({"activation text": "x", "modelId": 5, "modelVersionId": 6}).encode()
    assert parse_sidecar(raw, "m.json", CTX).dialect == "a1111"


NOISE: list[Any] = [
    {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.21.4", "in_channels": 4, "sample_size": 64},
    {
        "last_node_id": 9,
        "last_link_id": 9,
        "nodes": [{"id": 1, "type": "KSampler", "widgets_values": [1]}],
        "links": [],
        "version": 0.4,
    },
    {"name": "some-package", "version": "1.0.0", "description": "an npm package.json", "scripts": {}},
    {"error": "Model not found"},
    [1, 2, 3],
    [{"activation text": "x"}],
    "a string",
    42,
    None,
    True,
]


@pytest.mark.parametrize("value", NOISE, ids=[type(v).__name__ + str(i) for i, v in enumerate(NOISE)])
def test_noise_json_is_not_metadata(value: Any) -> None:
    """Valid JSON of no dialect (diffusers config, ComfyUI workflow, list, scalar) is NOT_METADATA."""
    assert kind_of(json.dumps(value).encode()) is FailureKind.NOT_METADATA


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"activation text": "x",}', b"\x00\x01\x02safetensors", b"{'single': 'quotes'}", b"\xff\xfe{\x00"],
    ids=["empty", "truncated", "trailing-comma", "binary", "single-quotes", "utf16-truncated"],
)
def test_invalid_json_is_invalid_json(raw: bytes) -> None:
    """Bytes that are no JSON are INVALID_JSON."""
    assert kind_of(raw) is FailureKind.INVALID_JSON


@pytest.mark.parametrize(
    "raw", [b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
)
def test_deep_nesting_is_invalid_json_not_a_recursion_error(raw: bytes) -> None:
    """Nesting too deep for the decoders is INVALID_JSON, never a RecursionError."""
    assert kind_of(raw) is FailureKind.INVALID_JSON


def test_invalid_json_message_says_where() -> None:
    """The failure message names the line and column, for ``lora errors``."""
    with pytest.raises(SidecarError) as caught:
        parse_sidecar(b'{\n  "notes": "x"\n  "activation text": "y"\n}', "m.json", CTX)
    assert "line 3" in caught.value.message


def test_utf16_file_with_bom_is_read() -> None:
    """A user-metadata file saved as UTF-16 (Windows editors) parses."""
    raw = json.dumps({"activation text": "夜桜", "notes": "n"}, ensure_ascii=False).encode("utf-16")
    assert parse_sidecar(raw, "m.json", CTX).activation_text == "夜桜"


def test_latin1_file_is_read() -> None:
    """A file in a legacy 8-bit encoding parses rather than failing the import."""
    raw = '{"notes": "café crème"}'.encode("latin-1")
    assert parse_sidecar(raw, "m.json", CTX).notes == "café crème"


def test_windows_ansi_file_is_read_as_cp1252(tmp_path: Path) -> None:
    """A sidecar hand-edited in a Windows "ANSI" editor keeps its curly quotes and euro sign, not
    the C1 control characters Latin-1 makes of them."""
    notes = "it\u2019s \u201cgood\u201d for 5 \u20ac"
    path = tmp_path / "m.json"
    path.write_bytes(json.dumps({"notes": notes, "activation text": "caf\u00e9"}, ensure_ascii=False).encode("cp1252"))
    info = parse_sidecar(path.read_bytes(), path.name, CTX)
    assert (info.notes, info.activation_text) == (notes, "caf\u00e9")


def test_bytes_cp1252_leaves_undefined_stay_latin1() -> None:
    """0x81, 0x8D, 0x8F, 0x90 and 0x9D have no Windows-1252 character: they fail nothing."""
    raw = b'{"notes": "\x93q\x94 \x81\x8d\x8f\x90\x9d"}'
    assert parse_sidecar(raw, "m.json", CTX).notes == "\u201cq\u201d \x81\x8d\x8f\x90\x9d"


def test_nan_written_by_python_is_tolerated() -> None:
    """``NaN`` (Python's json writes it) is accepted and becomes "no value"."""
    info = parse_sidecar(b'{"activation text": "x", "preferred weight": NaN}', "m.json", CTX)
    assert isinstance(info, SidecarInfo)
    assert info.weight is None


def test_dialect_bug_costs_one_file_as_invalid_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside a dialect becomes INVALID_METADATA, never escapes."""
    dialect = next(d for d in registry.DIALECTS if d.name == "a1111")

    def broken(data: dict[str, Any], ctx: ParseContext) -> SidecarInfo:
        raise KeyError("boom")

    monkeypatch.setattr(dialect, "parse", broken)
    assert kind_of(b'{"notes": "x"}') is FailureKind.INVALID_METADATA


def test_a_file_of_more_than_a_million_values_is_refused_before_decoding() -> None:
    """A 3 MB file of ``{}`` would decode into 70 MB; the limit's 32 MiB of them into gigabytes."""
    head = b'{"id": 1, "modelId": 2, "name": "v", "model": {"name": "M"}, "x": ['
    raw = head + b",".join([b"{}"] * 1_000_000) + b"]}"
    with pytest.raises(SidecarError) as caught:
        parse_sidecar(raw, "m.civitai.info", CTX)
    assert caught.value.kind is FailureKind.TOO_LARGE and "1,000,000 JSON values" in caught.value.message


def test_a_file_just_under_the_value_limit_is_read() -> None:
    raw = b'{"id": 1, "modelId": 2, "name": "v", "model": {"name": "M"}, "x": [' + b",".join([b"1"] * 999_000) + b"]}"
    assert parse_sidecar(raw, "m.civitai.info", CTX).name == "M"


@pytest.mark.parametrize("extra", ["", ', "nan": NaN'], ids=["orjson-refuses", "python-decoder"])
def test_an_integer_past_pythons_digit_limit_is_kept_as_its_digits(extra: str) -> None:
    """Python refuses to convert more than 4,300 digits: that is no reason to lose the file."""
    digits = "7" * 5000
    raw = ('{"id": 1, "modelId": 2, "name": "v", "model": {"name": "M"}, "big": ' + digits + extra + "}").encode()
    info = parse_sidecar(raw, "m.civitai.info", CTX)
    assert info.name == "M" and info.extra["big"] == digits


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"activation text": "a\x01b"}', "not valid JSON: Invalid control character at line 1 column 23"),
        (b"{}", "JSON is no LoRA metadata (an empty object)"),
        (
            json.dumps({"z" * 5000: 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7}).encode(),
            "JSON is no LoRA metadata (object with keys b, c, d, e, f and 2 more)",
        ),
        (json.dumps({"k" * 5000: 1}).encode(), f"JSON is no LoRA metadata (object with keys {'k' * 40}…)"),
    ],
    ids=["control-character", "empty-object", "many-keys", "long-key"],
)
def test_messages_name_the_problem_once_and_stay_short(raw: bytes, message: str) -> None:
    """The json module's "... at" is not doubled; a document that is no metadata is described in a short line
    (a 5 MB key name used to be copied whole into the message)."""
    with pytest.raises(SidecarError) as caught:
        parse_sidecar(raw, "model.json", CTX)
    assert caught.value.message == message

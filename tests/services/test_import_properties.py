"""Property: whatever library Hypothesis draws, importing it twice changes nothing the second time,
and a fresh catalog fed the same tree ends in the same records (order of runs does not matter)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lora_manager.db import open_catalog
from lora_manager.services.catalog import ListQuery, list_adapters
from lora_manager.services.claims import ClaimFilter
from lora_manager.services.importer import ImportOptions, run_import
from tests.builders import a1111, civitai_model, civitai_version, write_json, write_model

NAMES = st.sampled_from(["Alpha", "Beta", "Gamma", "Delta"])  # few names: duplicates happen
VERSIONS = st.sampled_from(["v1", "v2", None])
KINDS = st.sampled_from(["model_json", "version_info", "a1111_only", "broken", "no_model"])
ENTRY = st.tuples(st.sampled_from(["a", "b", "c/d"]), KINDS, NAMES, VERSIONS)
_counter = itertools.count()

VOLATILE = ("id", "created_at", "updated_at", "last_ingested_at", "json_file_mtime")


def _build(root: Path, entries: list[tuple[str, str, str, str | None]], only: str | None = None) -> None:
    """Write ``entries`` (the i-th with the stem ``m{i}``), or only those of the folder ``only``."""
    for i, (folder, kind, name, version) in enumerate(entries):
        if only is not None and folder != only:
            continue
        stem = f"m{i}"
        where = root / folder
        if kind == "model_json":
            write_model(where, stem, civitai_model(name, version=version or "v1", file_name=f"{stem}.safetensors"))
        elif kind == "version_info":
            write_model(where, stem, civitai_version(name, version=version or "v1"), suffix=".civitai.info")
        elif kind == "a1111_only":
            write_model(where, stem, a1111(activation_text=name))
        elif kind == "broken":
            write_model(where, stem, None)
            where.joinpath(f"{stem}.json").write_text("{broken", encoding="utf-8")
        else:
            write_json(where / f"{stem}.json", civitai_model(name))


def _records(url: str) -> list[dict[str, object]]:
    engine = open_catalog(url)
    try:
        rows = list_adapters(engine, ListQuery())
    finally:
        engine.dispose()
    # When a row went missing is a clock time; whether it did is what must agree.
    return [
        {k: (v is not None if k == "missing_since" else v) for k, v in r.items() if k not in VOLATILE} for r in rows
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ENTRY, min_size=1, max_size=8))
def test_import_is_idempotent_and_independent_of_history(entries: list[tuple[str, str, str, str | None]]) -> None:
    """A second import writes nothing new; a fresh catalog of the same tree holds the same records."""
    base = Path(tempfile.mkdtemp(prefix=f"prop{next(_counter)}-"))
    try:
        lib = base / "lib"
        lib.mkdir()
        _build(lib, entries)
        first_url, second_url = str(base / "one.db"), str(base / "two.db")
        engine = open_catalog(first_url)
        try:
            run_import(engine, ImportOptions(roots=[str(lib)]))
            again = run_import(engine, ImportOptions(roots=[str(lib)]))
        finally:
            engine.dispose()
        assert (again.counts["new"], again.counts["updated"], again.counts["failed"]) == (0, 0, 0)
        engine = open_catalog(second_url)
        try:
            run_import(engine, ImportOptions(roots=[str(lib)], force=True))
        finally:
            engine.dispose()
        assert _records(first_url) == _records(second_url)
        names = [(r["name"], r["version"]) for r in _records(first_url)]
        assert len(names) == len(set(names))
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _EveryHash(ClaimFilter):
    """A filter of claimed identities that answers "maybe" for every identity: every hash collides."""

    def __contains__(self, item: object) -> bool:
        return True


@settings(max_examples=25, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=8), st.lists(ENTRY, min_size=0, max_size=4))
def test_small_batches_with_preloaded_owners_decide_as_one_batch_does(
    entries: list[tuple[str, str, str, str | None]], more: list[tuple[str, str, str, str | None]]
) -> None:
    """Batches of two with every owner loaded up front (as big imports run) end where one batch ends,
    on a first import and on a re-import after entries were added and renamed, even if every claim's hash
    collides."""
    import pytest

    from lora_manager.services import decisions

    base = Path(tempfile.mkdtemp(prefix=f"prop{next(_counter)}-"))
    try:
        lib = base / "lib"
        lib.mkdir()
        _build(lib, entries)
        small, whole, colliding = str(base / "small.db"), str(base / "whole.db"), str(base / "colliding.db")

        original = decisions.RunState.__init__

        def import_all() -> None:
            for url, size in ((small, 2), (whole, 1000), (colliding, 2)):
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(decisions, "PRELOAD_OWNERS", 0)
                    if url == colliding:  # every identity looks claimed: the catalog must tell the truth

                        def init(self: decisions.RunState, *args: object, **kwargs: object) -> None:
                            original(self, *args, **kwargs)  # type: ignore[arg-type]
                            self.claimed = _EveryHash()

                        patch.setattr(decisions.RunState, "__init__", init)
                    engine = open_catalog(url)
                    try:
                        run_import(engine, ImportOptions(roots=[str(lib)], batch_size=size))
                    finally:
                        engine.dispose()
            expected = _records(whole)
            for url in (small, colliding):
                got = _records(url)
                pairs = zip(got, expected, strict=False)
                diffs = [{k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)} for a, b in pairs]
                assert got == expected, (Path(url).name, [d for d in diffs if d])

        import_all()
        extra = lib / "later"
        extra.mkdir()
        _build(extra, more)
        rotate = {"Alpha": "Beta", "Beta": "Gamma", "Gamma": "Delta", "Delta": "Alpha"}
        _build(lib, [(f, k, rotate[n], v) if i % 2 == 0 else (f, k, n, v) for i, (f, k, n, v) in enumerate(entries)])
        for i, (folder, *_) in enumerate(entries):
            if i % 3 == 1:  # a model file gone: its row is left missing, a claim let go of
                (lib / folder / f"m{i}.safetensors").unlink(missing_ok=True)
        import_all()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _entry_states(url: str) -> list[tuple[object, ...]]:
    """What the catalog says of each entry: its status, identity, and whether it holds a record."""
    from sqlalchemy import text

    engine = open_catalog(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT key, status, name, version_key, adapter_id IS NULL, model_path FROM entry ORDER BY key")
            )
            return [tuple(r) for r in rows]
    finally:
        engine.dispose()


def _eager_walk(root: str, rules: object, known: object, previous: object, **kwargs: object) -> object:
    """The walk as ``--force`` ran it before it deferred unchanged folders: every folder grouped up front."""
    from lora_manager.discovery import walk

    return walk(root, rules, None, previous, on_partial=kwargs.get("on_partial"))  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=8), st.lists(ENTRY, min_size=0, max_size=3))
def test_a_forced_reimport_decides_as_if_every_entry_were_loaded_up_front(
    entries: list[tuple[str, str, str, str | None]], more: list[tuple[str, str, str, str | None]]
) -> None:
    """``--force`` reads unchanged folders batch by batch, their entries' stored state loaded per batch: it
    ends in the records, entry states and counts of a forced run that grouped every folder and loaded every
    entry's state up front. Folders "b" and "c/d" changed in an earlier run (model files gone, sidecars
    broken that keep their last good record, names taken over) and not since; "a" changes just before."""
    import pytest

    from lora_manager.services import planning

    base = Path(tempfile.mkdtemp(prefix=f"prop{next(_counter)}-"))
    runs = {"eager": 1000, "lazy": 1000, "lazy2": 2}
    urls = {name: str(base / f"{name}.db") for name in runs}
    counts = {}

    def import_each(force: bool = False) -> None:
        for name, size in runs.items():
            with pytest.MonkeyPatch.context() as patch:
                if name == "eager":
                    patch.setattr(planning, "walk", _eager_walk)
                engine = open_catalog(urls[name])
                try:
                    options = ImportOptions(roots=[str(lib)], force=force, batch_size=size)
                    counts[name] = run_import(engine, options).counts
                finally:
                    engine.dispose()

    try:
        lib = base / "lib"
        lib.mkdir()
        _build(lib, entries)
        import_each()
        rotate = {"Alpha": "Beta", "Beta": "Gamma", "Gamma": "Delta", "Delta": "Alpha"}
        _build(lib, [(f, k, n if f == "a" else rotate[n], v) for f, k, n, v in entries])
        for i, (folder, *_) in enumerate(entries):
            if folder != "a" and i % 3 == 1:
                (lib / folder / f"m{i}.safetensors").unlink(missing_ok=True)
            elif folder != "a" and i % 3 == 2:
                (lib / folder / f"m{i}.json").write_text("{broken", encoding="utf-8")
        import_each()
        # Only folder "a" changes now (names taken over), and a new folder comes.
        _build(lib, [(f, k, rotate[rotate[n]], v) for f, k, n, v in entries], only="a")
        _build(lib / "later", more)
        import_each(force=True)
        assert counts["lazy"] == counts["eager"]
        for name in ("lazy", "lazy2"):
            assert _records(urls[name]) == _records(urls["eager"]), name
            assert _entry_states(urls[name]) == _entry_states(urls["eager"]), name
    finally:
        shutil.rmtree(base, ignore_errors=True)

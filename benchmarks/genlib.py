"""Generate a synthetic, deterministic LoRA library for benchmarking ``lora import``.

    python benchmarks/genlib.py OUT_DIR --count 10000 [--seed 7]

The tree looks like a real one so the importer does realistic work: nested folders
(base model / category / optional creator, ~100-400 files each), real ``.safetensors``
headers, preview images, and the sidecar dialects popular tools write, in roughly the
proportions seen in the wild. It also holds the mess a real library has: orphan model
files, sidecars whose model is gone, and JSON that is not LoRA metadata at all.

The per-dialect documents are built in gendocs.py. Standard library only; the project
must not depend on anything outside itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gendocs import DocFactory, ModelFacts

GENERATOR_VERSION = 1  # bump whenever output changes, so cached trees are regenerated
STAMP = "stamp.json"
SIDECAR_LIST = "sidecars.txt"
TOUCH_STATE = "touch-state.json"

# fmt: off
ADJECTIVES = ("celestial", "neon", "vintage", "dreamy", "gothic", "pastel", "cyber", "misty", "golden", "ink",
              "retro", "lunar", "verdant", "crystal", "ember", "frosted", "velvet", "storm", "solar", "hollow")
NOUNS = ("portraits", "cityscape", "armor", "kimono", "forest", "mecha", "watercolor", "sketch", "lighting",
         "eyes", "pose", "dragon", "cafe", "library", "samurai", "witch", "garden", "harbor", "circuit")
# fmt: on
# (folder name, Civitai baseModel, A1111 "sd version", kohya ss_base_model_version)
BASES = (
    ("SD15", "SD 1.5", "SD1", "sd_v1"),
    ("SDXL", "SDXL 1.0", "SDXL", "sdxl_base_v1-0"),
    ("Pony", "Pony", "SDXL", "sdxl_base_v1-0"),
    ("Illustrious", "Illustrious", "SDXL", "sdxl_base_v1-0"),
    ("Flux", "Flux.1 D", "Unknown", "flux1"),
)
CATEGORIES = ("characters", "styles", "concepts", "clothing", "poses", "backgrounds", "objects", "misc")
CREATORS = ("stargazer", "mira_ai", "kohaku", "pixelmonk", "Null_Pointer", "ゆめ", "obrien", "Δelta", "tensorfox")
# Sidecar dialect mix, in percent of models.
KINDS = ("civitai_model", "civitai_version", "a1111_pair", "lora_manager", "stability_matrix", "a1111")
KIND_WEIGHTS = (34, 24, 10, 16, 10, 6)
NOISE_DOCS: tuple[Any, ...] = (
    {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.21.4", "in_channels": 4, "sample_size": 64},
    {
        "last_node_id": 9,
        "last_link_id": 9,
        "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [7, 20]}],
        "links": [],
        "version": 0.4,
    },
    [1, 2, 3],
)


def png_bytes() -> bytes:
    """A valid 1x1 RGB PNG, so preview detection sees a real image signature."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80\x40\xc0"))
        + chunk(b"IEND", b"")
    )


PNG = png_bytes()


def safetensors_bytes(metadata: dict[str, str], payload: bytes) -> bytes:
    """A valid safetensors file: u64 LE header length, JSON header padded to 8 bytes, tensor data."""
    size = len(payload) // 2 * 2
    header = {
        "__metadata__": metadata,
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": {
            "dtype": "F16",
            "shape": [size // 2],
            "data_offsets": [0, size],
        },
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload[:size]


@dataclass
class Library:
    """A generated tree and what the benchmark needs to know about it."""

    root: Path
    count: int
    seed: int
    info: dict[str, Any]

    @property
    def home(self) -> Path:
        """The folder holding the tree, its stamp and its sidecar list."""
        return self.root.parent

    def sidecars(self) -> list[Path]:
        """Every real metadata sidecar (noise JSON excluded), in generation order."""
        lines = (self.home / SIDECAR_LIST).read_text(encoding="utf-8").splitlines()
        return [self.root / line for line in lines if line]


class FolderPlan:
    """Hands out leaf folders in runs of 40-160 models (100-400 files), like a real collection grows."""

    def __init__(self, root: Path, rnd: random.Random) -> None:
        self.root, self.rnd = root, rnd
        self.used: dict[tuple[str, ...], int] = {}
        self.left = 0
        self.current = root
        self.base = BASES[0]
        self.creator: str | None = None

    def next(self) -> Path:
        """The folder for the next model, opening a new one when the current run is full."""
        if self.left == 0:
            self._open_new()
        self.left -= 1
        return self.current

    def _open_new(self) -> None:
        rnd = self.rnd
        self.base = rnd.choice(BASES)
        parts = [self.base[0], rnd.choice(CATEGORIES)]
        self.creator = rnd.choice(CREATORS) if rnd.random() < 0.45 else None
        if self.creator:
            parts.append(self.creator)
        key = tuple(parts)
        seen = self.used.get(key, 0)
        self.used[key] = seen + 1
        if seen:
            parts.append(f"vol-{seen + 1:02d}")
        self.current = self.root.joinpath(*parts)
        self.current.mkdir(parents=True, exist_ok=True)
        self.left = rnd.randint(40, 160)


class Generator:
    """Writes one library; every random draw comes from one seeded stream, so output is deterministic."""

    def __init__(self, root: Path, count: int, seed: int) -> None:
        self.root, self.count = root, count
        self.rnd = random.Random(seed)
        self.folders = FolderPlan(root, self.rnd)
        self.docs = DocFactory(self.rnd)
        self.stats: dict[str, int] = {"files": 0, "bytes": 0}
        self.sidecars: list[str] = []
        self.sample_name: str | None = None

    def write(self, path: Path, data: bytes) -> None:
        """Write one file and count it."""
        with open(path, "wb") as f:
            f.write(data)
        self.stats["files"] += 1
        self.stats["bytes"] += len(data)

    def bump(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def run(self) -> dict[str, Any]:
        """Generate all models; returns the stamp payload (counts, sample name for ``show``)."""
        for i in range(self.count):
            self.one_model(i)
        return {
            "stats": dict(sorted(self.stats.items())),
            "sample_name": self.sample_name,
            "search_word": "Celestial",
            "tag": "anime",
        }

    def facts(self, i: int, folder: Path) -> ModelFacts:
        """The facts every sidecar of model ``i`` agrees on."""
        rnd = self.rnd
        adj, noun = rnd.choice(ADJECTIVES), rnd.choice(NOUNS)
        title = f"{adj.title()} {noun.title()} {i}"
        stem = f"{adj}-{noun}-{i}" if rnd.random() < 0.8 else f"{adj.title()}_{noun.title()}_{i}_v1"
        base = self.folders.base
        creator = self.folders.creator if self.folders.creator and rnd.random() < 0.9 else rnd.choice(CREATORS)
        words = [f"{adj} {noun}", f"trg{i}"][: rnd.randint(0, 2)]
        body = safetensors_bytes(
            {
                "ss_output_name": stem,
                "ss_base_model_version": base[3],
                "ss_network_dim": "32",
                "ss_network_alpha": "16",
                "modelspec.title": title,
                "ss_tag_frequency": json.dumps({f"10_{stem}": {w: 12 for w in [*words, noun]}}),
            },
            rnd.randbytes(rnd.randint(200, 800)),
        )
        return ModelFacts(
            index=i,
            title=title,
            stem=stem,
            folder=folder,
            base_model=base[1],
            sd_version=base[2],
            creator=creator,
            words=words,
            tags=sorted(set(rnd.sample(self.docs.tags, rnd.randint(0, 5)))),
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
        )

    def one_model(self, i: int) -> None:
        """Model file, preview, sidecars of one dialect, and now and then some mess beside them."""
        rnd = self.rnd
        folder = self.folders.next()
        kind = rnd.choices(KINDS, KIND_WEIGHTS)[0]
        facts = self.facts(i, folder)
        if rnd.random() < 0.02:
            self.bump("missing_model")
        else:
            self.write(folder / f"{facts.stem}.safetensors", facts.body)
            if kind == "civitai_model" and self.sample_name is None:
                self.sample_name = facts.title
        if rnd.random() < 0.3:
            self.write(folder / f"{facts.stem}.preview.png", PNG)
            self.bump("previews")
        for name, doc in self.docs.sidecars(kind, facts):
            self.write(folder / name, self.docs.dump(doc))
            self.sidecars.append((folder / name).relative_to(self.root).as_posix())
        self.bump(kind)
        self.extras(i, folder, facts)

    def extras(self, i: int, folder: Path, facts: ModelFacts) -> None:
        """~4% orphan model files (no sidecar), ~1% JSON that is not LoRA metadata."""
        roll = self.rnd.random()
        if roll < 0.04:
            stem = f"{facts.stem.split('-')[0]}_{i}_e{self.rnd.randint(1, 40):06d}"
            self.write(
                folder / f"{stem}.safetensors", safetensors_bytes({"ss_output_name": stem}, self.rnd.randbytes(256))
            )
            self.bump("orphans")
        elif roll < 0.05:
            self.write(folder / f"config-{i}.json", json.dumps(self.rnd.choice(NOISE_DOCS)).encode())
            self.bump("noise_json")


def _stamp_matches(home: Path, count: int, seed: int) -> dict[str, Any] | None:
    try:
        stamp: dict[str, Any] = json.loads((home / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wanted = {"generator": GENERATOR_VERSION, "count": count, "seed": seed}
    return stamp if all(stamp.get(k) == v for k, v in wanted.items()) else None


def ensure_library(workdir: Path, count: int, seed: int, log: bool = True) -> Library:
    """The library for (count, seed) under ``workdir``, generated only if no complete one is there.

    The stamp is written last, so an interrupted generation is detected and redone.
    """
    home = workdir / f"lib-n{count}-s{seed}"
    root = home / "library"
    stamp = _stamp_matches(home, count, seed)
    if stamp is None:
        if home.exists():
            shutil.rmtree(home)
        root.mkdir(parents=True)
        started = time.perf_counter()
        gen = Generator(root, count, seed)
        info = gen.run()
        (home / SIDECAR_LIST).write_text("\n".join(gen.sidecars) + "\n", encoding="utf-8")
        stamp = {
            "generator": GENERATOR_VERSION,
            "count": count,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 2),
            **info,
        }
        (home / STAMP).write_text(json.dumps(stamp, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if log:
            print(f"generated {count:,} models in {stamp['seconds']:.1f} s: {root}", flush=True)
    elif log:
        print(f"reusing generated library ({count:,} models, seed {seed}): {root}", flush=True)
    return Library(root=root, count=count, seed=seed, info=stamp)


def touch_batch(lib: Library, round_no: int, fraction: float = 0.01) -> list[Path]:
    """The sidecars that touch round ``round_no`` edits: a deterministic, disjoint slice per round."""
    paths = lib.sidecars()
    random.Random(f"touch-{lib.seed}").shuffle(paths)
    k = max(1, round(len(paths) * fraction))
    start = (round_no * k) % len(paths)
    return (paths + paths)[start : start + k]


def touch_sidecars(lib: Library, round_no: int, fraction: float = 0.01) -> list[Path]:
    """Edit ``fraction`` of the sidecars the way a user or tool would: a changed description.

    The new text is always longer than the old one, so both size and mtime change and any
    change detection (size, mtime or content hash) must notice.
    """
    batch = touch_batch(lib, round_no, fraction)
    for path in batch:
        doc = json.loads(path.read_bytes())
        key = next((k for k in ("description", "ModelDescription", "modelDescription", "notes") if k in doc), "notes")
        doc[key] = f"<p>Edited in touch round {round_no}.</p>" + (doc[key] if isinstance(doc.get(key), str) else "")
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return batch


def next_touch_round(lib: Library) -> int:
    """A touch round never used on this tree before, so every timed re-import sees fresh edits."""
    state_file = lib.home / TOUCH_STATE
    try:
        used = int(json.loads(state_file.read_text(encoding="utf-8"))["next_round"])
    except (OSError, ValueError, KeyError):
        used = 0
    state_file.write_text(json.dumps({"next_round": used + 1}) + "\n", encoding="utf-8")
    return used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="the library goes to WORKDIR/lib-nCOUNT-sSEED/library")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    lib = ensure_library(a.workdir.resolve(), a.count, a.seed)
    print(json.dumps({"root": str(lib.root), **lib.info}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()

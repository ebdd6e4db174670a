"""What an import is asked to do, and what it reports: options, per-entry outcomes, the summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lora_manager.errors import FailureKind
from lora_manager.models import FileProblem

DEFAULT_MAX_SIDECAR_BYTES = 32 * 1024 * 1024


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ImportOptions:
    roots: list[str]
    force: bool = False
    dry_run: bool = False
    prune: bool = False
    ignore: list[str] = field(default_factory=list)
    max_sidecar_bytes: int = DEFAULT_MAX_SIDECAR_BYTES
    batch_size: int = 1000
    workers: int | None = None  # None: decide by the amount of work
    list_unchanged: bool = False  # keep an Outcome for unchanged entries too (``lora scan --all``)


@dataclass
class Outcome:
    """What happened to one entry (kept for changed entries only; ``scan`` prints them)."""

    key: str
    action: str  # new | updated | unchanged | skipped | failed | duplicate | orphan | missing
    name: str | None = None
    version: str | None = None
    detail: str = ""


# What an import counts, each always present in its --json summary and in `lora status`.
COUNT_KEYS = ("new", "updated", "unchanged", "skipped", "failed", "duplicates", "orphans", "missing", "pruned")


@dataclass
class ImportReport:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[FileProblem] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    duration: float = 0.0
    run_id: int | None = None
    interrupted: bool = False

    keep_outcomes: bool = False

    def outcome(self, outcome: Outcome) -> None:
        if self.keep_outcomes:
            self.outcomes.append(outcome)

    @property
    def failed(self) -> bool:
        return any(FailureKind(p.kind).is_failure for p in self.problems)

    def as_dict(self) -> dict[str, object]:
        return {
            **{k: self.counts.get(k, 0) for k in COUNT_KEYS},
            "problems": [p.model_dump() for p in self.problems],
            "duration_seconds": round(self.duration, 3),
            "run_id": self.run_id,
            "interrupted": self.interrupted,
        }

"""What reading one entry produced, apart from the code that reads it.

The importer holds and writes results that a reader process made (see ``prefetch``): with
the class here, unpickling them loads no parser, so a re-import whose changed entries were
all read on the other core never loads the parsers in this process (~15 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lora_manager.models import FileProblem


@dataclass(slots=True)
class EntryResult:
    """What reading one entry produced. ``status``: ok, failed, skipped or orphan."""

    key: str
    signature: str
    status: str
    row: dict[str, Any] | None = None  # the adapter row (see db.rows.record_row) when status is ok
    problems: list[FileProblem] = field(default_factory=list)
    model_path: str | None = None
    model_size: int | None = None
    model_mtime_ns: int | None = None

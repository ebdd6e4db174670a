"""The adapter row of a record: what the readers build and the writer sends.

Pure and picklable, free of SQLAlchemy: the importer's reader processes build rows, the
writer only completes them (:func:`adapter_row`) and sends them.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from lora_manager.db.jsontext import json_text
from lora_manager.models import AdapterRecord


def search_text(record: AdapterRecord) -> str:
    """The lowercased text ``--search`` matches against."""
    return _search_text(vars(record))


def _search_text(fields: dict[str, Any]) -> str:
    words = [
        fields["name"],
        fields["version"] or "",
        fields["author_username"] or "",
        os.path.basename(fields["file_path"]),
        *fields["tags"],
        *fields["trained_words"],
        fields["activation_text"] or "",
    ]
    return " ".join(w for w in words if w).lower()


def record_row(record: AdapterRecord) -> dict[str, Any]:
    """The adapter row of a record, less what only the writer knows (entry key, times).

    Pure and picklable: the importer's worker processes build rows, the writer only sends them.
    """
    row = record.model_dump()
    row["version_key"] = record.version or ""
    row["search_text"] = search_text(record)
    return row


# The JSON columns the writer never looks into: the readers serialise them (see ``db.jsontext``).
PRESERIALISED = ("trained_words", "triggers", "hash_sources", "stats", "extra", "header_metadata", "sidecars")


def fields_row(fields: dict[str, Any]) -> dict[str, Any]:
    """:func:`record_row` of ``AdapterRecord.model_construct(**fields)``, without making the model.

    ``fields`` is ``parsing.merge.merged_fields``: every field, from validated records. The
    :data:`PRESERIALISED` columns come as JSON text, stored exactly as their values would be.
    A test checks that both give the same row.
    """
    row = dict(fields)
    row["sidecars"] = [ref.model_dump() for ref in fields["sidecars"]]
    row["version_key"] = fields["version"] or ""
    row["search_text"] = _search_text(fields)
    for column in PRESERIALISED:
        row[column] = json_text(row[column])
    return row


def adapter_row(row: dict[str, Any], entry_key: str, now: datetime) -> dict[str, Any]:
    """Complete a :func:`record_row` for the upsert."""
    return {
        **row,
        "entry_key": entry_key,
        "missing_since": None,
        "last_ingested_at": now,
        "created_at": now,
        "updated_at": now,
    }

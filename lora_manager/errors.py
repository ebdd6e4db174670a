"""Errors that carry an exit code, and the categories of per-file failures.

The CLI's error boundary turns a :class:`LoraError` into one line on stderr and its
exit code; a :class:`SidecarError` is caught per file by the importer, recorded with
its :class:`FailureKind`, and never stops the run.
"""

from __future__ import annotations

from enum import StrEnum

EXIT_OK = 0
EXIT_FILES_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class FailureKind(StrEnum):
    """Why one file could not be imported; stored with the failure and shown by `lora errors`."""

    INVALID_JSON = "invalid_json"
    NOT_METADATA = "not_metadata"  # valid JSON that is no sidecar dialect: skipped, not a failure
    INVALID_METADATA = "invalid_metadata"  # a known dialect with unusable values
    MODEL_MISSING = "model_missing"
    UNSAFE_PATH = "unsafe_path"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    BAD_HEADER = "bad_header"
    DUPLICATE = "duplicate"  # another file already holds this (name, version): skipped
    DB_ERROR = "db_error"

    @property
    def is_failure(self) -> bool:
        """Skips (noise JSON, duplicates) are reported but do not fail the run."""
        return self not in (FailureKind.NOT_METADATA, FailureKind.DUPLICATE)


class LoraError(Exception):
    """An error the user must act on; the CLI prints ``message`` and exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class SidecarError(Exception):
    """One file could not be used; the importer records it and goes on."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def database_cause(exc: BaseException) -> str:
    """What the database said of ``exc`` (the driver's error, when SQLAlchemy wraps one) on one
    line: PostgreSQL's messages run over several ("...\\n\\tIs the server running ...")."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())

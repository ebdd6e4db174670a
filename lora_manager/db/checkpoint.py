"""Copying an import's committed pages into a SQLite catalog file on another thread, while it goes on writing.

A re-import after scattered edits writes a few thousand pages to the write-ahead log, and the
connection that closes last copies them all into the catalog file (a checkpoint: a read and
a write per page). Most of them were committed by earlier batches: a checkpoint of those can
run beside the batches still to come, on the other core (SQLite copies without holding
Python's lock, and a checkpoint never blocks a writer). Only the pages written after it are
left for the close. Nothing depends on it: whatever it does not copy, the close does. The
importer uses it only for a re-import of edits (see ``importer.BACKGROUND_CHECKPOINT_BELOW``),
and only while another batch is to come: with nothing left to overlap, a copy here and the
close's copy of the rest synced the files twice, which cost a one-batch re-import more than
it saved.

The copied pages are also synced to disk here: SQLite syncs the catalog file only after a
checkpoint that copied the whole log, which this one, with batches still being written, never
is; so the close's sync flushed every page this had copied too (a 100,000-model re-import
after 1,000 edits: 25-33 ms at the close, ~10 ms with them synced here).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class BackgroundCheckpoint:
    """At most one checkpoint of ``path`` at a time, on its own thread and connection."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: not a SQLite file, nothing to do
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Copy what is committed so far, unless a copy is still running (or there is no file)."""
        if self.path is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self._run, name="lora-checkpoint", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        """Let the running copy finish (the close copies the rest)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        import sqlite3

        if self.path is None:  # pragma: no cover - start() asks first
            return
        try:
            con = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            # PASSIVE: copies what no reader still needs, and waits for no lock.
            con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            return
        finally:
            con.close()
        _sync(self.path)


def _sync(path: Path) -> None:
    """Flush the catalog file's written pages to disk (not needed for safety: the close syncs it again)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        getattr(os, "fdatasync", os.fsync)(fd)
    except OSError:  # a system that will not sync a file opened to read: the close does it
        pass
    finally:
        os.close(fd)

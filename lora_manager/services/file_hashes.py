"""Hashing one model file: one read, the whole-file SHA256 and the tensor data's SHA256 together.

:func:`hash_file` reads a file once, in 1 MiB chunks, into the whole-file SHA256 (AutoV2 is
its first 10 hex) and, for safetensors, a second SHA256 over the tensor data only (the bytes
after the 8+N header; AutoV3 is its first 12 hex, as A1111 and Civitai show it). That one is
skipped, unless asked for, when the header records AutoV3: it doubles the CPU per byte. A
file that moves while it is read raises :class:`FileChanged`: its hash describes no version
of it. ``services.hashing`` runs it over the catalog's files.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from lora_manager.errors import SidecarError
from lora_manager.listings import int64
from lora_manager.mtimes import wait_until_settled
from lora_manager.paths import open_regular
from lora_manager.safetensors import MAX_HEADER_BYTES, parse_header

CHUNK = 1024 * 1024
_IDENTITY = ("st_size", "st_mtime_ns", "st_ino", "st_dev")  # what must not move while a file is read
TensorMode = Literal["auto", "always", "never"]


class FileChanged(OSError):
    """The file moved (size, mtime or inode) while it was read: the hash describes no version of it."""


class Aborted(Exception):
    """Hashing was asked to stop before the file was done."""


@dataclass(frozen=True, slots=True)
class FileHashes:
    """What one pass over a file produced, and the size and mtime it was read at."""

    size: int
    mtime_ns: int
    sha256: str | None  # None for a tensor-only pass
    tensor_sha256: str | None = None
    header_autov3: str | None = None

    def as_row(self, path: str) -> dict[str, Any]:
        """The ``model_file`` values, plus AutoV2 (derived, for output): AutoV3 computed beats the header's."""
        return {
            "path": path,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "sha256": self.sha256,
            "autov2": self.sha256[:10] if self.sha256 else None,
            "autov3": self.tensor_sha256[:12] if self.tensor_sha256 else self.header_autov3,
            "autov3_source": "computed" if self.tensor_sha256 else ("header" if self.header_autov3 else None),
            "tensor_sha256": self.tensor_sha256,
            "hashed_at": datetime.now(UTC),
        }


class _TensorPart:
    """Finds the safetensors header at the start of the stream, then hashes what follows it."""

    def __init__(self, size: int, mode: TensorMode) -> None:
        self.size, self.mode = size, mode
        self.head = bytearray()
        self.end = 8  # bytes of header wanted: the length first, then 8+N
        self.length_known = self.decided = False
        self.hasher: Any = None
        self.header_autov3: str | None = None

    def feed(self, chunk: memoryview) -> None:
        if self.hasher is not None:
            self.hasher.update(chunk)
            return
        while not self.decided:
            take = min(len(chunk), self.end - len(self.head))
            self.head += chunk[:take]
            chunk = chunk[take:]
            if len(self.head) < self.end:
                return
            if self.length_known:
                self._decide()
            else:
                (length,) = struct.unpack("<Q", self.head)
                if length > MAX_HEADER_BYTES or length + 8 > self.size:
                    self.decided = True  # not a safetensors file after all: the SHA256 is all we take
                self.end, self.length_known = 8 + length, True
        if self.hasher is not None:
            self.hasher.update(chunk)

    def _decide(self) -> None:
        self.decided = True
        try:
            del self.head[:8]  # in place (the header may be 100 MB): the JSON is what remains
            self.header_autov3 = parse_header(self.head, self.end).autov3
        except SidecarError:
            return
        finally:
            self.head = bytearray()
        if self.mode == "always" or self.header_autov3 is None:
            self.hasher = hashlib.sha256()


def hash_file(
    path: str,
    whole: bool = True,
    tensor: TensorMode = "auto",
    abort: threading.Event | None = None,
    on_bytes: Callable[[int], None] | None = None,
    expect: tuple[int, int] | None = None,
    *,
    inside: str | None = None,
) -> FileHashes:
    """Hash ``path`` in one read; raises :class:`FileChanged` if it moved meanwhile (or differs from ``expect``).

    ``whole=False`` is a tensor-only pass (the SHA256 is known). ``tensor``: ``auto`` hashes the
    tensor data unless the header records AutoV3, ``always`` hashes it anyway, ``never`` skips it.
    With ``inside``, a file that is really elsewhere (a link out) raises :class:`LeadsOut` unread.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open_regular(path, buffering=0, inside=inside) as f:
        before = os.fstat(f.fileno())
        if expect is not None and (before.st_size, int64(before.st_mtime_ns)) != expect:
            raise FileChanged(path)
        # A write in the tick of the mtime seen here would keep it: read only once that tick is over.
        wait_until_settled([before.st_mtime_ns])
        full = hashlib.sha256() if whole else None
        tensors = tensor != "never" and path.lower().endswith(".safetensors")
        part = _TensorPart(before.st_size, tensor) if tensors else None
        total = 0
        # Never past the size seen at open: a file that keeps growing must not keep us reading.
        while total < before.st_size and (n := f.readinto(buf)):
            if abort is not None and abort.is_set():
                raise Aborted(path)
            chunk = view[:n]
            if full is not None:
                full.update(chunk)
            if part is not None:
                part.feed(chunk)
            total += n
            if on_bytes is not None:
                on_bytes(n)
    after = os.stat(path)
    if total != before.st_size or [getattr(after, k) for k in _IDENTITY] != [getattr(before, k) for k in _IDENTITY]:
        raise FileChanged(path)
    tensor_sha256 = part.hasher.hexdigest() if part is not None and part.hasher is not None else None
    header_autov3 = part.header_autov3 if part is not None else None
    sha256 = full.hexdigest() if full is not None else None
    return FileHashes(before.st_size, int64(before.st_mtime_ns), sha256, tensor_sha256, header_autov3)

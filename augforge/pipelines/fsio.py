"""Crash-safe file writing: temporary name in the same folder, fsync, atomic rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_SUFFIX = ".tmp"


def temp_name(target: Path) -> Path:
    """A hidden, unique temporary sibling of `target` ('.<name>.<random>.tmp')."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """Open a temporary sibling of `target` for writing; when the block ends without error,
    fsync it and rename it into place (readers see the old file or the whole new one), else
    remove it. Work done at the end of the block happens before the rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `target` atomically (see `atomic_file`)."""
    with atomic_file(target) as fh:
        fh.write(data)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter:
    """A write-only stream that hashes and counts what passes through to `raw`."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def remove_stale_temps(folder: Path, prefix: str) -> int:
    """Delete leftover temporary files of a killed run ('.<prefix>*.tmp') in `folder`."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob(f".{prefix}*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed

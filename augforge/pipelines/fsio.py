"""Crash-safe file writing: temporary name in the same folder, fsync, atomic rename.

Every write error (disk full, no permission, file too large, ...) becomes an `OutputWriteError`
that names the file and the cause, and never leaves a file under its final name: readers see
the old file or the whole new one. The only leftovers of a crash are hidden '.<name>.<hex>.tmp'
siblings, which the next run removes (`remove_stale_temps`).

Test-only fault injection (tests/pipelines/test_faults.py), read from the environment of the
writing process (a Dask worker inherits it from the process that starts it); unset, each costs one
dictionary lookup per file:
- AUGFORGE_FAULT_ENOSPC_AFTER_BYTES=N: the process may write N bytes through `atomic_file` in all;
  the write that would pass N writes what fits and then fails with ENOSPC ("No space left on
  device"), as a full disk does, without needing a small filesystem mounted.
- AUGFORGE_FAULT_SLOW_WRITE_S=T: pause T seconds after a file's data is written to its temporary
  name and before the fsync and rename (a slow disk), so a test can kill a process mid-write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from augforge.core.errors import AugforgeError

TMP_SUFFIX = ".tmp"
FAULT_ENOSPC_ENV = "AUGFORGE_FAULT_ENOSPC_AFTER_BYTES"
FAULT_SLOW_ENV = "AUGFORGE_FAULT_SLOW_WRITE_S"
_fault_written = 0  # bytes written through atomic_file by this process while the fault is armed


class OutputWriteError(AugforgeError):
    """The output could not be written: names the file and the operating system's reason."""

    def __init__(self, path: str | Path, code: int | None, reason: str) -> None:
        self.path, self.errno, self.reason = str(path), code, reason
        name = errno.errorcode.get(code, "") if code is not None else ""
        super().__init__(f"cannot write {self.path}: {reason}" + (f" [{name}]" if name else ""))

    def __reduce__(self) -> tuple[type[OutputWriteError], tuple[str, int | None, str]]:
        return type(self), (self.path, self.errno, self.reason)  # survives pickling (Dask workers)

    @classmethod
    def from_oserror(cls, path: str | Path, exc: OSError) -> OutputWriteError:
        return cls(path, exc.errno, exc.strerror or str(exc))


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


def _fault_budget() -> int | None:
    """Bytes this process may still write under the test-only ENOSPC fault, or None (unarmed)."""
    limit = os.environ.get(FAULT_ENOSPC_ENV)
    return None if limit is None else max(0, int(limit) - _fault_written)


class OutputFile:
    """The write side of `atomic_file`: writes to the temporary file, reporting any failure as an
    OutputWriteError about the final `target` (so the message names the file the user asked for)."""

    def __init__(self, raw: BinaryIO, target: Path, budget: int | None) -> None:
        self.raw, self.target, self.budget = raw, target, budget

    def write(self, data: bytes) -> int:
        global _fault_written
        try:
            if self.budget is not None and len(data) > self.budget:
                fits = memoryview(data)[: self.budget]
                self.raw.write(fits)
                _fault_written += len(fits)
                self.budget = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = self.raw.write(data)
        except OSError as exc:
            raise OutputWriteError.from_oserror(self.target, exc) from exc
        if self.budget is not None:
            self.budget -= len(data)
            _fault_written += len(data)
        return written

    def flush(self) -> None:
        try:
            self.raw.flush()
        except OSError as exc:
            raise OutputWriteError.from_oserror(self.target, exc) from exc


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[OutputFile]:
    """Open a temporary sibling of `target` for writing; when the block ends without error,
    flush and fsync it and rename it into place (readers see the old file or the whole new one),
    then fsync the folder so the rename is durable. On any error the temporary file is removed;
    errors of the file itself (mkdir, open, write, fsync, rename) are raised as OutputWriteError.
    Work done at the end of the block happens before the rename."""
    tmp = temp_name(target)
    raw: BinaryIO | None = None
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            raw = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
        except OSError as exc:
            raise OutputWriteError.from_oserror(target, exc) from exc
        fh = OutputFile(raw, target, _fault_budget())
        yield fh
        fh.flush()
        if FAULT_SLOW_ENV in os.environ:
            time.sleep(float(os.environ[FAULT_SLOW_ENV]))
        try:
            os.fsync(raw.fileno())
            raw.close()
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputWriteError.from_oserror(target, exc) from exc
    except BaseException:
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes) -> None:
    """Write `data` to `target` atomically (see `atomic_file`)."""
    with atomic_file(target) as fh:
        fh.write(data)


def prepare_output_dir(folder: Path) -> None:
    """Create `folder` and prove a file can be created in it, so an unwritable output fails at
    once with an OutputWriteError naming the folder, before any work is started."""
    probe = temp_name(folder / ".augforge-write-check")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise OutputWriteError.from_oserror(folder, exc) from exc


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class HashingWriter:
    """A write-only stream that hashes and counts what passes through to `raw`."""

    def __init__(self, raw: BinaryIO | OutputFile) -> None:
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

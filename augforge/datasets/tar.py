"""WebDatasetReader: random access to the samples of one or more WebDataset .tar shards.

Members are grouped into samples the way webdataset does it: the key is the member name up to the
first dot of its base name, the extension (lower-cased) the rest; consecutive members with the
same key form one sample; `__meta__` style names, non-regular members (links, folders) and names
without an extension are skipped. The index is built from the tar headers only (the tarfile
module, no decoding), recording each member's data offset, so `read(i)` seeks straight to it.

Safety: the reader only ever reads image, .cls, .txt and .json members; it never unpickles
anything (.pyd / .pickle / .pth members are listed in meta but never read). A member name that is
absolute or contains '..' makes its sample a bad record. Shards must be uncompressed tars.
Sources are local files only: URLs (http://, s3://, ...) are refused, and a `pipe:CMD` source
(webdataset's convention: read CMD's standard output) runs a shell command, so it is refused
unless the caller passes `allow_pipe=True` (recipe input option `allow_pipe: true`, CLI
`--allow-pipe`). The reader copies an allowed pipe's output to a temporary file per process
(random access needs seeking). A local file whose name starts with 'pipe:' is named './pipe:...'.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augforge.core.errors import AugforgeError, BadInputError
from augforge.datasets.base import Sample
from augforge.datasets.decode import Preprocess
from augforge.datasets.keys import sanitize_key, unique_keys

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm")  # preference order
_META_NAME = re.compile(r"__[^/]*__($|/)")
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
_MAX_LABEL_BYTES = 1 << 20
PIPE = "pipe:"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_TAR_NAME = re.compile(r"([\w.-]+)\.tar\b")


def expand_braces(pattern: str) -> list[str]:
    """Expand `{a,b}` lists and `{000..009}` ranges (zero padding kept), left to right."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body, head, tail = match.group(1), pattern[: match.start()], pattern[match.end() :]
    rng = _RANGE.match(body)
    if rng:
        lo_text, hi_text = rng.groups()
        lo, hi = int(lo_text), int(hi_text)
        padded = any(t.lstrip("-").startswith("0") and len(t.lstrip("-")) > 1 for t in (lo_text, hi_text))
        width = max(len(lo_text), len(hi_text)) if padded else 0
        step = 1 if hi >= lo else -1
        items = [str(v).zfill(width) for v in range(lo, hi + step, step)]
    else:
        items = body.split(",")
    return [expanded for item in items for expanded in expand_braces(head + item + tail)]


def is_pipe(source: str, allow_pipe: bool) -> bool:
    """True for an allowed `pipe:` source, False for a local path; refused URLs raise (nothing runs)."""
    if source.startswith(PIPE):
        if not allow_pipe:
            raise AugforgeError(
                f"{source!r}: a pipe: source runs a shell command, refused unless explicitly allowed "
                "(allow_pipe=True, recipe input option `allow_pipe: true`, or --allow-pipe)")
        if not source[len(PIPE):].strip():
            raise AugforgeError(f"{source!r}: empty pipe: command")
        return True
    if _URL.match(source):
        raise AugforgeError(f"{source!r}: URLs are not opened, only local files; download the shards, or "
                            "read them through an explicitly allowed 'pipe:curl -s URL'")
    return False


def resolve_sources(spec: str | os.PathLike[str] | list[Any] | tuple[Any, ...], *,
                    allow_pipe: bool = False) -> list[str]:
    """Shard sources from a path, a brace pattern, a folder (its *.tar, sorted), an allowed
    `pipe:CMD` (braces expanded too) or a list of those."""
    items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    shards: list[str] = []
    for item in items:
        for text in expand_braces(os.fspath(item)):
            if is_pipe(text, allow_pipe):
                shards.append(text)
                continue
            path = Path(text)
            if path.is_dir():
                shards.extend(str(p) for p in sorted(path.iterdir()) if p.suffix == ".tar" and p.is_file())
            elif path.is_file():
                shards.append(text)
            else:
                raise AugforgeError(f"shard not found: {path}")
    if not shards:
        raise AugforgeError(f"no .tar shards found for {spec!r}")
    return shards


def resolve_shards(spec: str | os.PathLike[str] | list[Any] | tuple[Any, ...]) -> list[Path]:
    """Local shard paths from a path, a brace pattern, a folder (its *.tar, sorted) or a list."""
    return [Path(s) for s in resolve_sources(spec)]


def pipe_name(source: str, index: int) -> str:
    """The file name a pipe source stands for: its command's last '*.tar' word, else pipe-<index>.tar."""
    found = _TAR_NAME.findall(source)
    return f"{found[-1]}.tar" if found else f"pipe-{index:06d}.tar"


def _start_pipe(source: str, stdout: Any) -> subprocess.Popen[bytes]:
    """Start `pipe:CMD` through the shell with its stderr in a temporary file (proc.stderr), not a
    pipe: a command that writes more than a pipe holds (64 KiB) to stderr while its stdout is read
    would block on that write and never finish."""
    err = tempfile.TemporaryFile()  # noqa: SIM115 - handed to proc.stderr, closed by check_pipe
    try:
        proc = subprocess.Popen(source[len(PIPE):], shell=True, stdout=stdout, stderr=err)
    except BaseException:
        err.close()
        raise
    proc.stderr = err
    return proc


def open_pipe(source: str) -> subprocess.Popen[bytes]:
    """Start an allowed `pipe:CMD` source (CMD through the shell, as webdataset does); read its stdout."""
    return _start_pipe(source, subprocess.PIPE)


def check_pipe(proc: subprocess.Popen[bytes], source: str) -> None:
    """Wait for a pipe command; a non-zero exit status is an error naming the command."""
    status = proc.wait()
    stderr = b""
    if proc.stderr is not None:
        with proc.stderr:
            proc.stderr.seek(max(0, proc.stderr.seek(0, os.SEEK_END) - 4096))
            stderr = proc.stderr.read()
    if status != 0:
        tail = stderr.decode("utf-8", errors="replace").strip()[-300:]
        raise AugforgeError(f"{source!r} exited with status {status}" + (f": {tail}" if tail else ""))


def spool_pipe(source: str, target: Path) -> Path:
    """Copy an allowed pipe source's output to `target` (the reader needs a seekable file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        check_pipe(_start_pipe(source, fh), source)
    return target


@dataclass
class _Record:
    """One sample of the index: its members as ext -> (name, data offset, size)."""

    shard: int
    prefix: str
    members: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    problem: str | None = None


def _split_name(name: str) -> tuple[str, str] | None:
    """'dir/abc.seg.png' -> ('dir/abc', 'seg.png'); None for names without an extension."""
    head, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    if not dot or not stem:
        return None
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _is_unsafe(name: str) -> bool:
    return name.startswith("/") or ".." in name.replace("\\", "/").split("/")


def _scan_shard(shard_index: int, path: Path) -> list[_Record]:
    """Index one shard from its headers; a shard that cannot be indexed becomes a bad record."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        magic = handle.read(6)
    for prefix, codec in _COMPRESSED.items():
        if magic.startswith(prefix):
            return [_Record(shard_index, "__unreadable__", problem=f"{codec}-compressed shard; random "
                            "access needs an uncompressed .tar")]
    records: list[_Record] = []
    end = 0
    try:
        with tarfile.open(path, mode="r:") as tf:
            while (info := tf.next()) is not None:
                tf.members.clear()  # keep memory flat on big shards
                _add_member(records, shard_index, info, size)
                end = tf.offset
            end = tf.offset
    except (tarfile.TarError, OSError) as exc:
        if end >= size and records and records[-1].problem:
            return records  # the cut already marks the last record as truncated
        return [*records, _Record(shard_index, "__unreadable__", problem=f"unreadable tar data: {exc}")]
    if not _only_zeros(path, end):
        records.append(_Record(shard_index, "__unreadable__",
                               problem=f"corrupt or truncated tar: unreadable data after byte {end}"))
    return records


def _add_member(records: list[_Record], shard_index: int, info: tarfile.TarInfo, size: int) -> None:
    if not info.isreg() or ("/" not in info.name and _META_NAME.match(info.name)):
        return
    split = _split_name(info.name)
    if split is None:
        return
    prefix, ext = split
    if not records or records[-1].prefix != prefix or records[-1].shard != shard_index:
        records.append(_Record(shard_index, prefix))
    record = records[-1]
    if _is_unsafe(info.name):
        record.problem = record.problem or f"unsafe member name {info.name!r} (absolute or '..')"
    elif ext in record.members:
        record.problem = record.problem or f"duplicate member {info.name!r}"
    elif info.offset_data + info.size > size:
        record.problem = record.problem or f"member {info.name!r} is truncated"
    record.members.setdefault(ext, (info.name, info.offset_data, info.size))


def _only_zeros(path: Path, start: int) -> bool:
    """Whether the file holds only zero bytes (tar end blocks and padding) from `start` on."""
    with open(path, "rb") as handle:
        handle.seek(start)
        while chunk := handle.read(1 << 16):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _parse_int(text: bytes, what: str) -> int:
    try:
        value = text.decode("utf-8").strip()
        if not re.fullmatch(r"[+-]?\d+", value):
            raise ValueError
        return int(value)
    except ValueError:
        raise BadInputError(f"{what} is not an integer label: {text[:40]!r}") from None


class WebDatasetReader:
    """Random access to the samples of WebDataset shards, in shard order then member order."""

    kind = "webdataset"

    def __init__(self, shards: Any, *, preprocess: Preprocess | None = None,
                 allow_pipe: bool = False) -> None:
        if not isinstance(allow_pipe, bool):
            raise AugforgeError(f"allow_pipe must be true or false, got {allow_pipe!r}")
        self.sources = resolve_sources(shards, allow_pipe=allow_pipe)
        self.allow_pipe = allow_pipe
        self.preprocess = preprocess or Preprocess()
        self._records: list[_Record] | None = None
        self._keys: list[str] = []
        self._local: list[Path] | None = None
        self._spool: tempfile.TemporaryDirectory[str] | None = None

    @property
    def shards(self) -> list[Path]:
        """Local shard files; allowed pipe sources are run (once per process) into temporary files."""
        if self._local is None:
            local: list[Path] = []
            for i, source in enumerate(self.sources):
                if is_pipe(source, self.allow_pipe):
                    if self._spool is None:
                        self._spool = tempfile.TemporaryDirectory(prefix="augforge-pipe-")
                    target = Path(self._spool.name) / f"{i:06d}" / pipe_name(source, i)
                    local.append(spool_pipe(source, target))
                else:
                    local.append(Path(source))
            self._local = local
        return self._local

    def _index(self) -> list[_Record]:
        if self._records is None:
            records = [r for i, path in enumerate(self.shards) for r in _scan_shard(i, path)]
            bases = [sanitize_key(f"{self.shards[r.shard].stem}/{r.prefix}") if r.prefix == "__unreadable__"
                     else sanitize_key(r.prefix) for r in records]
            self._keys = unique_keys(bases, [sanitize_key(self.shards[r.shard].stem) for r in records])
            self._records = records
        return self._records

    def __getstate__(self) -> dict[str, Any]:
        # workers rebuild the index (and run allowed pipes themselves)
        return {**self.__dict__, "_records": None, "_keys": [], "_local": None, "_spool": None}

    def __len__(self) -> int:
        return len(self._index())

    def key(self, index: int) -> str:
        self._index()
        return self._keys[index]

    def source(self, index: int) -> str:
        """'<shard>:<member prefix>' of the record, without reading it (for quarantine records)."""
        return self._source(self._index()[index])

    def _source(self, record: _Record, name: str | None = None) -> str:
        return f"{self.shards[record.shard].name}:{name or record.prefix}"

    def read(self, index: int) -> Sample:
        record = self._index()[index]
        if record.problem:
            raise BadInputError(f"{self._source(record)}: {record.problem}")
        image_ext = next((e for e in IMAGE_EXTS if e in record.members), None)
        if image_ext is None:
            raise BadInputError(f"{self._source(record)}: no image member (has {sorted(record.members)})")
        name = record.members[image_ext][0]
        path = self.shards[record.shard]
        with open(path, "rb") as handle:
            def member(ext: str) -> bytes:
                _, offset, size = record.members[ext]
                handle.seek(offset)
                return handle.read(size)

            try:
                image, meta = self.preprocess.decode(member(image_ext))
                label = self._label(record, member, meta)
            except BadInputError as exc:
                raise BadInputError(f"{self._source(record, name)}: {exc}") from None
        meta.update(shard=path.name, members=sorted(record.members))
        return Sample(key=self._keys[index], image=image, label=label, source=self._source(record, name),
                      meta=meta)

    @staticmethod
    def _label(record: _Record, member: Any, meta: dict[str, Any]) -> int | None:
        """Label from .cls (int), else .txt when it is an int, else .json 'label' / 'cls'."""
        sizes = {ext: record.members[ext][2] for ext in ("cls", "txt", "json") if ext in record.members}
        too_big = [ext for ext, n in sizes.items() if n > _MAX_LABEL_BYTES]
        if too_big:
            raise BadInputError(f"label member .{too_big[0]} is larger than {_MAX_LABEL_BYTES} bytes")
        label: int | None = None
        if "json" in sizes:
            try:
                doc = json.loads(member("json"))
            except ValueError as exc:
                raise BadInputError(f"malformed .json member: {exc}") from None
            meta["json"] = doc
            if isinstance(doc, dict):
                value = doc.get("label", doc.get("cls"))
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise BadInputError(f".json label is not an integer: {value!r}")
                label = value
        if "txt" in sizes:
            text = member("txt")
            try:
                label = _parse_int(text, ".txt")
            except BadInputError:
                meta["txt"] = text.decode("utf-8", errors="replace")  # a caption, not a label
        if "cls" in sizes:
            label = _parse_int(member("cls"), ".cls")
        return label

    def __repr__(self) -> str:
        return f"WebDatasetReader({len(self.sources)} shards)"

"""The worker side: build one WebDataset shard from one index range under one (op, severity).

`run_shard` runs inside a Dask worker. It opens its own reader, reads only its range, batches
same-size pictures, applies the op with the recipe seed and the sample keys (so every sample's
output is independent of batching and placement), quantizes, encodes with fixed settings and
writes a reproducible tar: temporary name, fsync, sha256, sidecar record, atomic rename. Only a
small ShardResult goes back to the scheduler. Unreadable or malformed inputs are quarantined.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from augforge.core.errors import AugforgeError, BadInputError, InvalidInputError
from augforge.pipelines.fsio import HashingWriter, atomic_file, atomic_write, file_sha256
from augforge.pipelines.plan import ShardTask, canonical_json
from augforge.pipelines.pngenc import encode_png
from augforge.pipelines.tario import ShardTarWriter

SIDECAR_FORMAT = "augforge-shard/1"
# Fixed tar header fields, so the same samples always give the same bytes.
SHARD_MTIME = 946_684_800  # 2000-01-01T00:00:00Z
TAR_USER = "augforge"
TAR_MODE = 0o444

_READER_CACHE: dict[str, Any] = {}
_READER_CACHE_SIZE = 4
# Decoded input ranges a worker keeps: the driver submits the shards range by range, so the
# next tasks of a worker usually read the range it just read (under other ops).
Rows = list[tuple[int, Any, dict[str, Any] | None]]  # (index, sample or None, quarantine record or None)
_RANGE_CACHE: OrderedDict[tuple[str, str, int, int], Rows] = OrderedDict()
_RANGE_CACHE_SIZE = 2
# Decoded pixels kept in all (256 MiB): one range of 1000 ImageNet-sized pictures (150 MB), two of
# smaller ones; tasks come range by range, so the latest range is the one reused.
_RANGE_CACHE_BYTES = 1 << 28
_RANGE_SIZES: dict[tuple[str, str, int, int], int] = {}  # bytes of each cached range
# Input batches as tensors (uint8 or float), also shared by the tasks of one run: a range is cut
# into the same batches under every op (they depend only on its rows, shapes and batch_size), so
# each batch is converted once per worker; every use gets a copy, since an op may write into its
# input. Batches too large to keep many of (big pictures) are converted each time.
_BATCH_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_BATCH_CACHE_BYTES = 1 << 27


@dataclass(frozen=True)
class ShardConfig:
    """The part of a recipe a worker needs (small; sent with every task)."""

    out_dir: str
    reader: str
    path: str
    options: dict[str, Any]
    seed: int
    encoding: str = "png"
    jpeg_quality: int = 85
    png_compress_level: int = 3
    quantize: str = "truncate"
    batch_size: int = 32
    device: str = "cpu"
    torch_threads: int | None = 1
    plan_fingerprint: str = ""
    run_id: str = ""  # one generate call; decoded inputs are shared between its tasks only


@dataclass
class ShardResult:
    """What a finished (or verified) shard reports back: counts, checksum, keys, quarantine."""

    path: str
    op: str
    severity: int
    shard: int
    start: int
    stop: int
    count: int
    sha256: str
    size: int
    keys: list[str]
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str = ""
    resumed: bool = False
    seconds: float = 0.0

    @property
    def group(self) -> str:
        return f"{self.op}/{self.severity}"


def sidecar_path(tar: Path) -> Path:
    """`shard-000000.tar` -> `shard-000000.tar.json`."""
    return tar.with_name(tar.name + ".json")


def _jsonable(value: Any) -> Any:
    """json.dumps fallback for numpy scalars/arrays and other parameter values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def dumps_sorted(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, fixed separators)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable).encode("utf-8")


class SampleJson:
    """The json member of a sample: the bytes of `dumps_sorted(meta)` for meta = {key, label,
    source} + this task's constants (op, severity, preset, seed, params), built from a template
    made once per task instead of a full JSON encoding per sample."""

    def __init__(self, op: str, severity: int, preset: str, seed: int, params: Any) -> None:
        fixed = dumps_sorted({"op": op, "params": params, "preset": preset, "seed": seed,
                              "severity": severity})
        self._middle = b"," + fixed[1:-1] + b',"source":'  # keys sort: key, label, op..severity, source

    def __call__(self, key: str, label: Any, source: Any) -> bytes:
        return b"".join((b'{"key":', _json_value(key), b',"label":', _json_value(label), self._middle,
                         _json_value(source), b"}"))


def _json_value(value: Any) -> bytes:
    """One value as `dumps_sorted` writes it, with fast paths for str, int and None."""
    kind = type(value)
    if kind is str:
        return json.encoder.encode_basestring_ascii(value).encode("ascii")
    if kind is int:
        return b"%d" % value
    if value is None:
        return b"null"
    return dumps_sorted(value)


def _reader_ident(cfg: ShardConfig) -> str:
    return canonical_json([cfg.reader, cfg.path, cfg.options])


def get_reader(cfg: ShardConfig) -> Any:
    """This process's reader for cfg's input (built once, reused by later tasks)."""
    from augforge.datasets.readers import open_reader

    ident = _reader_ident(cfg)
    reader = _READER_CACHE.get(ident)
    if reader is None:
        if len(_READER_CACHE) >= _READER_CACHE_SIZE:
            _READER_CACHE.pop(next(iter(_READER_CACHE)))
        reader = open_reader(cfg.reader, cfg.path, **cfg.options)
        _READER_CACHE[ident] = reader
    return reader


def encode_image(pixels: np.ndarray, encoding: str, jpeg_quality: int = 85, png_level: int = 3) -> bytes:
    """uint8 HWC -> PNG (zlib level `png_level`, no optimize pass) or JPEG (`jpeg_quality`,
    optimized Huffman tables like the ImageNet-C saver; pixels do not depend on it) bytes.
    PNG goes through pngenc.encode_png: Pillow's bytes without Pillow's Python overhead."""
    from PIL import Image

    if encoding == "png":
        return encode_png(pixels, png_level)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    if encoding == "jpg":
        image.save(buf, format="JPEG", quality=jpeg_quality, optimize=True)
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    return buf.getvalue()


def _record(index: int, key: str | None, source: str | None, reason: str, stage: str) -> dict[str, Any]:
    return {"index": index, "key": key, "source": source, "reason": reason, "stage": stage}


def _safe_key(reader: Any, index: int) -> str | None:
    try:
        return str(reader.key(index))
    except Exception:  # a reader that cannot even name the record: keep the index only
        return None


def _source_of(reader: Any, index: int, exc: BaseException, key: str | None) -> str | None:
    """Where an unreadable record lives: the reader's `source(index)` or the error's `source`
    attribute where they exist, else its key (readers also name the source in the message)."""
    finder = getattr(reader, "source", None)
    if callable(finder):
        with contextlib.suppress(Exception):
            return str(finder(index))
    return getattr(exc, "source", None) or key


def _check_pixels(image: Any) -> str | None:
    """Why a decoded picture breaks the contract (uint8 HWC, C in 1 or 3), or None."""
    if not isinstance(image, np.ndarray):
        return f"decoded image is a {type(image).__name__}, not a numpy array"
    if image.dtype != np.uint8:
        return f"decoded image has dtype {image.dtype}, expected uint8"
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        return f"decoded image has shape {tuple(image.shape)}, expected (H, W, 1 or 3)"
    return None


class _Batcher:
    """Groups pictures of one shape and corrupts them batch by batch."""

    def __init__(self, task: ShardTask, cfg: ShardConfig) -> None:
        import torch

        from augforge.core.registry import build_op

        self.op = build_op(task.op, task.severity, preset=task.preset, **task.params)
        self.device = torch.device(cfg.device)
        self.cfg = cfg
        self.task = task
        self.params = self.op.params  # effective constants, stored per sample
        # The op's 8-bit kernel equals its float kernel + 'truncate' quantisation (Op contract), so
        # with that quantisation the batch skips the float round trip; 'round' needs the floats.
        self.uint8 = cfg.quantize == "truncate" and self.op.takes_uint8()
        self.sample_json = SampleJson(task.op, task.severity, task.preset, cfg.seed, self.params)
        self.pending: dict[tuple[int, ...], list[tuple[int, Any]]] = {}
        self.done: dict[int, tuple[str, bytes, bytes]] = {}
        self.quarantined: list[dict[str, Any]] = []

    def add(self, index: int, sample: Any) -> None:
        shape = sample.image.shape
        bucket = self.pending.setdefault(shape, [])
        bucket.append((index, sample))
        if len(bucket) >= self.cfg.batch_size:
            self.flush(shape)

    def flush(self, shape: tuple[int, ...] | None = None) -> None:
        shapes = [shape] if shape is not None else list(self.pending)
        for s in shapes:
            batch = self.pending.pop(s, [])
            if batch:
                self._run(batch)

    def _corrupt(self, batch: list[tuple[int, Any]]) -> np.ndarray:
        from augforge.core.tensors import to_float, to_uint8, to_uint8_batch, uint8_to_numpy

        keys = [s.key for _, s in batch]
        if self.uint8:
            x = batch_tensor(self.cfg, batch, to_uint8_batch).to(self.device)
            return uint8_to_numpy(self.op(x, self.cfg.seed, keys=keys))
        out = self.op(batch_tensor(self.cfg, batch, to_float).to(self.device), self.cfg.seed, keys=keys)
        return to_uint8(out, mode=self.cfg.quantize)

    def _run(self, batch: list[tuple[int, Any]]) -> None:
        try:
            pixels = self._corrupt(batch)
        except InvalidInputError as exc:
            if len(batch) > 1:  # find the offending picture(s); outputs do not depend on batching
                for item in batch:
                    self._run([item])
                return
            index, sample = batch[0]
            self.quarantined.append(_record(index, sample.key, sample.source, str(exc), "op"))
            return
        for (index, sample), arr in zip(batch, pixels, strict=True):
            data = encode_image(arr, self.cfg.encoding, self.cfg.jpeg_quality, self.cfg.png_compress_level)
            self.done[index] = (sample.key, data, self.sample_json(sample.key, sample.label, sample.source))


def batch_tensor(cfg: ShardConfig, batch: list[tuple[int, Any]], convert: Any) -> Any:
    """`convert([images])` for a batch of (row, sample), from the run's batch cache where it was made
    before (a fresh copy each time: the caller may hand it to an op that writes into it)."""
    if not cfg.run_id:
        return convert([s.image for _, s in batch])
    key = (cfg.run_id, _reader_ident(cfg), convert.__name__, tuple(i for i, _ in batch))
    cached = _BATCH_CACHE.get(key)
    if cached is not None:
        _BATCH_CACHE.move_to_end(key)
        return cached.clone()
    cached = convert([s.image for _, s in batch])
    if cached.numel() * cached.element_size() * 16 > _BATCH_CACHE_BYTES:
        return cached  # a batch of big pictures: too few would fit to be reused
    for stale in [k for k in _BATCH_CACHE if k[0] != cfg.run_id]:  # an earlier run's batches
        del _BATCH_CACHE[stale]
    _BATCH_CACHE[key] = cached
    while sum(t.numel() * t.element_size() for t in _BATCH_CACHE.values()) > _BATCH_CACHE_BYTES:
        _BATCH_CACHE.popitem(last=False)
    return cached.clone()


class _BlockWriter:
    """Collects small writes and passes them on in blocks of about `block` bytes: one hashing and
    file write per block instead of one per sample (same bytes, less Python per picture). 128 KiB
    measured best: larger blocks fall out of the CPU cache between the join, the hash and the write."""

    def __init__(self, raw: Any, block: int = 1 << 17) -> None:
        self.raw, self.block = raw, block
        self.parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        self.pending += len(data)
        if self.pending >= self.block:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.parts:
            self.raw.write(b"".join(self.parts))
            self.parts, self.pending = [], 0


def write_shard(
    target: Path,
    samples: list[tuple[str, bytes, bytes]],
    ext: str,
    sidecar: dict[str, Any],
) -> tuple[str, int]:
    """Write the tar under a temporary name, then its sidecar (atomic), then fsync and rename
    the tar into place. Returns (sha256, size). The sidecar gets 'sha256', 'size' and 'count' filled in.
    The tar bytes are webdataset.TarWriter's (ShardTarWriter writes them faster)."""
    with atomic_file(target) as fh:
        hashing = HashingWriter(fh)
        blocks = _BlockWriter(hashing)
        writer = ShardTarWriter(blocks, mtime=SHARD_MTIME, user=TAR_USER, group=TAR_USER, mode=TAR_MODE)
        for key, data, meta in samples:
            writer.write(key, {ext: data, "json": meta})
        writer.close()
        blocks.flush()
        sha, size = hashing.hexdigest(), hashing.size
        sidecar.update(sha256=sha, size=size, count=len(samples))
        atomic_write(sidecar_path(target), dumps_sorted(sidecar))  # before the tar's rename
    return sha, size


_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


def _check_key(key: Any) -> str | None:
    """Why a reader's key cannot name tar members (the readers sanitize theirs), or None."""
    if isinstance(key, str) and _SAFE_KEY.fullmatch(key):
        return None
    return f"unsafe sample key {key!r}: keys are '/'-separated [A-Za-z0-9_-] names (no dots, no '..')"


def output_path(out_dir: str | Path, rel: str) -> Path:
    """`out_dir / rel` with its folder made; refuses a `rel` that is absolute or has '..', and a
    folder that resolves outside `out_dir` (a symlink inside the output pointing elsewhere)."""
    base = Path(out_dir).resolve()
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise AugforgeError(f"refusing to write {rel!r}: absolute or with '..'")
    target = base / rel
    real = target.parent.resolve()  # links of the existing part followed, before anything is made
    if real != base and base not in real.parents:
        raise AugforgeError(f"refusing to write {rel}: its folder resolves to {real}, outside the output "
                            f"directory {base} (a symlink?)")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _read_rows(reader: Any, start: int, stop: int) -> Rows:
    """(index, sample, None) per readable row, (index, None, quarantine record) per bad one."""
    rows: Rows = []
    for index in range(start, stop):
        try:
            sample = reader.read(index)
        except BadInputError as exc:
            key = _safe_key(reader, index)
            source = _source_of(reader, index, exc, key)
            rows.append((index, None, _record(index, key, source, str(exc), "read")))
            continue
        problem = _check_pixels(sample.image) or _check_key(sample.key)
        if problem is not None:
            rows.append((index, None, _record(index, sample.key, sample.source, problem, "read")))
            continue
        rows.append((index, sample, None))
    return rows


def read_range(cfg: ShardConfig, start: int, stop: int) -> Rows:
    """Rows [start, stop) of cfg's input, decoded once per worker and run for all the ops that
    use them (a small LRU of ranges, keyed by the run so a later run re-reads changed inputs;
    samples are never modified, so sharing them changes no byte)."""
    key = (cfg.run_id, _reader_ident(cfg), start, stop)
    rows = _RANGE_CACHE.get(key)
    if rows is not None:
        _RANGE_CACHE.move_to_end(key)
        return rows
    rows = _read_rows(get_reader(cfg), start, stop)
    size = sum(s.image.nbytes for _, s, _ in rows if s is not None)
    if cfg.run_id and size <= _RANGE_CACHE_BYTES:
        _RANGE_CACHE[key] = rows
        _RANGE_SIZES[key] = size
        while len(_RANGE_CACHE) > _RANGE_CACHE_SIZE or sum(_RANGE_SIZES.values()) > _RANGE_CACHE_BYTES:
            _RANGE_SIZES.pop(_RANGE_CACHE.popitem(last=False)[0])  # oldest first; the new range fits
    return rows


def run_shard(task: ShardTask, cfg: ShardConfig) -> ShardResult:
    """Build shard `task` (a Dask task): read, corrupt, encode, write; return a small result."""
    import torch

    started = time.perf_counter()
    if cfg.torch_threads and torch.get_num_threads() != cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    if task.choices is None:
        batcher: Any = _Batcher(task, cfg)
    else:  # mode random: one drawn op per sample
        from augforge.pipelines.random_shards import RandomBatcher

        batcher = RandomBatcher(task, cfg)
    for index, sample, bad in read_range(cfg, task.start, task.stop):
        if bad is not None:
            batcher.quarantined.append(dict(bad))
        else:
            batcher.add(index, sample)
    batcher.flush()
    ordered = [batcher.done[i] for i in sorted(batcher.done)]
    keys = [k for k, _, _ in ordered]
    if len(set(keys)) != len(keys):
        raise AugforgeError(f"{task.path}: the reader returned duplicate sample keys in rows "
                            f"[{task.start}, {task.stop})")
    quarantined = sorted(batcher.quarantined, key=lambda r: r["index"])
    sidecar: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "path": task.path,
        "op": task.op,
        "severity": task.severity,
        "preset": task.preset,
        "params": task.params,
        "shard": task.shard,
        "start": task.start,
        "stop": task.stop,
        "keys": keys,
        "quarantined": quarantined,
        "fingerprint": task.fingerprint,
        "plan_fingerprint": cfg.plan_fingerprint,
    }
    sha, size = write_shard(output_path(cfg.out_dir, task.path), ordered, cfg.encoding, sidecar)
    return ShardResult(
        path=task.path, op=task.op, severity=task.severity, shard=task.shard, start=task.start,
        stop=task.stop, count=len(keys), sha256=sha, size=size, keys=keys, quarantined=quarantined,
        fingerprint=task.fingerprint, resumed=False, seconds=time.perf_counter() - started,
    )


def verify_shard(out_dir: Path, task: ShardTask,
                 manifest_sha: str | None = None) -> tuple[ShardResult | None, str]:
    """Check an existing shard of `task`: tar + sidecar present, same fingerprint and range,
    size and sha256 match (and equal `manifest_sha`, the manifest's record, where given).
    Returns (result, '') when it can be reused, else (None, why)."""
    tar = out_dir / task.path
    side = sidecar_path(tar)
    if not tar.is_file():
        return None, "missing"
    if not side.is_file():
        return None, "no sidecar record"
    try:
        info = json.loads(side.read_bytes())
        ok_fields = (
            info.get("format") == SIDECAR_FORMAT
            and info.get("fingerprint") == task.fingerprint
            and (info.get("path"), info.get("start"), info.get("stop")) == (task.path, task.start, task.stop)
        )
        if not ok_fields:
            return None, "made by a different recipe or version (fingerprint differs)"
        keys, quarantined = list(info["keys"]), list(info["quarantined"])
        if info["count"] != len(keys) or len(keys) + len(quarantined) != task.stop - task.start:
            return None, "sidecar counts do not add up"
        if tar.stat().st_size != info["size"]:
            return None, "size differs from the sidecar record"
        sha = file_sha256(tar)
        if sha != info["sha256"]:
            return None, "sha256 differs from the sidecar record"
        if manifest_sha is not None and sha != manifest_sha:
            return None, "sha256 differs from the manifest"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"unreadable sidecar record ({exc})"
    result = ShardResult(
        path=task.path, op=task.op, severity=task.severity, shard=task.shard, start=task.start,
        stop=task.stop, count=len(keys), sha256=sha, size=int(info["size"]), keys=keys,
        quarantined=quarantined, fingerprint=task.fingerprint, resumed=True,
    )
    return result, ""

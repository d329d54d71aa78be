"""Released formats, exported from a finished dataset's shards: ImageNet-C folders, CIFAR-10-C arrays.

The shards are the ground truth. An export reads `manifest.json`, checks each shard's sha256
against it, and reads the shards with `tarfile` (PNG members decoded by PIL, JSON members by
`json`; nothing is ever unpickled). It writes under `<dest>/<format>/`:

- `imagenet-c`: `<op>/<severity>/<source path>` JPEGs, quality 85 with `optimize=True`, the saver
  of ImageNet-C / Tiny-ImageNet-C (reference §0.3). The shards already hold the truncated uint8
  pixels, so this adds exactly the reference's one JPEG pass. With the folder reader the source
  path is `<class>/<file>` (flat inputs: `<file>`); other readers give `<key>.jpg`. A file whose
  name does not end in .jpg/.jpeg gets `.jpg` appended (`cat.png` -> `cat.png.jpg`), so the
  content type is never hidden and no two inputs can share a name by accident.
- `cifar10-c`: `<op>.npy`, uint8 (5*N, H, W, 3), severity-major (all N inputs of severity 1 in
  input order, then severity 2, ...), and `labels.npy`, the N labels repeated 5 times, uint8.
  The uint8 labels dtype is the released one: hendrycks/robustness
  `ImageNet-C/create_c/make_cifar_c.py` saves `np.array(labels).astype(np.uint8)` (RobustBench's
  `load_cifar10c` loads the file with a plain `np.load` and keeps that dtype). Gray pictures
  (reader option mode: L) are stored with their value in all three channels (lossless; channel 0
  gives them back), because every CIFAR-10-C consumer expects (..., 3).

`export.json` in the format folder records the export; it is written with `complete: false`
first and `complete: true` last, so an interrupted export is wiped and redone by the next run,
and a complete one of the same shards is skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from augforge.core.errors import AugforgeError
from augforge.pipelines.fsio import atomic_file, atomic_write, file_sha256, fsync_dir, temp_name

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("imagenet-c", "cifar10-c")
RECORD_NAME = "export.json"
RECORD_FORMAT = "augforge-export/1"
RELEASED_JPEG_QUALITY = 85  # ImageNet-C's saver: img.save(path, quality=85, optimize=True)
SEVERITIES = (1, 2, 3, 4, 5)
JPEG_SUFFIXES = (".jpg", ".jpeg")


class ExportError(AugforgeError, RuntimeError):
    """A dataset that cannot be exported in the asked format, or damaged shards."""


@dataclass
class ExportSummary:
    """What an export wrote (or found already written)."""

    format: str
    dest: Path  # <out>/<format>
    files: int
    images: int
    elapsed_s: float
    skipped: bool = False  # an identical complete export was already there
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.skipped:
            return f"{self.format}: already exported to {self.dest} (same shards), nothing to do"
        line = (f"{self.format}: {self.images} images in {self.files} files -> {self.dest} "
                f"({self.elapsed_s:.1f} s)")
        return "\n".join([line, *(f"  note: {n}" for n in self.notes)])


def format_problems(fmt: str, *, encoding: str, quantize: str,
                    levels: Mapping[str, Sequence[int]]) -> list[str]:
    """Why shards written with these settings cannot give format `fmt` faithfully ([] = they can)."""
    if fmt not in FORMATS:
        return [f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}"]
    problems = []
    if encoding != "png":
        why = ("re-encoding JPEG shards would store a double JPEG; the released files carry exactly one "
               "quality-85 pass" if fmt == "imagenet-c"
               else "the released arrays hold pixels without JPEG loss")
        problems.append(f"{fmt} needs lossless shards (output.encoding: png, got {encoding!r}): {why}")
    if quantize != "truncate":
        problems.append(f"{fmt} needs output.quantize: truncate (got {quantize!r}): the reference savers "
                        "truncate with np.uint8; rounding moves values up by one")
    if fmt == "cifar10-c":
        for op, lv in levels.items():
            if sorted(lv) != list(SEVERITIES):
                problems.append(f"cifar10-c stores severities 1-5 of each op in one array; "
                                f"{op} has {sorted(lv)}")
    return problems


# --- reading shards ------------------------------------------------------------------------------


def _decode_png(data: bytes, where: str) -> np.ndarray:
    """A PNG member -> uint8 (H, W) for gray or (H, W, 3) for RGB."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
            img.load()
            if img.mode not in ("L", "RGB"):
                raise ExportError(f"{where}: PNG mode {img.mode!r}, expected L or RGB")
            return np.asarray(img)
    except ExportError:
        raise
    except Exception as exc:  # PIL raises many types on damaged data
        raise ExportError(f"{where}: unreadable PNG member: {type(exc).__name__}: {exc}") from None


def iter_shard(root: Path, entry: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """(json record, pixels) of every sample of one manifest shard, in stored order, after
    checking its sha256 against the manifest."""
    path = root / entry["path"]
    if not path.is_file():
        raise ExportError(f"{entry['path']}: shard missing; rerun `augforge generate` to rebuild it")
    if file_sha256(path) != entry["sha256"]:
        raise ExportError(f"{entry['path']}: sha256 differs from the manifest (damaged or replaced); "
                          "rerun `augforge generate` to rebuild it")
    pending: dict[str, dict[str, bytes]] = {}
    seen = 0
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            key, _, ext = member.name.rpartition(".")
            handle = tar.extractfile(member) if member.isreg() else None
            if handle is None or ext not in ("png", "json"):
                raise ExportError(f"{entry['path']}: unexpected member {member.name!r} (PNG shards hold "
                                  "<key>.png and <key>.json only)")
            parts = pending.setdefault(key, {})
            parts[ext] = handle.read()
            if len(parts) == 2:
                del pending[key]
                where = f"{entry['path']}:{key}"
                meta = json.loads(parts["json"])
                if meta.get("key") != key or key != entry["keys"][seen]:
                    raise ExportError(f"{where}: sample out of order or mislabelled (manifest says "
                                      f"{entry['keys'][seen]!r})")
                seen += 1
                yield meta, _decode_png(parts["png"], where)
    if pending or seen != entry["count"]:
        raise ExportError(f"{entry['path']}: {seen} complete samples, the manifest says {entry['count']}")


# --- imagenet-c -----------------------------------------------------------------------------------


def released_name(meta: Mapping[str, Any], by_source: bool) -> str:
    """Relative file name of a sample in the ImageNet-C layout (below <op>/<severity>/)."""
    rel = str(meta["source"]) if by_source and meta.get("source") else f"{meta['key']}.jpg"
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise ExportError(f"sample {meta.get('key')!r}: unsafe file name {rel!r} (absolute or with '..')")
    if not parts[-1].lower().endswith(JPEG_SUFFIXES):
        rel += ".jpg"
    return rel


def encode_released_jpeg(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) / (H, W, 3) -> JPEG bytes as the ImageNet-C saver wrote them (PIL, q85, optimize)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=RELEASED_JPEG_QUALITY, optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class JpegJob:
    """Export one shard as ImageNet-C JPEGs (one task)."""

    root: str
    entry: dict[str, Any]
    dest: str
    by_source: bool


def export_jpeg_shard(job: JpegJob) -> dict[str, int]:
    """Write every sample of one shard to <dest>/<op>/<severity>/<name>; exclusive creation, so
    two samples mapped to one name are an error rather than a silent overwrite."""
    root, entry = Path(job.root), job.entry
    base = Path(job.dest) / entry["op"] / str(entry["severity"])
    made: set[Path] = set()
    count = 0
    for meta, pixels in iter_shard(root, entry):
        rel = released_name(meta, job.by_source)
        target = base / rel
        if target.parent not in made:
            real, dest = target.parent.resolve(), Path(job.dest).resolve()
            if dest not in real.parents:  # a symlinked folder inside the export pointing elsewhere
                raise ExportError(f"{entry['op']}/{entry['severity']}/{rel}: its folder resolves to {real}, "
                                  f"outside {dest}; refusing to write there")
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            with open(target, "xb") as fh:
                fh.write(encode_released_jpeg(pixels))
        except FileExistsError:
            raise ExportError(f"{entry['op']}/{entry['severity']}/{rel} would be written twice (second: "
                              f"sample {meta['key']!r}); two inputs map to one file name") from None
        count += 1
    return {"images": count}


# --- cifar10-c ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayJob:
    """Export the five severities of one op as one CIFAR-10-C array (one task)."""

    root: str
    op: str
    entries: list[dict[str, Any]]  # the op's shards, severity 1..5, each in index order
    n_inputs: int
    dest: str


def export_op_array(job: ArrayJob) -> dict[str, Any]:
    """Write <dest>/<op>.npy; returns the picture size, the labels of the N inputs (None when the
    samples carry none) and how many gray pictures were widened to three channels."""
    from numpy.lib.format import open_memmap

    root, n = Path(job.root), job.n_inputs
    target = Path(job.dest) / f"{job.op}.npy"
    tmp = temp_name(target)
    array: np.ndarray | None = None
    labels: list[int | None] = [None] * n
    first_labels: list[int | None] | None = None
    gray = 0
    try:
        for severity in SEVERITIES:
            for entry in (e for e in job.entries if e["severity"] == severity):
                if entry["count"] != entry["stop"] - entry["start"]:
                    rows = entry["stop"] - entry["start"]
                    raise ExportError(f"{entry['path']}: {entry['count']} of {rows} rows written; "
                                      "cifar10-c needs every input")
                for row, (meta, pixels) in enumerate(iter_shard(root, entry), start=entry["start"]):
                    if array is None:
                        shape = (len(SEVERITIES) * n, *pixels.shape[:2], 3)
                        array = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                    if pixels.shape[:2] != array.shape[1:3]:
                        raise ExportError(
                            f"cifar10-c needs pictures of one size: {entry['path']}:{meta['key']} is "
                            f"{pixels.shape[0]}x{pixels.shape[1]}, earlier ones are "
                            f"{array.shape[1]}x{array.shape[2]}")
                    gray += pixels.ndim == 2
                    array[(severity - 1) * n + row] = pixels[..., None] if pixels.ndim == 2 else pixels
                    labels[row] = meta.get("label")
            if first_labels is None:
                first_labels = list(labels)
            elif labels != first_labels:
                raise ExportError(f"{job.op}: labels differ between severities; the shards do not line up")
        if array is None:
            raise ExportError(f"{job.op}: no samples to export")
        size = [int(v) for v in array.shape[1:3]]
        array.flush()
        del array  # closes the memory map before the rename
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return {"size": size, "labels": first_labels, "gray": gray}


def _save_npy(target: Path, array: np.ndarray) -> None:
    """np.save (no pickles) to a temporary name, fsync, rename."""
    with atomic_file(target) as fh:
        np.save(fh, array, allow_pickle=False)


def _labels_array(labels: list[int | None]) -> np.ndarray | None:
    """The released labels.npy contents (uint8, repeated per severity), or None without labels."""
    if any(v is None for v in labels):
        return None
    values = np.asarray(labels, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() > 255):
        raise ExportError(f"labels range {values.min()}..{values.max()} does not fit the released uint8 "
                          "labels.npy")
    return np.tile(values.astype(np.uint8), len(SEVERITIES))


# --- running --------------------------------------------------------------------------------------


def _run_jobs(fn: Callable[[Any], Any], jobs: list[Any], client: Any, workers: int,
              progress: Any) -> list[Any]:
    """Results of fn(job) for every job, in job order: on a Dask client, a process pool, or here."""
    results: dict[int, Any] = {}

    def done(i: int, value: Any) -> None:
        results[i] = value
        if progress is not None:
            progress()

    if client is not None:
        from distributed import as_completed

        futures = client.map(fn, jobs, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            done(index[future.key], future.result())  # re-raises the task's exception
    elif workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures import as_completed as pool_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            pending = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            for fut in pool_completed(pending):
                done(pending[fut], fut.result())
    else:
        for i, job in enumerate(jobs):
            done(i, fn(job))
    return [results[i] for i in range(len(jobs))]


def _check_complete(manifest: Mapping[str, Any], fmt: str) -> tuple[list[dict[str, Any]], int]:
    """The manifest's shards after the format's checks (settings, accounting); raises ExportError."""
    recipe = manifest.get("recipe", {})
    out = recipe.get("output", {})
    shards = list(manifest.get("shards", []))
    levels: dict[str, list[int]] = {}
    for s in shards:
        levels.setdefault(s["op"], [])
        if s["severity"] not in levels[s["op"]]:
            levels[s["op"]].append(s["severity"])
    problems = format_problems(fmt, encoding=out.get("encoding", "png"),
                               quantize=out.get("quantize", "truncate"), levels=levels)
    n_inputs = int(manifest.get("input", {}).get("count", 0))
    if fmt == "cifar10-c":
        bad = int(manifest.get("quarantine", {}).get("inputs", 0))
        if bad:
            problems.append(f"cifar10-c needs every input in every array; {bad} input(s) were quarantined "
                            "(see quarantine.jsonl), so the rows of the arrays and labels.npy would not "
                            "line up")
        short = [f"{g['op']}/{g['severity']}" for g in manifest.get("accounting", {}).get("groups", [])
                 if g["written"] != n_inputs]
        if short and not bad:
            problems.append(f"cifar10-c needs all {n_inputs} inputs per op and severity; "
                            f"{short[:3]} have fewer")
    if not shards:
        problems.append("the dataset has no shards")
    if recipe.get("mode") == "random":  # one drawn op per sample, not every op x severity
        problems = [f"{fmt} needs every op x severity of every input (a mode 'grid' recipe); this dataset "
                    "was written in mode 'random'"]
    if problems:
        raise ExportError(f"cannot export as {fmt}:\n  - " + "\n  - ".join(problems))
    return shards, n_inputs


def _record(manifest: Mapping[str, Any], fmt: str, root: Path) -> dict[str, Any]:
    shas = hashlib.sha256("".join(s["sha256"] for s in manifest["shards"]).encode()).hexdigest()
    return {"format": RECORD_FORMAT, "export": fmt, "source": str(root),
            "fingerprint": manifest.get("fingerprint"), "shards_sha256": shas, "complete": False}


def _prepare(dest: Path, record: dict[str, Any]) -> bool:
    """True when an identical complete export is there; else make `dest` empty (only if it is
    ours or empty) and mark it incomplete."""
    path = dest / RECORD_NAME
    old: dict[str, Any] | None = None
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExportError(f"{path} is unreadable ({exc}); remove {dest} to export again") from None
    if old is not None and old.get("format") == RECORD_FORMAT:
        same = {k: old.get(k) for k in ("export", "fingerprint", "shards_sha256")} == {
            k: record[k] for k in ("export", "fingerprint", "shards_sha256")}
        if same and old.get("complete") is True:
            return True
        shutil.rmtree(dest)
    elif dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and was not written by `augforge export`; remove it or choose "
                          "another --out")
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(record, indent=1) + "\n").encode())
    return False


def export_dataset(root: str | Path, fmt: str, out: str | Path | None = None, *, client: Any = None,
                   workers: int | None = None, console: Console | None = None) -> ExportSummary:
    """Export the finished dataset at `root` (an `augforge generate` output) as `fmt` under
    `<out or root>/<fmt>/`. Work runs on `client` (a Dask Client) when given, else in `workers`
    spawned processes (default: one per CPU), else in this process (workers=1). With `console`,
    a progress bar is shown there."""
    from augforge.inspection import load_manifest

    started = time.perf_counter()
    root = Path(root).expanduser().resolve()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    manifest = load_manifest(root)
    shards, n_inputs = _check_complete(manifest, fmt)
    dest = Path(out if out is not None else root).expanduser().resolve() / fmt
    if dest == root or dest in root.parents:
        raise ExportError(f"{dest} would contain the dataset {root} itself; choose another --out")
    record = _record(manifest, fmt, root)
    if _prepare(dest, record):
        return ExportSummary(fmt, dest, 0, 0, time.perf_counter() - started, skipped=True)
    workers = workers or os.cpu_count() or 1
    notes: list[str] = []
    if fmt == "imagenet-c":
        by_source = manifest.get("input", {}).get("reader") == "folder"
        jobs: list[Any] = [JpegJob(str(root), dict(s), str(dest), by_source) for s in shards]
        results = _execute(export_jpeg_shard, jobs, client, workers, console, fmt)
        images = sum(r["images"] for r in results)
        files = images
        if not by_source:
            reader = manifest.get("input", {}).get("reader")
            notes.append(f"the {reader!r} reader has no file names: files are named <key>.jpg, "
                         "without class folders")
    else:
        ops = list(dict.fromkeys(s["op"] for s in shards))
        jobs = [ArrayJob(str(root), op, [dict(s) for s in shards if s["op"] == op], n_inputs, str(dest))
                for op in ops]
        results = _execute(export_op_array, jobs, client, workers, console, fmt)
        sizes = {tuple(r["size"]) for r in results}
        if len(sizes) > 1:
            raise ExportError(f"cifar10-c needs one picture size across ops, found {sorted(sizes)}")
        labels = results[0]["labels"]
        if any(r["labels"] != labels for r in results):
            raise ExportError("labels differ between ops; the shards do not line up")
        images, files = 5 * n_inputs * len(ops), len(ops)
        array = _labels_array(labels)
        if array is None:
            notes.append("the samples carry no labels: labels.npy is not written")
        else:
            _save_npy(dest / "labels.npy", array)
            files += 1
        gray = sum(r["gray"] for r in results)
        if gray:
            notes.append(f"{gray} gray pictures are stored with their value in all three channels")
    elapsed = time.perf_counter() - started
    record.update(complete=True, files=files, images=images, notes=notes,
                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), elapsed_s=round(elapsed, 3))
    atomic_write(dest / RECORD_NAME, (json.dumps(record, indent=1) + "\n").encode())
    return ExportSummary(fmt, dest, files, images, elapsed, notes=notes)


def _execute(fn: Callable[[Any], Any], jobs: list[Any], client: Any, workers: int, console: Console | None,
             fmt: str) -> list[Any]:
    """_run_jobs with a progress bar on `console` when there is one."""
    if console is None:
        return _run_jobs(fn, jobs, client, workers, None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (f"export {fmt}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as view:
        bar = view.add_task(fmt, total=len(jobs))
        return _run_jobs(fn, jobs, client, workers, lambda: view.advance(bar))

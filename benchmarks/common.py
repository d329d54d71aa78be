"""Shared benchmark helpers: sample pictures, timing, tables and JSON output."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))  # for the imagecorruptions shim in tests/


def sample_pictures(size: int, count: int) -> np.ndarray:
    """`count` uint8 (size, size, 3) crops of the bundled photos (tiled when count is large)."""
    paths = sorted((ROOT / "datasets" / "samples").rglob("*.png"))
    pics = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        scale = size / min(im.size)
        side = (max(size, round(im.width * scale)), max(size, round(im.height * scale)))
        im = im.resize(side, Image.BILINEAR)
        a = np.asarray(im)
        pics.append(a[:size, :size])
        pics.append(a[-size:, -size:])
    out = [pics[i % len(pics)] for i in range(count)]
    return np.stack(out)


def best_time(fn: Callable[[], object], *, repeat: int = 3, min_time: float = 0.0) -> float:
    """Best wall time of `repeat` runs (after one warm-up run), seconds."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        if min_time and best > min_time:
            break
    return best


def environment() -> dict[str, object]:
    """Where a benchmark ran."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def geomean(values: list[float]) -> float:
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else float("nan")


def write_json(name: str, payload: dict[str, object], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain aligned table on stdout."""
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


class OtherLoad:
    """CPU time that processes outside this one and its reaped children used meanwhile, as a
    fraction of the machine (0 = idle apart from us, 1 = every core busy with others): says
    whether a timing was taken on a shared machine. Linux only (/proc/stat); None elsewhere."""

    def __enter__(self) -> OtherLoad:
        self.fraction: float | None = None
        self._start = (_busy_seconds(), _own_cpu(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, own0, t0 = self._start
        busy1 = _busy_seconds()
        if busy0 is None or busy1 is None:
            return
        wall = time.perf_counter() - t0
        other = (busy1 - busy0) - (_own_cpu() - own0)
        self.fraction = max(0.0, other / (wall * (os.cpu_count() or 1)))


def _busy_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (/proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

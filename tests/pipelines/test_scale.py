"""Memory and scale (issue 4.6), kept small enough for the normal suite.

Planning a million-sample grid is fast and gives one small task per (range, op, severity), never
per sample; a folder reader keeps a few hundred bytes per file; workers keep a bounded amount of
decoded input; the client keeps one keys list per range; and generating from a 20 000-file folder
with 2 workers stays below the 2 GiB bound (the 100 000-file measurement is benchmarks/bench_scale.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from augforge.datasets.folder import ImageFolderReader
from augforge.pipelines.plan import make_plan
from augforge.pipelines.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
N_FILES = 20_000
PER_DIR = 1000  # also keeps each file's hard-link count far below file-system limits


def tiny_folder(root: Path, count: int, side: int = 8) -> Path:
    """`count` side x side PNGs in sub-folders of `root` (hard links of one file per sub-folder, so
    making 20k files takes a fraction of a second); layout 'flat' reads them all."""
    rng = np.random.default_rng(0)
    for d in range(0, count, PER_DIR):
        folder = root / f"d{d // PER_DIR:03d}"
        folder.mkdir(parents=True)
        first = folder / f"img_{d:06d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(first)
        for i in range(d + 1, min(d + PER_DIR, count)):
            os.link(first, folder / f"img_{i:06d}.png")
    return root


@pytest.fixture(scope="module")
def folder_20k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tiny_folder(tmp_path_factory.mktemp("scale") / "pics", N_FILES)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_million_sample_plan_is_fast_and_made_of_ranges() -> None:
    recipe = load_recipe(REPO / "pipelines" / "imagenet-c.yaml")  # 19 ops x 5 severities, 1000 per shard
    groups = sum(len(e.levels) for e in recipe.ops)
    per_shard = recipe.output.samples_per_shard
    assert (groups, per_shard) == (95, 1000)
    cpu = time.process_time()
    plan = make_plan(recipe, 1_000_000, "/data/imagenet/val")
    cpu = time.process_time() - cpu
    assert cpu < 5.0, f"planning 1M samples took {cpu:.1f} CPU s"  # ~0.5 s here
    assert len(plan.tasks) == groups * 1000  # tasks = shards, not samples
    assert len(plan.ranges) == 1000
    by_group: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for t in plan.tasks:
        by_group.setdefault((t.op, t.severity), []).append((t.start, t.stop))
    assert len(by_group) == groups
    for spans in by_group.values():  # each group covers 0..1M once, in ranges of per_shard rows
        assert spans == [(lo, lo + per_shard) for lo in range(0, 1_000_000, per_shard)]
    assert max(len(pickle.dumps(t)) for t in plan.tasks[::997]) < 1024


def test_folder_reader_keeps_little_per_file(folder_20k: Path) -> None:
    tracemalloc.start()
    try:
        reader = ImageFolderReader(folder_20k, layout="flat")
        kept, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(reader) == N_FILES
    assert kept / N_FILES < 400, f"{kept / N_FILES:.0f} bytes per file"  # ~150: relative path + key + label
    assert reader.key(0) == "d000/img_000000" and reader.key(N_FILES - 1).endswith(f"img_{N_FILES - 1:06d}")


class PeakRSS:
    """Samples the summed RSS of a process and all its descendants (Dask nannies, workers)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.pid)
            while not self._stop.is_set():
                total = 0
                for proc in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):  # exited between listing and reading
                        total += proc.memory_info().rss
                self.peak = max(self.peak, total)
                self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_generate_from_20k_file_folder_stays_under_2_gib(folder_20k: Path, tmp_path: Path) -> None:
    """The `augforge generate` command in its own process (so the test runner's memory is not
    counted): client, scheduler, nannies and 2 workers together stay under 2 GiB."""
    recipe = {
        "input": {"reader": "folder", "path": str(folder_20k), "options": {"layout": "flat"}},
        "ops": ["contrast@1", "gaussian_noise@1"],
        "seed": 0,
        "output": {"dir": str(tmp_path / "out"), "encoding": "png", "samples_per_shard": 2500},
        "execution": {"workers": 2, "batch_size": 64},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.Popen([sys.executable, "-m", "augforge", "generate", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakRSS(proc.pid) as rss:
        try:
            output, _ = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()  # not left blocking on its output pipe with its workers alive
            output, _ = proc.communicate()
            pytest.fail(f"augforge generate did not finish in 300 s:\n{output[-2000:]}")
    assert proc.returncode == 0, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    total = manifest["accounting"]["total"]
    assert total["read"] == 2 * N_FILES and total["quarantined"] == 0
    assert len(manifest["shards"]) == 2 * N_FILES // 2500
    assert total["written"] == 2 * N_FILES
    assert 0 < rss.peak < 2 * 1024**3, f"peak RSS {rss.peak / 2**20:.0f} MiB"


def test_range_cache_keeps_a_total_byte_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoded ranges a worker keeps are bounded in bytes in all, not per range."""
    from collections import OrderedDict

    from augforge.pipelines import shards

    np.save(tmp_path / "pics.npy", np.zeros((40, 16, 16, 3), np.uint8))
    cfg = shards.ShardConfig(out_dir=str(tmp_path), reader="numpy", path=str(tmp_path / "pics.npy"),
                             options={}, seed=0, run_id="budget")
    one_range = 10 * 16 * 16 * 3
    monkeypatch.setattr(shards, "_RANGE_CACHE", OrderedDict())
    monkeypatch.setattr(shards, "_RANGE_SIZES", {})
    monkeypatch.setattr(shards, "_RANGE_CACHE_BYTES", int(1.5 * one_range))
    for lo in (0, 10, 20):
        shards.read_range(cfg, lo, lo + 10)
    assert [k[2:] for k in shards._RANGE_CACHE] == [(20, 30)]  # two would exceed the budget
    monkeypatch.setattr(shards, "_RANGE_CACHE_BYTES", int(2.5 * one_range))
    rows = shards.read_range(cfg, 30, 40)
    assert [k[2:] for k in shards._RANGE_CACHE] == [(20, 30), (30, 40)]
    assert shards.read_range(cfg, 30, 40) is rows  # a kept range is not decoded again
    assert sum(shards._RANGE_SIZES.values()) == 2 * one_range


def test_results_share_one_key_list_per_range() -> None:
    """The client keeps one keys list per input range, not one per (op, severity) shard."""
    from augforge.pipelines.execute import share_keys
    from augforge.pipelines.shards import ShardResult

    def result(op: str, start: int, keys: list[str]) -> ShardResult:
        return ShardResult(path=f"{op}/1/{start}", op=op, severity=1, shard=0, start=start, stop=start + 3,
                           count=len(keys), sha256="", size=0, keys=keys)

    lists: dict[tuple[int, int], list[str]] = {}
    a = share_keys(result("a", 0, ["k0", "k1", "k2"]), lists)
    b = share_keys(result("b", 0, ["k0", "k1", "k2"]), lists)
    c = share_keys(result("c", 0, ["k0", "k2"]), lists)  # a row quarantined under op c only
    d = share_keys(result("a", 3, ["k3", "k4", "k5"]), lists)
    assert b.keys is a.keys
    assert c.keys == ["k0", "k2"] and c.keys is not a.keys
    assert d.keys == ["k3", "k4", "k5"] and d.keys is not a.keys

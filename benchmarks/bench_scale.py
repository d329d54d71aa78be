"""Scale of `augforge generate` (issue 4.6): worker scaling, peak memory, planning time.

1. images/s with 1 and 2 workers: the same recipe (4 ops over N 64 x 64 pictures from a .npy)
   on a LocalCluster started and warmed beforehand (worker start-up is not part of the rate),
   best of `--repeat` runs each; speed-up = rate(2) / rate(1), target >= 1.7. Worker CPU time
   is read from the worker processes, so images per worker-CPU-second are shown too.
2. peak RSS of `augforge generate` (a subprocess, as users run it) over a folder of `--files`
   32 x 32 PNGs (hard links, 1000 per sub-folder) with 2 workers, and over `--big-files` 224 x 224
   ones (1000 decoded pictures per range, what a worker holds): the summed RSS of the command
   and all its descendants (nannies, workers), sampled every 50 ms; target < 2 GiB. RSS counts
   shared library pages once per process, so the sum overstates the real footprint.
3. planning a 1M-sample ImageNet-C grid (19 ops x 5 severities, 1000 per shard): make_plan time,
   task count (shards, not samples), and the resume check over an empty output folder.

Prints a table and writes benchmarks/results/bench_scale.json.

    .venv/bin/python benchmarks/bench_scale.py [--n 3000] [--files 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml
from common import ROOT, OtherLoad, environment, print_table, sample_pictures, write_json

SCALING_OPS = ["gaussian_noise@3", "defocus_blur@3", "jpeg_compression@3", "contrast@3"]
RSS_OPS = ["contrast@1", "gaussian_noise@1"]
GIB = 1024**3


# ----------------------------------------------------------------------------- 1. scaling

def scaling_recipe(images: Path, out: Path) -> dict[str, Any]:
    return {
        "input": {"reader": "numpy", "path": str(images)},
        "ops": SCALING_OPS,
        "seed": 0,
        "output": {"dir": str(out), "encoding": "png", "samples_per_shard": 250},
        "execution": {"batch_size": 64, "threads_per_worker": 1},
    }


def local_cluster(workers: int) -> Any:
    """A LocalCluster like generate's own (one task per worker process, glibc malloc defaults, no
    statistical profiler)."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=":0", silence_logs=logging.ERROR)


def worker_cpu(client: Any) -> float:
    """User + system CPU seconds of the worker processes so far."""
    pids = client.run(os.getpid).values()
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def run_scaling(work: Path, n: int, workers: int, repeat: int) -> dict[str, Any]:
    from distributed import Client
    from rich.console import Console

    from augforge.pipelines.execute import generate

    quiet = Console(file=io.StringIO())

    images = work / "pictures.npy"
    if not images.exists():
        np.save(images, sample_pictures(64, n))
    np.save(work / "warm.npy", sample_pictures(64, 64))
    cluster = local_cluster(workers)
    try:
        with Client(cluster) as client:
            generate(scaling_recipe(work / "warm.npy", work / "warm"), client=client, progress=False,
                     console=quiet)
            best: dict[str, Any] = {}
            for _ in range(repeat):
                out = work / f"out-{workers}"
                shutil.rmtree(out, ignore_errors=True)
                cpu0, t0 = worker_cpu(client), time.perf_counter()
                summary = generate(scaling_recipe(images, out), client=client, progress=False, console=quiet)
                wall, cpu = time.perf_counter() - t0, worker_cpu(client) - cpu0
                if not best or wall < best["wall_s"]:
                    best = {"workers": workers, "images": summary.images_built, "wall_s": wall,
                            "worker_cpu_s": cpu, "img_s": summary.images_built / wall,
                            "img_per_worker_cpu_s": summary.images_built / cpu,
                            "shas": sorted(s["sha256"] for s in _manifest(out)["shards"])}
                shutil.rmtree(out, ignore_errors=True)
    finally:
        cluster.close()
    return best


def _manifest(out: Path) -> dict[str, Any]:
    import json

    return json.loads((out / "manifest.json").read_text())


# ----------------------------------------------------------------------------- 2. peak RSS

def make_folder(root: Path, count: int, side: int = 32) -> Path:
    """`count` side x side PNGs, 1000 per sub-folder (hard links of one distinct file each)."""
    rng = np.random.default_rng(0)
    from PIL import Image

    for d in range(0, count, 1000):
        folder = root / f"d{d // 1000:04d}"
        folder.mkdir(parents=True)
        first = folder / f"img_{d:07d}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(first)
        for i in range(d + 1, min(d + 1000, count)):
            os.link(first, folder / f"img_{i:07d}.png")
    return root


class PeakRSS(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; keeps the peak, and the peak
    of each process (keyed by pid, with its command line's last word)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.per_process: dict[int, tuple[str, int]] = {}
        self.halt = threading.Event()

    def _role(self, proc: psutil.Process) -> str:
        if proc.pid == self.root.pid:
            return "augforge generate (client, scheduler, nannies)"
        cmd = " ".join(proc.cmdline())
        kind = "resource tracker" if "resource_tracker" in cmd else "worker"
        return f"{kind} (pid {proc.pid})"

    def run(self) -> None:
        while not self.halt.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    name = self.per_process.get(proc.pid, ("", 0))[0] or self._role(proc)
                except psutil.Error:
                    continue
                total += rss
                self.per_process[proc.pid] = (name, max(rss, self.per_process.get(proc.pid, ("", 0))[1]))
            self.peak = max(self.peak, total)
            self.halt.wait(self.interval)


def run_rss(work: Path, files: int, workers: int, side: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    folder = make_folder(work / "folder", files, side)
    made_s = time.perf_counter() - t0
    recipe = {
        "input": {"reader": "folder", "path": str(folder), "options": {"layout": "flat"}},
        "ops": RSS_OPS, "seed": 0,
        "output": {"dir": str(work / "rss-out"), "encoding": "png", "samples_per_shard": 1000},
        "execution": {"workers": workers, "batch_size": 64, "threads_per_worker": 1},
    }
    path = work / "rss.yaml"
    path.write_text(yaml.safe_dump(recipe))
    cmd = [str(Path(sys.executable).parent / "augforge"), "generate", str(path)]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = PeakRSS(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.halt.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"augforge generate failed:\n{stdout}\n{stderr}")
    manifest = _manifest(work / "rss-out")
    top = sorted(sampler.per_process.values(), key=lambda item: -item[1])
    shutil.rmtree(work / "rss-out")
    shutil.rmtree(folder)
    return {"files": files, "side": side, "workers": workers, "ops": RSS_OPS, "samples_per_shard": 1000,
            "folder_made_s": made_s, "wall_s": wall,
            "images": manifest["accounting"]["total"]["written"], "peak_rss_sum_bytes": sampler.peak,
            "peak_rss_sum_gib": sampler.peak / GIB,
            "peak_rss_per_process_mib": [[name, rss / 2**20] for name, rss in top]}


# ----------------------------------------------------------------------------- 3. planning

def run_planning(work: Path, n: int) -> dict[str, Any]:
    from augforge.pipelines.execute import check_existing
    from augforge.pipelines.plan import make_plan
    from augforge.pipelines.recipe import load_recipe

    recipe = load_recipe(ROOT / "pipelines" / "imagenet-c.yaml")
    t0, c0 = time.perf_counter(), time.process_time()
    plan = make_plan(recipe, n, "/data/imagenet/val")
    plan_s, plan_cpu = time.perf_counter() - t0, time.process_time() - c0
    (work / "empty-out").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    _, todo, _ = check_existing(work / "empty-out", plan.tasks)
    check_s = time.perf_counter() - t0
    assert len(todo) == len(plan.tasks)
    return {"samples": n, "groups": len(plan.groups), "samples_per_shard": recipe.output.samples_per_shard,
            "tasks": len(plan.tasks), "plan_s": plan_s, "plan_cpu_s": plan_cpu, "resume_check_s": check_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="64 x 64 pictures for the scaling runs")
    parser.add_argument("--files", type=int, default=100_000, help="files in the peak-RSS folder")
    parser.add_argument("--big-files", type=int, default=3000,
                        help="files of 224 x 224 in a second peak-RSS run (decoded ranges dominate; 0: skip)")
    parser.add_argument("--repeat", type=int, default=2, help="scaling runs per worker count; best kept")
    parser.add_argument("--plan-samples", type=int, default=1_000_000)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    args = parser.parse_args()
    load_start = os.getloadavg()
    with OtherLoad() as other, tempfile.TemporaryDirectory(prefix="bench-scale-",
                                                          dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        print(f"planning {args.plan_samples} samples ...", flush=True)
        planning = run_planning(work, args.plan_samples)
        scaling = []
        for workers in (1, 2):
            print(f"scaling: {len(SCALING_OPS)} ops x {args.n} pictures of 64x64, {workers} worker(s) ...",
                  flush=True)
            scaling.append(run_scaling(work, args.n, workers, args.repeat))
        same_bytes = scaling[0].pop("shas") == scaling[1].pop("shas")
        rss = []
        for files, side in ((args.files, 32), (args.big_files, 224)):
            if files:
                print(f"peak RSS: {files} files of {side}x{side}, {len(RSS_OPS)} ops, 2 workers ...",
                      flush=True)
                rss.append(run_rss(work, files, 2, side))
    load_end = os.getloadavg()
    one, two = scaling
    speedup = two["img_s"] / one["img_s"]
    cpu_speedup = two["img_per_worker_cpu_s"] / one["img_per_worker_cpu_s"]
    rows = [
        [f"generate, {s['workers']} worker(s)", s["images"], s["wall_s"], s["img_s"], s["worker_cpu_s"],
         s["img_per_worker_cpu_s"]] for s in scaling
    ]
    print_table(["what", "images", "wall s", "images/s", "worker CPU s", "images/worker-CPU-s"], rows)
    print(f"speed-up 2 vs 1 workers: {speedup:.2f}x (target >= 1.7); per worker-CPU-second: "
          f"{cpu_speedup:.2f}x; identical shards: {same_bytes}")
    print_table(["peak RSS (sum: client + 2 workers)", "files", "picture", "images", "wall s", "GiB",
                 "target GiB"],
                [["augforge generate", r["files"], f"{r['side']}x{r['side']}", r["images"], r["wall_s"],
                  r["peak_rss_sum_gib"], 2.0] for r in rss])
    print_table(["planning", "samples", "tasks", "plan s", "plan CPU s", "resume check s"],
                [["imagenet-c grid", planning["samples"], planning["tasks"], planning["plan_s"],
                  planning["plan_cpu_s"], planning["resume_check_s"]]])
    # share of the machine's CPU other processes used during the run (ours excluded)
    shared = other.fraction is None or other.fraction > 0.1
    payload = {
        "env": environment(), "args": vars(args), "machine_shared": shared,
        "other_processes_cpu_fraction": other.fraction,
        "load_average_start": load_start, "load_average_end": load_end,
        "note": ("run while other jobs used this machine (other_processes_cpu_fraction of its CPU): wall "
                 "rates and the speed-up are lower bounds; rerun on an idle machine" if shared
                 else "machine otherwise idle"),
        "scaling": {"ops": SCALING_OPS, "picture": "64x64", "runs": scaling, "speedup_2_vs_1": speedup,
                    "speedup_per_worker_cpu": cpu_speedup, "identical_shards": same_bytes,
                    "target_speedup": 1.7},
        "peak_rss": {"runs": rss, "target_gib": 2.0},
        "planning": planning,
    }
    path = write_json("bench_scale", payload, None if args.out is None else Path(args.out))
    print(f"other processes used {100 * (other.fraction or 0):.0f}% of the machine's CPU meanwhile; "
          f"wrote {path}")


if __name__ == "__main__":
    main()

"""End-to-end images/s of `augforge generate` on a CIFAR-10-C-sized grid, against the I/O ceiling.

The grid is the shipped cifar10-c recipe (19 ops x 5 severities, CIFAR-10-C constants) over N
32 x 32 pictures written as a CIFAR-10 python test batch, run as `augforge generate` in a
subprocess with 2 workers (wall time of the whole command: start-up, Dask, shutdown). The
ceilings, measured in the same run, write the same 95 * N already-corrupted pictures (read back
from the generated shards) as the same shards (PNG with the same settings plus one json member
each) in 2 processes, no ops, no Dask, no hashing, no fsync:
- `augforge` (the target's ceiling): the pipeline's own encoder and tar writer
  (shards.encode_image + tario.ShardTarWriter), i.e. generate with the ops, reading, Dask and
  records taken away; a pipeline cannot beat it without a faster encoder, which would lift it too.
- `webdataset`: Pillow's `Image.save` + webdataset's TarWriter, the standard tools (shown for
  reference: about 1.5x slower per 32 x 32 picture than the above, so a ratio against it
  flatters the pipeline).
Their tars are checked to be byte-identical to generate's, so every side writes the same bytes.
Prints a table and writes benchmarks/results/bench_generate.json.

    .venv/bin/python benchmarks/bench_generate.py [--n 3000] [--workers 2] [--repeat 2] [--batch 64]
        [--stages 500]

Each round runs generate then the ceiling; the best wall (and CPU) time of each is kept, since
other load on a shared machine only ever slows a run down. Rates are also given per CPU-second
(times the workers), which other load barely moves. `--stages N` adds where a worker's CPU time
goes: the grid over N pictures run task by task in the benchmark's own process (see stage_profile).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from common import ROOT, OtherLoad, environment, print_table, sample_pictures, write_json

TAR_SETTINGS = {"mtime": 946_684_800, "user": "augforge", "group": "augforge", "mode": 0o444}  # as the shards


def write_cifar_input(folder: Path, n: int) -> Path:
    """N 32 x 32 pictures as a CIFAR-10 'test_batch' (the cifar10 reader's input)."""
    rng = np.random.default_rng(0)
    pics = sample_pictures(32, n)
    # shift each tile a little so the N pictures are distinct (the samples repeat every 22)
    pics = np.stack([np.roll(p, (i // 22) % 32, axis=1) for i, p in enumerate(pics)])
    batch = {b"batch_label": b"bench", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": pics.transpose(0, 3, 1, 2).reshape(n, 3072).copy()}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))  # our own data, written here
    return folder


def bench_recipe(work: Path, batch: int | None) -> Path:
    """The shipped cifar10-c recipe without its export (shards only, like the ceiling)."""
    data = yaml.safe_load((ROOT / "pipelines" / "cifar10-c.yaml").read_text())
    data["output"].pop("formats", None)
    if batch is not None:
        data["execution"]["batch_size"] = batch
    path = work / "bench-cifar10-c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes of this one and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_generate(recipe: Path, data: Path, out: Path, workers: int) -> tuple[float, float, dict[str, Any]]:
    """Wall and CPU seconds of `augforge generate` (a subprocess: its Dask workers are its
    children, so their CPU time is counted too) and its manifest."""
    cmd = [str(Path(sys.executable).parent / "augforge"), "generate", str(recipe), "--input", str(data),
           "--out", str(out), "--workers", str(workers)]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"augforge generate failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, cpu, json.loads((out / "manifest.json").read_text())


def read_back(out: Path, manifest: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """Decode every shard's pictures into one .npy; per shard: path, rows, json members, sha256."""
    from PIL import Image

    pictures, shards = [], []
    for entry in manifest["shards"]:
        first = len(pictures)
        metas = []
        with tarfile.open(out / entry["path"]) as tar:
            for key in entry["keys"]:
                metas.append(tar.extractfile(f"{key}.json").read().decode())  # type: ignore[union-attr]
                png = tar.extractfile(f"{key}.png").read()  # type: ignore[union-attr]
                pictures.append(np.asarray(Image.open(io.BytesIO(png))))
        shards.append({"path": entry["path"], "rows": [first, len(pictures)], "keys": entry["keys"],
                       "json": metas, "sha256": entry["sha256"]})
    np.save(work / "corrupted.npy", np.stack(pictures))
    return shards


def _write_webdataset(fh: Any, samples: Any, level: int) -> None:
    """Pillow's save + webdataset's TarWriter: the standard tools."""
    import webdataset as wds
    from PIL import Image

    writer = wds.TarWriter(fh, encoder=False, **TAR_SETTINGS)
    for key, meta, pixels in samples:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=level, optimize=False)
        writer.write({"__key__": key, "png": buf.getvalue(), "json": meta.encode()})
    writer.close()


def _write_augforge(fh: Any, samples: Any, level: int) -> None:
    """The pipeline's encoder and tar writer (same bytes, less Python per picture)."""
    from augforge.pipelines.shards import encode_image
    from augforge.pipelines.tario import ShardTarWriter

    s = TAR_SETTINGS
    writer = ShardTarWriter(fh, mtime=s["mtime"], user=s["user"], group=s["group"], mode=s["mode"])
    for key, meta, pixels in samples:
        writer.write(key, {"png": encode_image(pixels, "png", png_level=level), "json": meta.encode()})
    writer.close()


CEILINGS = {"augforge": _write_augforge, "webdataset": _write_webdataset}


def write_ceiling_shards(pictures_path: str, shards: list[dict[str, Any]], out: str, level: int,
                         kind: str, start: Any, done: Any) -> None:
    """One ceiling process: load the pictures, wait for the start signal, then encode and tar its
    shards with the `kind` writer (no ops, no hashing, no fsync)."""
    import augforge.pipelines.shards  # noqa: F401  (imported before the clock starts, like a warm worker)

    write = CEILINGS[kind]
    pictures = np.load(pictures_path)  # in memory before the clock starts
    start.wait()
    cpu0 = time.process_time()
    for shard in shards:
        target = Path(out) / shard["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        lo, hi = shard["rows"]
        with open(target, "wb") as fh:
            write(fh, zip(shard["keys"], shard["json"], pictures[lo:hi], strict=True), level)
    done.put((len(shards), time.process_time() - cpu0))


def balanced(shards: list[dict[str, Any]], procs: int) -> list[list[dict[str, Any]]]:
    """Split the shards over `procs` processes with equal numbers of pictures (largest first, each
    to the least loaded), as Dask's dynamic scheduling balances generate's workers. (Every other
    shard would give one process all the 2500-row shards and the other the 500-row ones.)"""
    parts: list[list[dict[str, Any]]] = [[] for _ in range(procs)]
    loads = [0] * procs
    for shard in sorted(shards, key=lambda s: s["rows"][0] - s["rows"][1]):
        i = loads.index(min(loads))
        parts[i].append(shard)
        loads[i] += shard["rows"][1] - shard["rows"][0]
    return parts


def run_ceiling(shards: list[dict[str, Any]], work: Path, out: Path, procs: int,
                level: int, kind: str) -> tuple[float, float]:
    """Wall and CPU seconds of `procs` processes writing all shards, from a common start signal
    given once every process holds its pictures in memory."""
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Barrier(procs + 1), ctx.Queue()
    pictures = str(work / "corrupted.npy")
    workers = [ctx.Process(target=write_ceiling_shards,
                           args=(pictures, part, str(out), level, kind, start, done))
               for part in balanced(shards, procs)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    reports = [done.get() for _ in workers]
    wall = time.perf_counter() - t0
    written, cpu = sum(r[0] for r in reports), sum(r[1] for r in reports)
    for w in workers:
        w.join()
    if written != len(shards) or any(w.exitcode for w in workers):
        raise SystemExit("a ceiling process failed")
    for shard in shards:  # the ceiling wrote exactly the pipeline's bytes
        digest = hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest()
        if digest != shard["sha256"]:
            raise SystemExit(f"ceiling shard {shard['path']} differs from generate's: not like for like")
    return wall, cpu


STAGES = ("read", "convert", "op", "encode", "json", "tar+sha256+write", "rest")


def stage_profile(recipe: Path, data: Path, n: int, work: Path) -> dict[str, float]:
    """CPU microseconds per picture of each stage of `run_shard`, every task of the grid run in this
    process one after the other (one worker, torch threads 1, no Dask), `time.process_time` around
    the pipeline's functions, after an untimed pass over every task so first-call costs are left
    out; that pass gives 'first_calls_s', the CPU seconds a worker spends once on them.
    'read' is decoding (once per range, cached), 'convert' the uint8/float conversions around the
    op, 'rest' batching, keys, sidecar and the per-sample Python of run_shard."""
    import torch

    from augforge.core.op import Op
    from augforge.pipelines import shards
    from augforge.pipelines.plan import make_plan
    from augforge.pipelines.recipe import apply_overrides, load_recipe

    torch.set_num_threads(1)
    spec = apply_overrides(load_recipe(recipe), input_path=str(data), out=str(work / "stages"))
    plan = make_plan(spec, n, str(data))
    cfg = shards.ShardConfig(out_dir=str(work / "stages"), reader=spec.input.reader, path=str(data),
                             options=dict(spec.input.options), seed=spec.seed,
                             png_compress_level=spec.output.png_compress_level, quantize=spec.output.quantize,
                             batch_size=spec.execution.batch_size, run_id="stages")
    t0 = time.process_time()
    for task in plan.tasks:  # untimed pass: imports, codec probes and the ops' one-off tables
        shards.run_shard(task, cfg)
    cold = time.process_time() - t0
    spent = dict.fromkeys(STAGES, 0.0)
    patched: list[tuple[Any, str, Any]] = []

    def timed(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[stage] += time.process_time() - t0

        patched.append((owner, name, original))
        setattr(owner, name, wrapper)

    hooks = ((shards, "read_range", "read"), (shards._Batcher, "_corrupt", "convert"), (Op, "__call__", "op"),
             (shards, "encode_image", "encode"), (shards.SampleJson, "__call__", "json"),
             (shards, "write_shard", "tar+sha256+write"))
    for owner, name, stage in hooks:
        timed(owner, name, stage)
    try:
        t0 = time.process_time()
        for task in plan.tasks:
            shards.run_shard(task, cfg)
        total = time.process_time() - t0
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    spent["convert"] -= spent["op"]  # _corrupt's time around the op call
    spent["rest"] = total - sum(spent.values())
    pictures = len(plan.tasks) * n
    return {**{k: v / pictures * 1e6 for k, v in spent.items()}, "total": total / pictures * 1e6,
            "first_calls_s": cold - total}  # a worker's one-off CPU seconds (all 95 ops' first calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="input pictures (CIFAR-10-C has 10 000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of (generate, ceiling); best kept")
    parser.add_argument("--batch", type=int, default=None, help="execution.batch_size (default: recipe's)")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    parser.add_argument("--stages", type=int, default=0, metavar="N",
                        help="also profile the stages in one process over N pictures (CPU us/picture)")
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    with OtherLoad() as other, tempfile.TemporaryDirectory(prefix="bench-generate-",
                                                          dir=os.environ.get("BENCH_TMP")) as tmp:
        work = Path(tmp)
        data = write_cifar_input(work / "cifar", args.n)
        recipe = bench_recipe(work, args.batch)
        shards: list[dict[str, Any]] = []
        for r in range(args.repeat):
            print(f"[{r + 1}/{args.repeat}] generate: 19 ops x 5 severities x {args.n} pictures of 32x32, "
                  f"{args.workers} workers ...", flush=True)
            wall, cpu, manifest = run_generate(recipe, data, work / "generated", args.workers)
            if not shards:
                shards = read_back(work / "generated", manifest, work)
            elif [s["sha256"] for s in manifest["shards"]] != [s["sha256"] for s in shards]:
                raise SystemExit("two generate runs wrote different bytes")
            shutil.rmtree(work / "generated")
            level = manifest["recipe"]["output"]["png_compress_level"]
            run = {"generate_s": wall, "generate_cpu_s": cpu, "generate_run_s": manifest["run"]["elapsed_s"]}
            for kind in CEILINGS:
                print(f"[{r + 1}/{args.repeat}] {kind} ceiling: the same pictures and bytes, no ops, "
                      f"{args.workers} processes ...", flush=True)
                run[f"{kind}_ceiling_s"], run[f"{kind}_ceiling_cpu_s"] = run_ceiling(
                    shards, work, work / "ceiling", args.workers, level, kind)
                shutil.rmtree(work / "ceiling")
            runs.append({**run, "load_average": os.getloadavg()[0]})
        stages = None
        if args.stages:
            print(f"stages: the same grid over {args.stages} pictures in this process ...", flush=True)
            small = write_cifar_input(work / "cifar-stages", args.stages)
            stages = stage_profile(recipe, small, args.stages, work)
    images = int(manifest["accounting"]["total"]["written"])
    best = {k: min(r[k] for r in runs) for k in runs[0] if k != "load_average"}
    wall, cpu = best["generate_s"], best["generate_cpu_s"]
    e2e_rate, inner_rate = images / wall, images / best["generate_run_s"]
    # CPU-time rates: images per CPU-second x workers, what the processes reach on cores of their own
    # (this machine's cores are shared, so wall rates move with other load)
    e2e_cpu_rate = images / cpu * args.workers
    rates = {kind: (images / best[f"{kind}_ceiling_s"], images / best[f"{kind}_ceiling_cpu_s"] * args.workers)
             for kind in CEILINGS}
    ceiling_rate, ceiling_cpu_rate = rates["augforge"]
    wds_rate, wds_cpu_rate = rates["webdataset"]
    rows = [
        ["augforge generate (whole command)", images, wall, e2e_rate, e2e_rate / ceiling_rate, cpu,
         e2e_cpu_rate, e2e_cpu_rate / ceiling_cpu_rate],
        ["augforge generate (manifest run time)", images, best["generate_run_s"], inner_rate,
         inner_rate / ceiling_rate, "-", "-", "-"],
        ["ceiling: encode_image + ShardTarWriter", images, best["augforge_ceiling_s"], ceiling_rate, 1.0,
         best["augforge_ceiling_cpu_s"], ceiling_cpu_rate, 1.0],
        ["(ref) Image.save + webdataset TarWriter", images, best["webdataset_ceiling_s"], wds_rate,
         wds_rate / ceiling_rate, best["webdataset_ceiling_cpu_s"], wds_cpu_rate,
         wds_cpu_rate / ceiling_cpu_rate],
    ]
    print(f"best of {args.repeat} round(s); 'x ceiling' is against the augforge encode+tar ceiling:")
    print_table(["what", "images", "wall s", "images/s", "x ceiling", "CPU s", "images/CPU-s x workers",
                 "x ceiling (CPU)"], rows)
    payload = {
        "env": environment(), "args": vars(args), "images": images, "shards": len(shards),
        "load_average_at_end": os.getloadavg(),
        "other_processes_cpu_fraction": other.fraction,  # of the machine's CPU, ours excluded
        "machine_shared": other.fraction is None or other.fraction > 0.1,
        "ceiling": "augforge: shards.encode_image + tario.ShardTarWriter (same bytes), 2 processes, no ops",
        "end_to_end_img_s": e2e_rate, "ceiling_img_s": ceiling_rate, "ratio": e2e_rate / ceiling_rate,
        "generate_run_img_s": inner_rate, "ratio_run_time": inner_rate / ceiling_rate,
        "end_to_end_img_per_cpu_s_x_workers": e2e_cpu_rate,
        "ceiling_img_per_cpu_s_x_workers": ceiling_cpu_rate,
        "ratio_cpu_time": e2e_cpu_rate / ceiling_cpu_rate,
        "webdataset_ceiling_img_s": wds_rate, "ratio_vs_webdataset_ceiling": e2e_rate / wds_rate,
        "webdataset_ceiling_img_per_cpu_s_x_workers": wds_cpu_rate,
        "ratio_cpu_time_vs_webdataset_ceiling": e2e_cpu_rate / wds_cpu_rate,
        "best": best, "runs": runs, "target_ratio": 0.7, "stages_cpu_us_per_picture": stages,
    }
    if stages is not None:
        print(f"CPU us per picture by stage (one process, {args.stages} pictures x 95 groups):")
        print_table(list(stages), [[f"{v:.1f}" for v in stages.values()]])  # first_calls_s: seconds
    path = write_json("bench_generate", payload, None if args.out is None else Path(args.out))
    print(f"end-to-end / ceiling = {e2e_rate / ceiling_rate:.2f} (wall), "
          f"{e2e_cpu_rate / ceiling_cpu_rate:.2f} (CPU time); against Image.save + TarWriter: "
          f"{e2e_rate / wds_rate:.2f} (wall), {e2e_cpu_rate / wds_cpu_rate:.2f} (CPU time); "
          f"target >= 0.70; wrote {path}")


if __name__ == "__main__":
    main()

"""Samples/s of the training transforms, batched, against per-image reference-style code, same run.

augforge runs each transform on one (batch, 3, size, size) float batch with per-sample keys (as
`augforge.stream` calls it); the references (benchmarks/train_aug_reference.py) run per image on
the same pictures, as the papers' data loaders do (paired variants: the reference's own batched
torch code). Prints a table and writes benchmarks/results/bench_train_aug.json with the ratios.

    .venv/bin/python benchmarks/bench_train_aug.py [--batch 128] [--size 32] [--threads 2]
                                                   [--transforms augmix,ha_single] [--device cpu,cuda]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# OpenMP's default wait policy (what users get) unless OMP_WAIT_POLICY is set: on an idle machine
# PASSIVE made 2-thread AugMix 2.4x slower (sleeping threads wake for every small kernel); on a busy
# shared machine it keeps the numbers from going random. The JSON records which was used.

import numpy as np
import torch
import train_aug_reference as ref
from common import best_time, environment, geomean, print_table, sample_pictures, write_json
from PIL import Image

from augforge import to_float
from augforge.transforms import APR, PRIME, AugMix, HybridAugment, HybridAugmentPP, RandomCorruption
from augforge.transforms.corruption import default_ops

TARGET = 10.0  # wanted speed-up over per-image code on CPU


def transforms(names: list[str]) -> dict[str, tuple[Callable[[], Any], str, Callable[..., Any]]]:
    """name -> (augforge factory, reference kind, reference function). Kind 'image' takes one PIL
    picture (uint8 array for RandomCorruption), 'batch' the whole float batch."""
    from tests.ops.image.reference import reference_corrupt

    ops = default_ops()
    table: dict[str, tuple[Callable[[], Any], str, Callable[..., Any]]] = {
        "augmix": (lambda: AugMix(preset="cifar"), "image", ref.augmix),
        "augmix_jsd": (lambda: AugMix(preset="cifar", jsd=True), "image", ref.augmix_jsd),
        "ha_single": (lambda: HybridAugment(mode="single"), "image", ref.ha_single),
        "happ_single": (lambda: HybridAugmentPP(mode="single"), "image", ref.happ_single),
        "apr_single": (lambda: APR(mode="single"), "image", ref.apr_single_tensor),
        "prime": (lambda: PRIME(preset="cifar", jsd=False), "image", ref.prime),
        "random_corruption": (lambda: RandomCorruption(p=1.0), "array",
                              lambda a: ref.random_corruption(a, ops, reference_corrupt)),
        "ha_paired": (lambda: HybridAugment(mode="paired", prob=1.0), "batch",
                      lambda x: ref.ha_paired(x, prob=1.0)),
        "happ_paired": (lambda: HybridAugmentPP(mode="paired", prob=1.0, p_apr=1.0), "batch",
                        lambda x: ref.happ_paired(x, prob=1.0, p_apr=1.0)),
        "apr_paired": (lambda: APR(mode="paired", p_apr=1.0), "batch",
                       lambda x: ref.apr_paired(x, p_apr=1.0)),
    }
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise SystemExit(f"unknown transform(s) {unknown}; choose from {sorted(table)}")
    return {n: table[n] for n in names}


def per_image_rate(fn: Callable[[Any], Any], items: list[Any], budget_s: float, rounds: int = 3) -> float:
    """Samples/s of `fn` over the items: the best of `rounds` windows of budget_s / rounds seconds
    (each at least one pass over the items), after one warm-up call. Best-of, like `best_time`,
    so both sides are measured the same way on a shared machine."""
    fn(items[0])
    best = 0.0
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while n < len(items) or time.perf_counter() - t0 < budget_s / rounds:
            fn(items[n % len(items)])
            n += 1
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--transforms", default="augmix,augmix_jsd,ha_single,happ_single,apr_single,prime,"
                        "random_corruption,ha_paired,happ_paired,apr_paired")
    parser.add_argument("--device", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per reference measurement")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    pics = sample_pictures(args.size, args.batch)
    pil = [Image.fromarray(p) for p in pics]
    keys = [f"bench/{i:06d}" for i in range(args.batch)]
    rows, records = [], []
    for name, (factory, kind, reference) in transforms(args.transforms.split(",")).items():
        rec: dict[str, Any] = {"transform": name, "batch": args.batch, "size": args.size,
                               "reference": "per-image" if kind != "batch" else "batched (reference code)"}
        module = factory()
        for device in args.device.split(","):
            x = to_float(pics).to(device)
            t = best_time(lambda m=module, x=x: m(x, keys=keys), repeat=5, min_time=3.0)
            rec[f"augforge_{device}_samples_s"] = args.batch / t
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "batch":
                x = to_float(pics)
                rec["reference_samples_s"] = args.batch / best_time(lambda x=x, f=reference: f(x), repeat=5)
            else:
                rec["reference_samples_s"] = per_image_rate(reference, pil if kind == "image" else list(pics),
                                                            args.budget)
        cpu = float(rec["augforge_cpu_samples_s"])
        rec["x_reference"] = cpu / float(rec["reference_samples_s"])
        records.append(rec)
        rows.append([name, rec["reference"], cpu, rec.get("augforge_cuda_samples_s", "-"),
                     rec["reference_samples_s"], rec["x_reference"]])
        print(f"  {name}: {cpu:.0f} samples/s, x{rec['x_reference']:.1f}", flush=True)
    print_table(["transform", "reference", "augforge cpu samples/s", "cuda samples/s", "reference samples/s",
                 "x reference (cpu)"], rows)
    per_image = [r for r in records if r["reference"] == "per-image"]
    summary = {
        "geomean_x_per_image": geomean([float(r["x_reference"]) for r in per_image]),
        "min_x_per_image": min((float(r["x_reference"]) for r in per_image), default=float("nan")),
        "below_target": [r["transform"] for r in per_image if float(r["x_reference"]) < TARGET],
        "target": TARGET,
    }
    print(summary)
    env = {**environment(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
           "load_average": os.getloadavg()}
    path = write_json("bench_train_aug", {"env": env, "args": vars(args), "results": records,
                                          "summary": summary}, None if args.out is None else Path(args.out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

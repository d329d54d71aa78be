"""Images/s of augforge's ImageNet-C ops against imagecorruptions and albumentations, same run.

augforge runs batched (default batch 64) on float (B, C, H, W) tensors and, for the ops with an
8-bit path (`op.takes_uint8()`: pixelate, jpeg_compression, whose reference hands uint8 to PIL),
also on uint8 (B, C, H, W) tensors; imagecorruptions (the faithful incumbent) and albumentations'
nearest transform (the fast incumbent) run per uint8 HWC picture, as users call them. All see the
same pictures. The x-factors compare each library on the input it takes natively (augforge: uint8
where the op has the 8-bit path, else float32); the float-input factors are kept beside them.
The libraries are timed in interleaved rounds and each keeps its best round, so a burst of load
from other processes does not land on one side only. Prints a table and writes
benchmarks/results/bench_image_ops.json.

    .venv/bin/python benchmarks/bench_image_ops.py [--sizes 224,32] [--ops fog,snow] [--device cpu,cuda]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
import torch
from common import (
    environment,
    geomean,
    print_table,
    sample_pictures,
    write_json,
)

from augforge import build_op, to_float

IMAGENET_C = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
]

# albumentations' nearest equivalent of each corruption (p=1) at ImageNet-C severity 3; None where
# it has none. Brightness: ImageNet-C shifts HSV value, which is HueSaturationValue's value shift
# (RandomBrightnessContrast adds to RGB instead). Snow: the 'texture' method draws a noise snow
# layer like ImageNet-C ('bleach' only brightens bright pixels). Pixelate: BOX down (INTER_AREA)
# and nearest up, as PIL BOX/BOX does.
ALBUMENTATIONS: dict[str, Callable[[], A.BasicTransform] | None] = {
    "gaussian_noise": lambda: A.GaussNoise(std_range=(0.18, 0.18), p=1),
    "shot_noise": lambda: A.ShotNoise(p=1),
    "impulse_noise": lambda: A.SaltAndPepper(amount=(0.09, 0.09), p=1),
    "speckle_noise": lambda: A.MultiplicativeNoise(multiplier=(0.65, 1.35), per_channel=True,
                                                   elementwise=True, p=1),
    "defocus_blur": lambda: A.Defocus(radius=(6, 6), alias_blur=(0.5, 0.5), p=1),
    "glass_blur": lambda: A.GlassBlur(sigma=1.0, max_delta=2, iterations=3, p=1),
    "motion_blur": lambda: A.MotionBlur(blur_limit=(31, 31), p=1),
    "zoom_blur": lambda: A.ZoomBlur(max_factor=(1.2, 1.2), step_factor=(0.02, 0.02), p=1),
    "gaussian_blur": lambda: A.GaussianBlur(sigma_limit=(3, 3), blur_limit=0, p=1),
    "snow": lambda: A.RandomSnow(method="texture", p=1),
    "frost": None,
    "fog": lambda: A.RandomFog(p=1),
    "brightness": lambda: A.HueSaturationValue(hue_shift_limit=0, sat_shift_limit=0,
                                               val_shift_limit=(0.3 * 255, 0.3 * 255), p=1),
    "contrast": lambda: A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(-0.8, -0.8), p=1),
    "elastic_transform": lambda: A.ElasticTransform(p=1),
    "pixelate": lambda: A.Downscale(scale_range=(0.4, 0.4), p=1, interpolation_pair={
        "downscale": cv2.INTER_AREA, "upscale": cv2.INTER_NEAREST}),
    "jpeg_compression": lambda: A.ImageCompression(quality_range=(15, 15), p=1),
    "spatter": lambda: A.Spatter(p=1),
    "saturate": lambda: A.ColorJitter(brightness=0, contrast=0, saturation=(2, 2), hue=0, p=1),
}


def round_time(fn: Callable[[], object], sync: bool = False) -> float:
    """Wall seconds of one call."""
    t0 = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def per_image_count(fn: Callable[[np.ndarray], object], pictures: np.ndarray, budget_s: float) -> int:
    """How many pictures one round of a per-image function processes: about budget_s seconds'
    worth (judged from one warm-up call), at least 2, at most all of them."""
    fn(pictures[0])
    t = round_time(lambda: fn(pictures[1]))
    return int(min(len(pictures), max(2, budget_s // max(t, 1e-6))))


def measure_op(name: str, size: int, preset: str, pics: np.ndarray, args: argparse.Namespace,
               reference: Callable[[np.ndarray, str, int], np.ndarray]) -> dict[str, object]:
    """Best-of-rounds images/s of augforge (per device), imagecorruptions and albumentations."""
    rec: dict[str, object] = {"op": name, "size": size, "preset": preset, "batch": args.batch}
    op = build_op(name, args.severity, preset=preset)
    ours = {d: to_float(pics).to(d) for d in args.device.split(",")}
    if op.takes_uint8():  # the documented 8-bit path: uint8 (B, C, H, W) in and out
        chw = torch.from_numpy(pics).permute(0, 3, 1, 2).contiguous()
        ours.update({f"{d}_uint8": chw.to(d) for d in args.device.split(",")})
    for x in ours.values():
        for _ in range(3):  # warm-up: caches, thread pools, and the allocator (the first op of a
            op(x, 0)        # process measured 2x slower after a single warm-up call)
    factory = ALBUMENTATIONS.get(name)
    incumbents: dict[str, Callable[[np.ndarray], object]] = {
        "imagecorruptions": lambda p: reference(p, name, args.severity)}
    if factory is not None:
        tf = factory()
        incumbents["albumentations"] = lambda p, tf=tf: tf(image=p)["image"]
    counts = {k: per_image_count(fn, pics, args.budget) for k, fn in incumbents.items()}
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for device, x in ours.items():
            t = round_time(lambda op=op, x=x: op(x, 0), sync=device.startswith("cuda")) / args.batch
            best[device] = min(best.get(device, float("inf")), t)
        for key, fn in incumbents.items():
            subset = pics[:counts[key]]
            t = round_time(lambda fn=fn, subset=subset: [fn(p) for p in subset]) / len(subset)
            best[key] = min(best.get(key, float("inf")), t)
    for device in ours:
        rec[f"augforge_{device}_img_s"] = 1.0 / best[device]
    for key in incumbents:
        rec[f"{key}_img_s"] = 1.0 / best[key]
    uint8 = "cpu_uint8" in ours
    rec["augforge_input"] = "uint8" if uint8 else "float32"
    cpu = float(rec["augforge_cpu_uint8_img_s" if uint8 else "augforge_cpu_img_s"])
    cpu_float = float(rec["augforge_cpu_img_s"])
    alb = rec.get("albumentations_img_s")
    for suffix, ours_img_s in (("", cpu), ("_float_input", cpu_float)):
        rec[f"x_imagecorruptions{suffix}"] = ours_img_s / float(rec["imagecorruptions_img_s"])
        rec[f"x_albumentations{suffix}"] = ours_img_s / float(alb) if alb else None
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,32")
    parser.add_argument("--ops", default=",".join(IMAGENET_C))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (best kept)")
    parser.add_argument("--budget", type=float, default=0.4, help="seconds per incumbent round")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from tests.ops.image.reference import reference_corrupt

    rows, records = [], []
    for size in [int(s) for s in args.sizes.split(",")]:
        preset = "imagenet" if size >= 128 else ("tiny" if size >= 64 else "cifar")
        pics = sample_pictures(size, args.batch)
        for name in args.ops.split(","):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec = measure_op(name, size, preset, pics, args, reference_corrupt)
            records.append(rec)
            cpu, alb = float(rec["augforge_cpu_img_s"]), rec.get("albumentations_img_s")
            rows.append([name, size, rec["augforge_input"], cpu, rec.get("augforge_cpu_uint8_img_s", "-"),
                         rec.get("augforge_cuda_img_s", "-"), rec["imagecorruptions_img_s"],
                         alb or "-", rec["x_imagecorruptions"], rec["x_albumentations"] or "-"])
            print(f"  {name}@{size}: {cpu:.0f} img/s (x{rec['x_imagecorruptions']:.2f} imagecorruptions)",
                  flush=True)
    print_table(["op", "size", "augforge input", "augforge cpu img/s (float)", "cpu img/s (uint8)",
                 "cuda img/s", "imagecorruptions img/s", "albumentations img/s", "x imagecorruptions",
                 "x albumentations"], rows)
    summary = {}
    for size in sorted({r["size"] for r in records}, reverse=True):
        sel = [r for r in records if r["size"] == size]
        summary[str(size)] = {}
        for suffix in ("", "_float_input"):
            summary[str(size)].update({
                f"geomean_x_imagecorruptions{suffix}": geomean([float(r[f"x_imagecorruptions{suffix}"])
                                                                for r in sel]),
                f"min_x_imagecorruptions{suffix}": min(float(r[f"x_imagecorruptions{suffix}"]) for r in sel),
                f"geomean_x_albumentations{suffix}": geomean(
                    [float(r[f"x_albumentations{suffix}"]) for r in sel if r[f"x_albumentations{suffix}"]]),
            })
    print(summary)
    out = None if args.out is None else Path(args.out)
    path = write_json("bench_image_ops", {"env": environment(), "args": vars(args), "results": records,
                                          "summary": summary}, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

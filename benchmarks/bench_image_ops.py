"""Images/s of augforge's ImageNet-C ops against imagecorruptions and albumentations, same run.

augforge runs batched (default batch 64); imagecorruptions (the faithful incumbent) and
albumentations' nearest transform (the fast incumbent) run per image, as users call them.
Prints a table and writes benchmarks/results/bench_image_ops.json.

    .venv/bin/python benchmarks/bench_image_ops.py [--sizes 224,32] [--ops fog,snow] [--device cpu,cuda]
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import torch  # noqa: E402

from augforge import build_op, to_float  # noqa: E402
from common import (  # noqa: E402
    best_time,
    environment,
    geomean,
    print_table,
    sample_pictures,
    write_json,
)

IMAGENET_C = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
]

# albumentations' nearest equivalent of each corruption (p=1); None where it has none.
ALBUMENTATIONS = {
    "gaussian_noise": lambda: A.GaussNoise(std_range=(0.18, 0.18), p=1),
    "shot_noise": lambda: A.ShotNoise(p=1),
    "impulse_noise": lambda: A.SaltAndPepper(amount=(0.09, 0.09), p=1),
    "speckle_noise": lambda: A.MultiplicativeNoise(multiplier=(0.65, 1.35), per_channel=True, elementwise=True, p=1),
    "defocus_blur": lambda: A.Defocus(radius=(6, 6), alias_blur=(0.5, 0.5), p=1),
    "glass_blur": lambda: A.GlassBlur(sigma=1.0, max_delta=2, iterations=3, p=1),
    "motion_blur": lambda: A.MotionBlur(blur_limit=(31, 31), p=1),
    "zoom_blur": lambda: A.ZoomBlur(max_factor=(1.2, 1.2), step_factor=(0.02, 0.02), p=1),
    "gaussian_blur": lambda: A.GaussianBlur(sigma_limit=(3, 3), blur_limit=0, p=1),
    "snow": lambda: A.RandomSnow(p=1),
    "frost": None,
    "fog": lambda: A.RandomFog(p=1),
    "brightness": lambda: A.RandomBrightnessContrast(brightness_limit=(0.3, 0.3), contrast_limit=0, p=1),
    "contrast": lambda: A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=(-0.8, -0.8), p=1),
    "elastic_transform": lambda: A.ElasticTransform(p=1),
    "pixelate": lambda: A.Downscale(scale_range=(0.4, 0.4), p=1),
    "jpeg_compression": lambda: A.ImageCompression(quality_range=(15, 15), p=1),
    "spatter": lambda: A.Spatter(p=1),
    "saturate": lambda: A.ColorJitter(brightness=0, contrast=0, saturation=(2, 2), hue=0, p=1),
}


def per_image_rate(fn, pictures, budget_s: float) -> float:
    """Images/s of a per-image function over as many pictures as fit in `budget_s` (at least 2)."""
    import time

    fn(pictures[0])
    t0 = time.perf_counter()
    n = 0
    for pic in pictures:
        fn(pic)
        n += 1
        if n >= 2 and time.perf_counter() - t0 > budget_s:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,32")
    parser.add_argument("--ops", default=",".join(IMAGENET_C))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per incumbent measurement")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from tests.ops.image.reference import reference_corrupt

    rows, records = [], []
    for size in [int(s) for s in args.sizes.split(",")]:
        preset = "imagenet" if size >= 128 else ("tiny" if size >= 64 else "cifar")
        pics = sample_pictures(size, args.batch)
        for name in args.ops.split(","):
            rec: dict[str, object] = {"op": name, "size": size, "preset": preset, "batch": args.batch}
            op = build_op(name, args.severity, preset=preset)
            for device in args.device.split(","):
                x = to_float(pics).to(device)
                t = best_time(lambda op=op, x=x: op(x, 0), repeat=3, min_time=5.0)
                rec[f"augforge_{device}_img_s"] = args.batch / t
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rec["imagecorruptions_img_s"] = per_image_rate(
                    lambda p, n=name: reference_corrupt(p, n, args.severity), pics, args.budget)
                factory = ALBUMENTATIONS.get(name)
                if factory is not None:
                    tf = factory()
                    rec["albumentations_img_s"] = per_image_rate(lambda p, tf=tf: tf(image=p)["image"], pics,
                                                                 args.budget)
            cpu = float(rec["augforge_cpu_img_s"])
            rec["x_imagecorruptions"] = cpu / float(rec["imagecorruptions_img_s"])
            alb = rec.get("albumentations_img_s")
            rec["x_albumentations"] = cpu / float(alb) if alb else None
            records.append(rec)
            rows.append([name, size, cpu, rec.get("augforge_cuda_img_s", "-"), rec["imagecorruptions_img_s"],
                         alb or "-", rec["x_imagecorruptions"], rec["x_albumentations"] or "-"])
            print(f"  {name}@{size}: {cpu:.0f} img/s", flush=True)
    print_table(["op", "size", "augforge cpu img/s", "cuda img/s", "imagecorruptions img/s",
                 "albumentations img/s", "x imagecorruptions", "x albumentations"], rows)
    summary = {}
    for size in {r["size"] for r in records}:
        sel = [r for r in records if r["size"] == size]
        summary[str(size)] = {
            "geomean_x_imagecorruptions": geomean([float(r["x_imagecorruptions"]) for r in sel]),
            "min_x_imagecorruptions": min(float(r["x_imagecorruptions"]) for r in sel),
            "geomean_x_albumentations": geomean([float(r["x_albumentations"]) for r in sel if r["x_albumentations"]]),
        }
    print(summary)
    path = write_json("bench_image_ops", {"env": environment(), "args": vars(args), "results": records,
                                          "summary": summary}, None if args.out is None else __import__("pathlib").Path(args.out))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

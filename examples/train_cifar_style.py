"""Train a tiny CNN CIFAR-style with HybridAugment++ (data side) and AugMix + JSD loss (model side).

The bundled sample photos become 32×32 inputs (shorter side 36, centre crop 32; label = class
folder), are written to two clean WebDataset shards, and streamed with `augforge.stream`: each
picture gets single-image HybridAugment++ in the data pipeline, then AugMix(jsd=True) on the
training device turns the batch into (clean, aug1, aug2) and the loss is
CE(clean) + λ·JSD(clean, aug1, aug2) with λ = 12, as in AugMix's CIFAR training script.
Every draw is seeded by (seed, sample key, epoch), so a rerun repeats the same augmentations.

    .venv/bin/python examples/train_cifar_style.py --steps 20
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image

import augforge
from augforge.datasets.readers import open_reader
from augforge.transforms import AugMix, HybridAugmentPP

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
JSD_WEIGHT = 12.0  # λ of AugMix's cifar.py


def write_clean_shards(out: Path, shards: int = 2) -> tuple[list[str], int]:
    """The samples as 32×32 PNGs with .cls labels, split over `shards` tars; (paths, classes)."""
    reader = open_reader("folder", "augforge:samples", resize=36, center_crop=32)
    paths = [str(out / f"clean-{s:06d}.tar") for s in range(shards)]
    writers = [wds.TarWriter(p) for p in paths]
    labels = set()
    for i in range(len(reader)):
        sample = reader.read(i)
        buf = io.BytesIO()
        Image.fromarray(sample.image).save(buf, format="PNG")
        member = {"__key__": sample.key, "png": buf.getvalue(), "cls": str(sample.label).encode()}
        writers[i % shards].write(member)
        labels.add(sample.label)
    for w in writers:
        w.close()
    return paths, len(labels)


class TinyCNN(torch.nn.Module):
    """Two conv blocks and a linear head: enough to see the loss move."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Linear(32 * 8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def jsd_loss(clean: torch.Tensor, aug1: torch.Tensor, aug2: torch.Tensor) -> torch.Tensor:
    """AugMix's Jensen–Shannon consistency of three logit batches: mean KL of each distribution
    to their mixture."""
    p_clean, p_aug1, p_aug2 = (F.softmax(z, dim=1) for z in (clean, aug1, aug2))
    log_mixture = torch.clamp((p_clean + p_aug1 + p_aug2) / 3.0, 1e-7, 1).log()
    return (F.kl_div(log_mixture, p_clean, reduction="batchmean")
            + F.kl_div(log_mixture, p_aug1, reduction="batchmean")
            + F.kl_div(log_mixture, p_aug2, reduction="batchmean")) / 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(args.seed)  # model initialisation only; augmentation draws are keyed
    device = torch.device(args.device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        urls, classes = write_clean_shards(Path(tmp))
        data = augforge.stream(urls, HybridAugmentPP(mode="single", preset="cifar", seed=args.seed),
                               seed=args.seed, batch_size=args.batch_size, shuffle=16)
        loader = data.loader(num_workers=args.workers)
        augmix = AugMix(preset="cifar", jsd=True, seed=args.seed)
        model = TinyCNN(classes).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                    weight_decay=5e-4)
        mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
        step, epoch = 0, 0
        while step < args.steps:
            data.set_epoch(epoch)
            augmix.set_epoch(epoch)
            for batch in loader:
                x, y = batch["image"].to(device), batch["label"].to(device)
                views = augmix(x, keys=batch["key"])  # (clean, aug1, aug2), drawn on the device
                logits = model((torch.cat(views) - mean) / std)
                clean, aug1, aug2 = logits.split(x.shape[0])
                ce = F.cross_entropy(clean, y)
                jsd = jsd_loss(clean, aug1, aug2)
                loss = ce + JSD_WEIGHT * jsd
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                print(f"epoch {epoch} step {step:3d}  loss {loss.item():.4f}  (ce {ce.item():.4f}, "
                      f"jsd {jsd.item():.4f})  batch {x.shape[0]} on {device.type}", flush=True)
                if step >= args.steps:
                    break
            epoch += 1
    print(f"done: {args.steps} steps in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

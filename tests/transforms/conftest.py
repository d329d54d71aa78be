"""Test pictures for the training-time transforms: small crops of the bundled sample photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"


def crops(height: int, width: int, count: int = 8) -> np.ndarray:
    """`count` uint8 (height, width, 3) crops (corners alternate) of the RGB sample photos, each
    photo first resized so its shorter side is 1.5 x the crop (textures, faces, flat areas)."""
    paths = sorted(SAMPLES.rglob("*.png"))
    out: list[np.ndarray] = []
    side = int(1.5 * max(height, width))
    for k in range(count):
        im = Image.open(paths[k % len(paths)]).convert("RGB")
        scale = side / min(im.size)
        im = im.resize((max(side, round(im.size[0] * scale)), max(side, round(im.size[1] * scale))),
                       Image.BILINEAR)
        a = np.asarray(im)
        top = 0 if k % 2 == 0 else a.shape[0] - height
        left = 0 if (k // 2) % 2 == 0 else a.shape[1] - width
        out.append(a[top:top + height, left:left + width].copy())
    return np.stack(out)


def to_tensor(pictures: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="session")
def pictures32() -> np.ndarray:
    return crops(32, 32)


@pytest.fixture(scope="session")
def pictures_rect() -> np.ndarray:
    return crops(40, 56, count=4)

"""Shared test pictures: deterministic crops of the bundled sample photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAMPLES = Path(__file__).resolve().parents[3] / "datasets" / "samples"


def sample_crops(size: int, count: int = 16) -> np.ndarray:
    """`count` uint8 (size, size, 3) pictures: corner and centre crops of the RGB sample photos,
    resized so the shorter side is 1.5 x size (a mix of textures, faces and smooth areas)."""
    paths = sorted(SAMPLES.rglob("*.png"))
    crops: list[np.ndarray] = []
    side = int(size * 1.5)
    while len(crops) < count:
        for p in paths:
            im = Image.open(p).convert("RGB")
            scale = side / min(im.size)
            im = im.resize((max(side, round(im.size[0] * scale)), max(side, round(im.size[1] * scale))),
                           Image.BILINEAR)
            a = np.asarray(im)
            h, w = a.shape[:2]
            k = len(crops)
            top = [0, h - size, (h - size) // 2][k % 3]
            left = [0, w - size, (w - size) // 2][(k // 3) % 3]
            crops.append(a[top:top + size, left:left + size].copy())
            if len(crops) == count:
                break
    return np.stack(crops)


@pytest.fixture(scope="session")
def images224() -> np.ndarray:
    return sample_crops(224)


@pytest.fixture(scope="session")
def images64() -> np.ndarray:
    return sample_crops(64)


@pytest.fixture(scope="session")
def images32() -> np.ndarray:
    return sample_crops(32)

"""pngenc writes exactly Pillow's PNG bytes (shard checksums depend on it) and reads back losslessly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from augforge.pipelines import pngenc
from augforge.pipelines.shards import encode_image

RNG = np.random.default_rng(7)


def _smooth(h: int, w: int, c: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * (k + 1) + y * (3 - k)) % 256 for k in range(c)]
    return np.stack(planes, -1).astype(np.uint8)


CASES = {
    "rgb-32": _smooth(32, 32, 3),
    "grey-32": _smooth(32, 32, 1),
    "rgb-8x13": RNG.integers(0, 256, (8, 13, 3), dtype=np.uint8),
    "grey-odd": RNG.integers(0, 256, (37, 5, 1), dtype=np.uint8),
    "rgb-flat": np.full((16, 16, 3), 200, np.uint8),
    # noise at level 0 is larger than one 64 KiB encoder block: several IDAT chunks
    "rgb-multi-idat": RNG.integers(0, 256, (300, 400, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("level", [0, 1, 3, 9])
def test_direct_bytes_equal_pillow(name: str, level: int) -> None:
    pixels = CASES[name]
    direct = pngenc.png_direct(pixels, level)
    assert direct == pngenc.png_pillow(pixels, level)
    back = np.asarray(Image.open(io.BytesIO(direct)))
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


def test_multi_idat_case_has_several_chunks() -> None:
    data = pngenc.png_direct(CASES["rgb-multi-idat"], 0)
    assert data.count(b"IDAT") >= 2


def test_non_contiguous_input() -> None:
    pixels = _smooth(20, 40, 3)[:, ::2]
    assert not pixels.flags.c_contiguous
    assert pngenc.encode_png(pixels, 3) == pngenc.png_pillow(np.ascontiguousarray(pixels), 3)


def test_probe_passes_and_encode_image_uses_it() -> None:
    assert pngenc._probe()
    pixels = CASES["rgb-32"]
    assert encode_image(pixels, "png", png_level=3) == pngenc.png_pillow(pixels, 3)


def test_fallback_when_probe_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pngenc, "_fast_ok", False)
    calls: list[int] = []
    monkeypatch.setattr(pngenc, "png_direct", lambda *a: calls.append(1) or b"")
    pixels = CASES["grey-32"]
    assert pngenc.encode_png(pixels, 3) == pngenc.png_pillow(pixels, 3)
    assert not calls

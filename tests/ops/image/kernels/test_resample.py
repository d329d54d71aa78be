"""PIL BOX resampling as matrices: bit-exact 8-bit results and float (mode 'F') results vs PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from augforge.ops.image.kernels.resample import (
    box_matrix,
    box_matrix_fixed,
    resize_box,
    resize_box_levels,
    to_levels,
)

# (H, W) -> (H', W'): non-integer down, up, one axis only, integer factors, to 1 px, ImageNet-C sizes.
SIZES = [
    ((224, 224), (134, 134)),
    ((224, 224), (89, 89)),
    ((89, 89), (224, 224)),
    ((67, 67), (224, 224)),
    ((32, 32), (30, 30)),
    ((27, 27), (32, 32)),
    ((64, 64), (57, 57)),
    ((37, 53), (20, 41)),
    ((13, 8), (29, 17)),
    ((50, 70), (50, 33)),
    ((50, 70), (81, 70)),
    ((40, 30), (23, 61)),
    ((64, 64), (16, 16)),
    ((10, 12), (1, 1)),
]


def random_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 31 * h + w)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def levels_of(image: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(image).double()
    return t.permute(2, 0, 1) if t.ndim == 3 else t


def as_image(levels: torch.Tensor) -> np.ndarray:
    t = levels.permute(1, 2, 0) if levels.ndim == 3 else levels
    return t.numpy().astype(np.uint8)


@pytest.mark.parametrize("size_in, size_out", SIZES)
def test_8bit_matches_pil_exactly(size_in, size_out):
    for channels in (3, 1):
        image = random_image(*size_in, channels=channels)
        want = np.asarray(Image.fromarray(image).resize(size_out[::-1], Image.BOX))
        got = as_image(resize_box_levels(levels_of(image), size_out))
        np.testing.assert_array_equal(got, want)


def test_8bit_runs_horizontal_pass_first():
    """Pillow <= 12 (and the reference's 5.0) always resample width first; Pillow 13 goes vertical
    first for tall reductions. Our order equals PIL's two single-axis resizes, width first."""
    image = random_image(90, 30, seed=4)
    pil = Image.fromarray(image)
    want = np.asarray(pil.resize((12, 90), Image.BOX).resize((12, 20), Image.BOX))
    got = as_image(resize_box_levels(levels_of(image), (20, 12)))
    np.testing.assert_array_equal(got, want)
    other = np.asarray(pil.resize((30, 20), Image.BOX).resize((12, 20), Image.BOX))
    assert not np.array_equal(want, other), "the two pass orders must differ on this case"


@pytest.mark.parametrize("size_in, size_out", SIZES)
def test_float_matches_pil_mode_f(size_in, size_out):
    rng = np.random.default_rng(1)
    image = rng.random(size_in).astype(np.float32)
    want = np.asarray(Image.fromarray(image, mode="F").resize(size_out[::-1], Image.BOX))
    got = resize_box(torch.from_numpy(image).double(), size_out).numpy()
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_batched_and_float32():
    x = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    y = resize_box(x, (7, 45))
    assert y.shape == (2, 3, 7, 45) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 2], resize_box(x[1, 2].double(), (7, 45)).float())
    same = resize_box(x, (20, 30))
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()


def test_matrix_rows_are_normalised_boxes():
    for n_in, n_out in [(224, 134), (89, 224), (30, 7), (5, 5)]:
        m = box_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in)
        torch.testing.assert_close(m.sum(dim=1), torch.ones(n_out, dtype=torch.float64))
        assert bool((m >= 0).all())
        fixed = box_matrix_fixed(n_in, n_out)
        assert torch.equal(fixed, fixed.round()) and int(fixed.max()) <= 1 << 22


def test_integer_factors_equal_area_interpolation():
    x = torch.rand(1, 2, 24, 36, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(resize_box(x, (8, 9)), F.interpolate(x, size=(8, 9), mode="area"))


def test_upsampling_copies_pixel_floor_of_centre():
    """BOX upsampling is a one-hot matrix selecting source floor((i + 0.5) · in / out)."""
    for n_in, n_out in [(89, 224), (67, 224), (3, 10)]:
        m = box_matrix(n_in, n_out)
        src = torch.floor((torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out).long()
        assert torch.equal(m, F.one_hot(src, n_in).double())


def test_levels_helpers():
    x = torch.arange(256, dtype=torch.float32) / 255.0
    assert torch.equal(to_levels(x), torch.arange(256, dtype=torch.float64))
    with pytest.raises(TypeError, match="float64"):
        resize_box_levels(torch.zeros(4, 4), (2, 2))
    with pytest.raises(ValueError, match=">= 1"):
        box_matrix(0, 4)

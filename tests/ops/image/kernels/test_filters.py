"""Border-exact padding and filters (kernels.filters) against numpy, scipy.ndimage and OpenCV:
small pads (torch's own padding), pads as large as or larger than the image (index folding),
banded-tile matmuls against dense ones, and the FFT path of filter2d."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from augforge.ops.image.kernels import filters as Fi

NUMPY_MODE = {"nearest": "edge", "reflect": "symmetric", "mirror": "reflect", "wrap": "wrap",
              "constant": "constant"}
MODES = ("nearest", "reflect", "mirror", "wrap")


@pytest.mark.parametrize("mode", list(NUMPY_MODE))
@pytest.mark.parametrize("pads", [(1, 2, 3, 0), (4, 4, 6, 6), (6, 6, 8, 8), (7, 0, 0, 9), (20, 3, 1, 31)])
def test_pad_matches_numpy(mode, pads):
    """(7, 9) planes: pads below, equal to and far beyond the size (repeated folding)."""
    x = np.random.default_rng(0).random((2, 3, 7, 9))
    top, bottom, left, right = pads
    want = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NUMPY_MODE[mode])
    got = Fi.pad(torch.from_numpy(x), top, bottom, left, right, mode)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("mode", MODES)
def test_pad_any_leading_dims_and_integer_dtypes(mode):
    x = torch.arange(5 * 6, dtype=torch.uint8).view(5, 6)
    want = np.pad(x.numpy(), ((2, 1), (3, 2)), mode=NUMPY_MODE[mode])
    np.testing.assert_array_equal(Fi.pad(x, 2, 1, 3, 2, mode).numpy(), want)
    five = x.expand(2, 3, 4, 5, 6)
    assert Fi.pad(five, 2, 1, 3, 2, mode).shape == (2, 3, 4, 8, 11)
    with pytest.raises(ValueError, match="border mode"):
        Fi.pad(x, 1, 1, 1, 1, "symmetric")


def test_gaussian_weights_are_scipys_bit_for_bit():
    """scipy's weights come out of its filter applied to a unit impulse (exactly, in float64)."""
    for sigma, truncate in [(0.4, 4.0), (1.0, 4.0), (3.0, 4.0), (6.0, 4.0), (2.5, 3.0)]:
        w = np.array(Fi.gaussian_weights(sigma, truncate))
        r = (len(w) - 1) // 2
        assert r == int(truncate * sigma + 0.5)
        impulse = np.zeros(4 * r + 1)
        impulse[2 * r] = 1.0
        got = ndi.gaussian_filter1d(impulse, sigma, truncate=truncate, mode="constant")
        np.testing.assert_array_equal(got[r:3 * r + 1], w)
    assert Fi.gaussian_weights(0.0) == (1.0,)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sigma, truncate", [(0.5, 4.0), (1.0, 4.0), (3.0, 4.0), (6.0, 4.0), (30.0, 3.0)])
def test_gaussian_filter_matches_scipy(mode, sigma, truncate):
    """Kernels shorter and (σ = 30: 181 taps) much longer than the 21×34 image."""
    x = np.random.default_rng(1).random((2, 2, 21, 34))
    want = np.stack([[ndi.gaussian_filter(x[i, c], sigma, mode=mode, truncate=truncate) for c in range(2)]
                     for i in range(2)])
    got = Fi.gaussian_filter(torch.from_numpy(x), sigma, mode=mode, truncate=truncate)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    got32 = Fi.gaussian_filter(torch.from_numpy(x).float(), sigma, mode=mode, truncate=truncate)
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=2e-6)


def test_gaussian_filter_per_axis_sigmas_and_identity():
    x = torch.rand(1, 3, 40, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    want = ndi.gaussian_filter(x[0].numpy(), (0, 2.0, 0.0), mode="nearest")
    np.testing.assert_allclose(Fi.gaussian_filter(x, (2.0, 0.0))[0].numpy(), want, atol=1e-12)
    same = Fi.gaussian_filter(x, 0.0)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("mode", MODES)
def test_correlate1d_matches_scipy_for_any_odd_kernel(mode):
    rng = np.random.default_rng(3)
    x = rng.random((3, 11, 16))
    for taps in (1, 3, 7, 41):  # 41 taps: longer than both sides
        k = rng.random(taps)
        for dim, axis in ((-2, 1), (-1, 2)):
            want = ndi.correlate1d(x, k, axis=axis, mode=mode)
            got = Fi.correlate1d(torch.from_numpy(x), k.tolist(), dim, mode)
            np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="odd-length"):
        Fi.correlate1d(torch.from_numpy(x), [0.5, 0.5], -1, mode)


@pytest.mark.parametrize("tile", [1, 3, 8, 64])
def test_apply_tiles_equals_the_dense_matmul(tile):
    """A banded matrix with an all-zero row, applied along rows and along columns."""
    rng = np.random.default_rng(4)
    m = np.zeros((13, 20))
    for i in range(13):
        if i != 5:
            j = int(i * 1.4)
            m[i, j:j + 3] = rng.random(min(3, 20 - j))
    x = torch.from_numpy(rng.random((2, 3, 20, 20)))
    tiles = Fi.matrix_tiles(torch.from_numpy(m), tile)
    mt = torch.from_numpy(m)
    torch.testing.assert_close(Fi.apply_tiles(x, tiles, -2), mt @ x, rtol=0, atol=1e-12)
    torch.testing.assert_close(Fi.apply_tiles(x, tiles, -1), x @ mt.T, rtol=0, atol=1e-12)


def test_tiled_and_whole_correlation_agree(monkeypatch):
    """The CPU's tiles and the single whole-side tile other devices use give the same result."""
    x = torch.rand(2, 3, 45, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    tiled = Fi.gaussian_filter(x, 2.5, mode="reflect")
    monkeypatch.setattr(Fi, "CPU_TILE", 1000)
    torch.testing.assert_close(Fi.gaussian_filter(x, 2.5, mode="reflect"), tiled, rtol=0, atol=1e-14)


@pytest.mark.parametrize("size", [3, 4, 9, 15])
def test_filter2d_matches_cv2(size):
    """3×3 and 4×4 go through conv2d, 9×9 and 15×15 through the FFT; REFLECT_101 borders, and
    cv2's anchor (k // 2) for even sizes."""
    rng = np.random.default_rng(size)
    x = rng.random((2, 3, 30, 41))
    k = rng.random((size, size))
    k /= k.sum()
    want = np.stack([[cv2.filter2D(x[i, c], -1, k) for c in range(3)] for i in range(2)])
    got = Fi.filter2d(torch.from_numpy(x), torch.from_numpy(k))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    got32 = Fi.filter2d(torch.from_numpy(x).float(), torch.from_numpy(k))
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=2e-6)

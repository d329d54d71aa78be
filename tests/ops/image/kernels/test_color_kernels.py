"""HSV conversion kernels against scikit-image (the library ImageNet-C's colour ops call)."""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import hsv2rgb, rgb2hsv

from augforge.ops.image.kernels.color import (
    as_rgb,
    hsv_to_rgb,
    rgb_to_gray,
    rgb_to_hsv,
    scale_saturation,
    shift_value,
)


def tricky_rgb() -> np.ndarray:
    """Random 8-bit colours plus greys, black, white and every kind of tie for the max channel."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3)).astype(np.float64) / 255
    a[:4] = a[:4, :, :1]  # greys
    a[4, :4] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 0, 1]]
    a[5:7, :, 1] = a[5:7, :, 0]  # R == G
    a[7:9, :, 2] = a[7:9, :, 1]  # G == B
    a[9:11, :, 2] = a[9:11, :, 0]  # R == B
    return a


def to_chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def test_rgb_to_hsv_matches_skimage():
    a = tricky_rgb()
    np.testing.assert_array_equal(to_hwc(rgb_to_hsv(to_chw(a))), rgb2hsv(a))


def test_hsv_to_rgb_matches_skimage():
    rng = np.random.default_rng(1)
    hsv = rng.random((32, 32, 3))
    hsv[0, :, 0] = np.linspace(0, 1, 32)  # includes H = 1.0 and sector boundaries k/6
    hsv[1, :7, 0] = np.arange(7) / 6
    hsv[2, :, 1] = 0.0  # grey
    np.testing.assert_array_equal(to_hwc(hsv_to_rgb(to_chw(hsv))), hsv2rgb(hsv))


def test_round_trip_and_batch_shapes():
    x = torch.rand(2, 3, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    hsv = rgb_to_hsv(x)
    assert hsv.shape == x.shape and float(hsv.min()) >= 0 and float(hsv.max()) <= 1
    torch.testing.assert_close(hsv_to_rgb(hsv), x, atol=1e-12, rtol=0)
    x32 = x.float()
    assert rgb_to_hsv(x32).dtype == torch.float32
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(x32)), x32, atol=1e-6, rtol=0)


def test_gray_weights_and_replication():
    x = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
    torch.testing.assert_close(rgb_to_gray(x), torch.full((1, 2, 2), 0.299))
    torch.testing.assert_close(rgb_to_gray(x.roll(1, 0)), torch.full((1, 2, 2), 0.587))
    torch.testing.assert_close(rgb_to_gray(x.roll(2, 0)), torch.full((1, 2, 2), 0.114))
    g = torch.rand(4, 1, 5, 5)
    assert as_rgb(g).shape == (4, 3, 5, 5) and torch.equal(as_rgb(g)[:, 2], g[:, 0])
    torch.testing.assert_close(rgb_to_gray(as_rgb(g)), g)


def test_closed_forms_equal_the_hsv_round_trip():
    """shift_value / scale_saturation are skimage's HSV round trip with V or S changed, written in
    closed form: equal to the round trip (float64) on every kind of pixel, including grey pixels
    (which saturate gives hue 0) and black ones (which brightness turns grey)."""
    a = tricky_rgb()
    x = to_chw(a)
    for delta in (0.1, 0.5, 1.0, -0.3):
        hsv = rgb2hsv(a)
        hsv[..., 2] = np.clip(hsv[..., 2] + delta, 0, 1)
        np.testing.assert_allclose(to_hwc(shift_value(x, delta)), hsv2rgb(hsv), atol=1e-12, rtol=0)
    for mult, offset in ((0.3, 0.0), (5.0, 0.1), (20.0, 0.2), (1.5, -0.2), (0.0, 1.0)):
        hsv = rgb2hsv(a)
        hsv[..., 1] = np.clip(hsv[..., 1] * mult + offset, 0, 1)
        got = to_hwc(scale_saturation(x, mult, offset))
        np.testing.assert_allclose(got, hsv2rgb(hsv), atol=1e-12, rtol=0)
    batch = torch.stack([x, x.flip(-1)]).float()  # batched, float32
    torch.testing.assert_close(shift_value(batch, 0.3)[1], shift_value(x.flip(-1).float(), 0.3))
    assert scale_saturation(batch, 5.0, 0.1).dtype == torch.float32

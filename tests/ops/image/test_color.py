"""Colour ops (brightness, contrast, saturate): pixel fidelity to imagecorruptions at 224² and to an
independent numpy/skimage version of the reference definitions for the CIFAR and Tiny presets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import hsv2rgb, rgb2hsv

import augforge
from augforge.core.errors import InvalidParameterError
from augforge.core.registry import build_op, get_op

from .metrics import psnr
from .reference import reference_corrupt

NAMES = ("brightness", "contrast", "saturate")
LEVELS = (1, 2, 3, 4, 5)
MIN_PSNR_DB = 40.0

# Independent copy of the constants (reference doc §1.5, §1.6 and §2.1).
CONSTANTS = {
    "imagenet": {
        "brightness": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        "contrast": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
    },
    "cifar": {
        "brightness": [(0.05,), (0.1,), (0.15,), (0.2,), (0.3,)],
        "contrast": [(0.75,), (0.5,), (0.4,), (0.3,), (0.15,)],
        "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
    },
    "tiny": {
        "brightness": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        "contrast": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],
    },
}
PARAMS = {"brightness": ("delta",), "contrast": ("factor",), "saturate": ("mult", "offset")}


def numpy_color(image: np.ndarray, name: str, c: tuple[float, ...]) -> np.ndarray:
    """The reference definitions with numpy + skimage: float RGB HWC in [0, 1] -> float RGB."""
    x = image.astype(np.float64)
    if name == "contrast":
        means = x.mean(axis=(0, 1), keepdims=True)
        return np.clip((x - means) * c[0] + means, 0, 1)
    hsv = rgb2hsv(x)
    if name == "brightness":
        hsv[..., 2] = np.clip(hsv[..., 2] + c[0], 0, 1)
    else:
        hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1)


def truncate(x: np.ndarray) -> np.ndarray:
    return np.uint8(x * 255)


def ours(images: np.ndarray, name: str, severity: int, preset: str) -> np.ndarray:
    out = augforge.corrupt(augforge.to_float(images), name, severity, preset=preset)
    return augforge.to_uint8(out, mode="truncate")


@pytest.mark.parametrize("severity", LEVELS)
@pytest.mark.parametrize("name", NAMES)
def test_imagenet_matches_imagecorruptions(images224, name, severity):
    got = ours(images224, name, severity, "imagenet")
    worst = min(psnr(g, reference_corrupt(im, name, severity)) for g, im in zip(got, images224, strict=True))
    assert worst >= MIN_PSNR_DB, f"{name} s{severity}: worst PSNR {worst:.2f} dB"


@pytest.mark.parametrize("preset, fixture", [("cifar", "images32"), ("tiny", "images64")])
@pytest.mark.parametrize("name", NAMES)
def test_small_presets_match_numpy_reference(request, preset, fixture, name):
    images = request.getfixturevalue(fixture)
    for level in LEVELS:
        got = ours(images, name, level, preset)
        c = CONSTANTS[preset][name][level - 1]
        want = [truncate(numpy_color(im / 255.0, name, c)) for im in images]
        worst = min(psnr(g, w) for g, w in zip(got, want, strict=True))
        assert worst >= MIN_PSNR_DB, f"{preset} {name} s{level}: worst PSNR {worst:.2f} dB"


@pytest.mark.parametrize("preset", ["imagenet", "cifar", "tiny"])
@pytest.mark.parametrize("name", NAMES)
def test_tables_equal_the_reference_constants(name, preset):
    spec = get_op(name)
    assert spec.presets == ("imagenet", "cifar", "tiny")
    for level in LEVELS:
        params = spec.params(level, preset)
        got = tuple(params[p] for p in PARAMS[name])
        assert got == pytest.approx(CONSTANTS[preset][name][level - 1], abs=0, rel=1e-12), f"s{level}"


@pytest.mark.parametrize("name", NAMES)
def test_grayscale_goes_through_replicated_rgb(images64, name):
    """C = 1: the op on replicated RGB, back to gray with 0.299 R + 0.587 G + 0.114 B."""
    gray = images64[:4].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gray = np.uint8(gray)[..., None]
    x = augforge.to_float(gray).double()
    got = augforge.corrupt(x, name, 4).numpy()[:, 0]
    c = CONSTANTS["imagenet"][name][3]
    for g, im in zip(got, gray, strict=True):
        rgb = numpy_color(np.repeat(im / 255.0, 3, axis=-1), name, c)
        want = rgb @ np.array([0.299, 0.587, 0.114])
        np.testing.assert_allclose(g, want, atol=1e-9)


def test_saturate_gives_grey_pixels_the_offset_hue_zero():
    """A grey pixel has H = S = 0 in skimage; saturate's offset turns it red-ish (H = 0)."""
    x = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    y = build_op("saturate", 5)(x)  # S = 0·20 + 0.2
    torch.testing.assert_close(y[0, :, 0, 0], torch.tensor([0.5, 0.4, 0.4], dtype=torch.float64))


def test_contrast_uses_per_channel_means():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    x[0, 0, :, :4] = 1.0  # channel 0: mean 0.5
    x[0, 1] = 0.8  # channel 1: constant, stays
    y = build_op("contrast", 1)(x)  # factor 0.4
    torch.testing.assert_close(y[0, 0, 0, :], torch.tensor([0.7] * 4 + [0.3] * 4, dtype=torch.float64))
    torch.testing.assert_close(y[0, 1], x[0, 1])


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("brightness", {"delta": 2.0}, "delta must be <= 1"),
        ("brightness", {"delta": "a"}, "delta must be a number"),
        ("contrast", {"factor": -0.5}, "factor must be >= 0"),
        ("saturate", {"mult": float("inf")}, "mult must be finite"),
        ("saturate", {"offset": -3}, "offset must be >= -1"),
    ],
)
def test_bad_overrides(name, params, message):
    with pytest.raises(InvalidParameterError, match=message):
        build_op(name, 1, **params)

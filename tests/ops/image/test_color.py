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
from augforge.ops.image import color

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


def chw(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC numpy -> uint8 (B, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def ours(images: np.ndarray, name: str, severity: int, preset: str) -> np.ndarray:
    out = augforge.corrupt(augforge.to_float(images), name, severity, preset=preset)
    return augforge.to_uint8(out, mode="truncate")


@pytest.mark.parametrize("severity", LEVELS)
@pytest.mark.parametrize("name", NAMES)
def test_imagenet_matches_imagecorruptions(images224, name, severity):
    got = ours(images224, name, severity, "imagenet")
    refs = [reference_corrupt(im, name, severity) for im in images224]
    worst = min(psnr(g, r) for g, r in zip(got, refs, strict=True))
    assert worst >= MIN_PSNR_DB, f"{name} s{severity}: worst PSNR {worst:.2f} dB"
    # the 8-bit path on the same uint8 pictures
    fast = build_op(name, severity)(chw(images224)).permute(0, 2, 3, 1).numpy()
    worst = min(psnr(g, r) for g, r in zip(fast, refs, strict=True))
    assert worst >= MIN_PSNR_DB, f"{name} s{severity} uint8: worst PSNR {worst:.2f} dB"


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


# --------------------------------------------------------------------------- the 8-bit path


def float_levels(op, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The definition of the 8-bit path: the float path on x / 255, truncated like the savers."""
    out = op(x.to(dtype) / 255.0)
    return torch.from_numpy(augforge.to_uint8(out, mode="truncate")).permute(0, 3, 1, 2)


def check_uint8(op, x: torch.Tensor) -> None:
    """Brightness and saturate: the float32 path's levels exactly. Contrast: its table is the
    float64 path's levels (exactly); the float32 path rounds its mean and products, so a value whose
    exact level lies within ~1e-4 of the truncation boundary may land one level lower or higher."""
    got = op(x)
    assert got.dtype == torch.uint8 and got.shape == x.shape and got.is_contiguous()
    want = float_levels(op, x)
    if op.name != "contrast":
        assert torch.equal(got, want), f"{op!r}: {(got != want).sum()} levels differ"
        return
    assert torch.equal(got, float_levels(op, x, torch.float64)), f"{op!r} differs from float64"
    diff = (got.int() - want.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 1e-4, repr(op)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(224, 224), (96, 80), (64, 64), (37, 53), (32, 32)])
def test_uint8_path_equals_the_float_path(images224, name, shape):
    """uint8 (B, C, H, W) in -> uint8 out, the float path's levels: RGB and gray, every severity,
    cv2 per-picture and batched (small) branches, odd sizes."""
    h, w = shape
    rgb = chw(images224[:6, :h, :w])
    gray = chw(np.uint8(images224[6:12, :h, :w] @ np.array([0.299, 0.587, 0.114]))[..., None])
    for level in LEVELS:
        op = build_op(name, level)
        for x in (rgb, gray):
            check_uint8(op, x)


@pytest.mark.parametrize("preset, fixture", [("cifar", "images32"), ("tiny", "images64")])
@pytest.mark.parametrize("name", NAMES)
def test_uint8_path_small_presets(request, preset, fixture, name):
    x = chw(request.getfixturevalue(fixture))
    for level in LEVELS:
        check_uint8(build_op(name, level, preset=preset), x)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [224, 40])
def test_uint8_path_is_batch_independent(images224, name, size):
    """Picture i's levels do not depend on its batch (runs of pictures share cv2 calls) nor on
    the memory layout."""
    x = chw(images224[:7, :size, :size])
    op = build_op(name, 4)
    whole = op(x)
    for i in range(len(x)):
        assert torch.equal(op(x[i:i + 1]), whole[i:i + 1]), f"{name}: picture {i}"
    assert torch.equal(op(x[2:5]), whole[2:5])
    channels_last = torch.from_numpy(np.ascontiguousarray(images224[:7, :size, :size])).permute(0, 3, 1, 2)
    assert torch.equal(op(channels_last), whole)


def test_brightness_uint8_every_value_and_channel_pair():
    """Brightness maps each channel level c of a pixel with max V through c · V'/V: all 32 896
    (V, c) pairs, every severity of every preset, equal the float path."""
    v, c = torch.tril_indices(256, 256)
    x = torch.stack((v, c, torch.zeros_like(v))).to(torch.uint8).view(1, 3, 128, 257)
    rotated = x.roll(1, dims=1)  # the max in another channel
    for preset in ("imagenet", "cifar"):
        for level in LEVELS:
            op = build_op("brightness", level, preset=preset)
            check_uint8(op, torch.cat((x, rotated)))


def test_saturate_uint8_every_max_min_and_channel_triple():
    """Saturate maps each channel level c of a pixel with max V and min m: all 2 829 056 triples
    m <= c <= V equal the float path at every ImageNet severity (including s5, whose cv2 form
    differs from float32 on a few triples, whose pixels are then recomputed)."""
    x = color._all_triples().permute(2, 1, 0, 3).reshape(1, 3, 11008, 257)
    assert len(set((x[0, 0].long() * 65536 + x[0, 1].long() * 256 + x[0, 2].long()).view(-1).tolist())) \
        == 2829056 and bool((x[0, 2] <= x[0, 1]).all() and (x[0, 1] <= x[0, 0]).all())
    for level in LEVELS:
        check_uint8(build_op("saturate", level), x)


def test_saturate_fast_form_is_checked_before_use():
    """At (mult 20, offset 0.2) the float32 path truncates (129, 127, 123) to G = 85 (its float32
    error exceeds the savers' slack; exactly it is 86.0); the cv2 form says 86, so the check finds
    the max levels of such triples and the 8-bit path recomputes those pixels by the float route."""
    x = torch.tensor([129, 127, 123], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 8, 8).contiguous()
    x[0, :, 0, 1] = torch.tensor([200, 120, 40], dtype=torch.uint8)  # an unpatched pixel
    op = build_op("saturate", 5)
    assert op.params == {"mult": 20.0, "offset": 0.2}
    assert color._saturate_fast(x, 20.0, 0.2)[0, :, 0, 0].tolist() == [129, 86, 0]
    assert float_levels(op, x)[0, :, 0, 0].tolist() == [129, 85, 0]
    color._SATURATE_PATCH.pop((20.0, 0.2), None)
    got = op(x)
    assert got[0, :, 0, 0].tolist() == [129, 85, 0] and torch.equal(got, float_levels(op, x))
    assert color._SATURATE_PATCH[(20.0, 0.2)] == (129, 130)


def test_brightness_fast_form_serves_the_reference_constants():
    """The cv2 form passes its check (so it runs) for every ImageNet and CIFAR constant."""
    x = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for preset in ("imagenet", "cifar"):
        for level in LEVELS:
            op = build_op("brightness", level, preset=preset)
            key = ("brightness", op.params["delta"])
            color._EXACT.pop(key, None)
            op(x)
            assert color._EXACT[key], key


def test_saturate_fast_form_serves_the_reference_constants():
    """The cv2 form runs for every ImageNet and CIFAR constant, with pixels to recompute only at
    ImageNet s5."""
    x = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for preset in ("imagenet", "cifar"):
        for level in LEVELS:
            op = build_op("saturate", level, preset=preset)
            key = (op.params["mult"], op.params["offset"])
            color._SATURATE_PATCH.pop(key, None)
            op(x)
            lo, hi = color._SATURATE_PATCH[key]
            assert (lo <= hi) == (preset == "imagenet" and level == 5), key


def test_contrast_uint8_on_many_means():
    """Contrast's per-channel tables (cv2 affine map where provably equal, else LUT) against the
    float64 path on 120 random planes, large (cv2) and small (gather)."""
    gen = torch.Generator().manual_seed(5)
    for size in (72, 24):
        base = torch.nn.functional.interpolate(torch.rand(20, 3, 4, 4, generator=gen), size=(size, size),
                                               mode="bilinear")
        noise = torch.randn(20, 3, size, size, generator=gen) * 40
        x = (base * 255 + noise).clamp(0, 255).to(torch.uint8)
        for factor in (0.4, 0.05, 0.75, 1.7):
            check_uint8(build_op("contrast", 1, factor=factor), x)


def test_contrast_uint8_avoids_rounding_ties():
    """A 50 x 100 plane with level sum 49 999 (255·mean = 9.9998): at factor 1/2 every even level
    k sits exactly on a rounding tie of the float32 affine form (k/2 + 4.9999 + 1e-4 − 1/2), so the
    plane must take the table: floor(clip(base + k/255 · factor)·255 + 1e-4) in float64, base =
    sum / (N·255) · (1 − factor)."""
    flat = torch.full((5000,), 10, dtype=torch.int64)
    flat[:40] = torch.arange(40) * 6
    excess = int(flat.sum()) - 49999
    flat[40:40 + excess] -= 1
    x = flat.to(torch.uint8).view(1, 1, 50, 100)
    assert int(x.sum()) == 49999
    base = 49999 / (5000 * 255.0) * 0.5
    table = np.floor(np.clip(base + np.arange(256) / 255.0 * 0.5, 0, 1) * 255.0 + 1e-4)
    want = torch.from_numpy(table.astype(np.uint8))[x.long()]
    op = build_op("contrast", 1, factor=0.5)
    assert torch.equal(op(x), want)
    assert torch.equal(op(x.expand(1, 3, 50, 100).contiguous())[:, 2:], want)
    # the batched (small-picture) route gives the same levels
    small = x.view(1, 1, 25, 200)[:, :, :, :100].contiguous()  # every other row: another sum
    total = int(small.sum())
    base = total / (2500 * 255.0) * 0.5
    table = np.floor(np.clip(base + np.arange(256) / 255.0 * 0.5, 0, 1) * 255.0 + 1e-4)
    assert torch.equal(op(small), torch.from_numpy(table.astype(np.uint8))[small.long()])


def test_uint8_path_is_taken():
    for name in NAMES:
        assert get_op(name).cls.takes_uint8()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_uint8_path(images64, name):
    """On CUDA the 8-bit path is the device's own float route (brightness, saturate) or the same
    float64 tables (contrast)."""
    x = chw(images64).cuda()
    op = build_op(name, 4)
    gpu = op(x)
    assert gpu.is_cuda and gpu.dtype == torch.uint8
    want = float_levels(op, x, torch.float64 if name == "contrast" else torch.float32)
    assert torch.equal(gpu.cpu(), want)

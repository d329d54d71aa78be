"""AugMix's batched ops against PIL on uint8 pictures, and the level → parameter semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from augforge.ops.frequency import augmix_ops
from augforge.ops.frequency.augmix_ops import (
    OP_INDEX,
    OPS,
    apply_op,
    apply_ops,
    op_parameters,
    sample_ops,
)
from tests.transforms.conftest import crops, to_tensor


def pil_op(img: Image.Image, name: str, param: float | None) -> Image.Image:
    """The reference's PIL call for op `name` with its PIL-facing parameter (output = input size)."""
    size = img.size
    affine = {
        "shear_x": lambda p: (1, p, 0, 0, 1, 0),
        "shear_y": lambda p: (1, 0, 0, p, 1, 0),
        "translate_x": lambda p: (1, 0, p, 0, 1, 0),
        "translate_y": lambda p: (1, 0, 0, 0, 1, p),
    }
    if name == "autocontrast":
        return ImageOps.autocontrast(img)
    if name == "equalize":
        return ImageOps.equalize(img)
    if name == "posterize":
        return ImageOps.posterize(img, int(param))
    if name == "solarize":
        return ImageOps.solarize(img, int(param))
    if name == "rotate":
        return img.rotate(param, resample=Image.BILINEAR)
    if name in affine:
        return img.transform(size, Image.AFFINE, affine[name](param), resample=Image.BILINEAR)
    enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
                "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}[name]
    return enhancer(img).enhance(param)


CASES = [
    ("autocontrast", None), ("equalize", None), ("posterize", 4), ("posterize", 3), ("posterize", 1),
    ("solarize", 180), ("solarize", 254), ("solarize", 128), ("rotate", 8), ("rotate", -3), ("rotate", 29),
    ("shear_x", 0.09), ("shear_x", -0.0517), ("shear_y", 0.03), ("shear_y", -0.27),
    ("translate_x", 3), ("translate_x", -7), ("translate_y", 2), ("translate_y", -10),
    ("color", 0.118), ("color", 0.64), ("color", 1.9), ("contrast", 0.3), ("contrast", 1.7),
    ("brightness", 0.5), ("brightness", 1.6), ("sharpness", 0.28), ("sharpness", 1.9),
]


@pytest.mark.parametrize(("name", "param"), CASES)
def test_op_matches_pil_exactly(name, param, pictures32, pictures_rect):
    """Every op reproduces PIL bit for bit on RGB pictures (square and 40x56) and on grayscale."""
    gray = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in pictures_rect[:2]])[..., None]
    for pics in (pictures32, pictures_rect, gray):
        x = to_tensor(pics)
        ours = (apply_op(x, name, param) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for a, o in zip(pics, ours, strict=True):
            img = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
            ref = np.asarray(pil_op(img, name, param)).reshape(a.shape)
            np.testing.assert_array_equal(o, ref, err_msg=f"{name}({param}) differs from PIL")


def test_outputs_lie_on_the_8bit_grid(pictures32):
    x = to_tensor(pictures32)
    for name, param in CASES:
        y = apply_op(x, name, param) * 255
        assert torch.equal(y, y.round()), name


def test_float64_matches_float32(pictures32):
    x = to_tensor(pictures32)
    for name, param in CASES[::3]:
        a = apply_op(x, name, param)
        b = apply_op(x.double(), name, param)
        assert b.dtype == torch.float64
        torch.testing.assert_close(b.float(), a, atol=1e-7, rtol=0)


# Ranges from the AugMix table (reference §6.1), typed here: (severity, image size) -> op -> (min, max)
RANGES = {
    (3, 32): {"posterize": (3, 4), "rotate": (0, 8), "solarize": (180, 254), "shear_x": (0.003, 0.09),
              "translate_x": (0, 3), "color": (0.118, 0.64)},
    (1, 224): {"posterize": (4, 4), "rotate": (0, 2), "solarize": (231, 254), "shear_y": (0.003, 0.03),
               "translate_y": (0, 7), "sharpness": (0.118, 0.28)},
}


@pytest.mark.parametrize(("severity", "size"), list(RANGES))
def test_parameter_ranges(severity, size):
    """Levels ℓ ~ U(0.1, severity) map to the table's parameter ranges, extremes attained."""
    gen = torch.Generator().manual_seed(5)
    u = torch.rand(40000, 3, generator=gen, dtype=torch.float64)
    for name, (lo, hi) in RANGES[(severity, size)].items():
        _, levels, negate = sample_ops(u, len(OPS), severity)
        ops = torch.full_like(levels, OP_INDEX[name], dtype=torch.long)
        p = op_parameters(ops, levels, negate, size, size)
        mag = p.abs()
        if name in ("rotate", "translate_x", "translate_y", "posterize", "solarize"):
            assert torch.equal(mag, mag.round()), f"{name} must be an integer parameter"
            assert mag.min() == lo and mag.max() == hi, (name, mag.min(), mag.max())
        else:
            assert mag.min() >= lo - 1e-12 and mag.max() <= hi, (name, mag.min(), mag.max())
            assert mag.min() < lo + 0.002 and mag.max() > hi - 0.002, (name, mag.min(), mag.max())
        if name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
            frac_negative = float((p < 0).sum() / (p != 0).sum())
            assert abs(frac_negative - 0.5) < 0.02, name
        else:
            assert (p > 0).all(), name


def test_level_sampling_and_int_param_boundaries():
    """ℓ = 0.1 + (sev − 0.1)·u; int parameters floor ℓ·max/10 (not round)."""
    u = torch.tensor([[0.0, 0.0, 0.2], [0.99, 1.0, 0.9], [0.5, 0.5, 0.5]], dtype=torch.float64)
    ops, levels, negate = sample_ops(u, 9, 3)
    torch.testing.assert_close(levels, torch.tensor([0.1, 3.0, 1.55], dtype=torch.float64))
    assert ops.tolist() == [0, 8, 4] and negate.tolist() == [False, True, False]
    lv = torch.tensor([0.39, 0.4, 2.96875, 2.96874], dtype=torch.float64)
    sol = op_parameters(torch.full((4,), OP_INDEX["solarize"]), lv, torch.zeros(4, dtype=torch.bool), 32, 32)
    assert sol.tolist() == [256 - 9, 256 - 10, 256 - 76, 256 - 75]
    tr = op_parameters(torch.full((4,), OP_INDEX["translate_x"]), lv, torch.ones(4, dtype=torch.bool),
                       224, 32)
    assert tr.tolist() == [-0.0, -0.0, -3.0, -3.0]  # int(ℓ·(32/3)/10), width 32, negated
    tr_fixed = op_parameters(torch.full((4,), OP_INDEX["translate_y"]), lv, torch.zeros(4, dtype=torch.bool),
                             32, 32, image_size=224)
    assert tr_fixed.tolist() == [2.0, 2.0, 22.0, 22.0]  # int(ℓ·(224/3)/10)


def test_grouped_dispatch_equals_one_op_at_a_time(pictures32):
    """A batch with every op (and identity) mixed equals applying each image's op on its own."""
    x = to_tensor(pictures32).repeat(2, 1, 1, 1)[:14]
    ops = torch.tensor([*range(13), -1])
    levels = torch.linspace(0.3, 2.9, 14, dtype=torch.float64)
    negate = torch.arange(14) % 2 == 1
    out = apply_ops(x, ops, levels, negate)
    params = op_parameters(ops, levels, negate, 32, 32)
    for i in range(14):
        if ops[i] < 0:
            assert torch.equal(out[i], x[i])
            continue
        name = OPS[int(ops[i])]
        p = None if name in ("autocontrast", "equalize") else float(params[i])
        assert torch.equal(out[i], apply_op(x[i:i + 1], name, p)[0]), name



def test_large_mixed_batch_equals_one_image_at_a_time(pictures32):
    """Above one resampling chunk, with every geometric kind (repeated rotation angles and shifts,
    distinct shears) and point ops mixed: each image equals its op applied to it alone."""
    x = to_tensor(pictures32).repeat(13, 1, 1, 1)  # 104 images
    n = x.shape[0]
    assert n * x[0].numel() > augmix_ops._AFFINE_CHUNK
    ops = torch.arange(n) % 9
    levels = 0.1 + 2.9 * ((torch.arange(n, dtype=torch.float64) * 0.37) % 1)
    negate = (torch.arange(n) // 9) % 2 == 1
    out = apply_ops(x, ops, levels, negate)
    params = op_parameters(ops, levels, negate, 32, 32)
    for i in range(n):
        name = OPS[int(ops[i])]
        p = None if name in ("autocontrast", "equalize") else float(params[i])
        assert torch.equal(out[i], apply_op(x[i:i + 1], name, p)[0]), (i, name)

def test_equalize_and_autocontrast_edge_cases():
    """Equalize's LUT can reach 256 (PIL clips it to 255); flat and two-level images."""
    overflow = np.full((16, 32), 10, np.uint8)
    overflow[0, 0] = 200  # 511 pixels below the last level: step 2, lut[200] = (1 + 511) // 2 = 256
    flat = np.full((16, 16), 77, np.uint8)
    two = np.where(np.arange(256).reshape(16, 16) % 3 == 0, 3, 200).astype(np.uint8)
    for a in (overflow, flat, two):
        x = torch.from_numpy(a)[None, None].float() / 255
        for name, ref in (("equalize", ImageOps.equalize), ("autocontrast", ImageOps.autocontrast)):
            ours = (apply_op(x, name) * 255).round().to(torch.uint8)[0, 0].numpy()
            np.testing.assert_array_equal(ours, np.asarray(ref(Image.fromarray(a))), err_msg=name)
    assert (apply_op(torch.from_numpy(overflow)[None, None].float() / 255, "equalize")[0, 0, 0, 0] == 1.0)


def _pil_exact(x: torch.Tensor, pictures: np.ndarray, name: str, param: float | None) -> None:
    ours = (apply_op(x, name, param) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for a, o in zip(pictures, ours, strict=True):
        ref = np.asarray(pil_op(Image.fromarray(a), name, param))
        np.testing.assert_array_equal(o, ref, err_msg=f"{name}({param}) differs from PIL")


def test_every_rotation_angle_matches_pil(pictures32, pictures_rect):
    """Every angle AugMix can draw (integer degrees, |deg| <= 30 up to severity 10), at 32², 40x56
    and 224² (twice at the small sizes: the second call reads the cached sampling tables)."""
    for pics, calls in ((pictures32[:3], 2), (pictures_rect[:2], 2), (crops(224, 224, count=1), 1)):
        x = to_tensor(pics)
        for deg in range(-30, 31):
            for _ in range(calls):
                _pil_exact(x, pics, "rotate", deg)


def test_random_shears_and_every_shift_match_pil(pictures32):
    """Shears at 40 random coefficients in ±0.3 (a continuous parameter: tables built per call)
    and every translation AugMix can draw at 32² (|px| <= 10), against PIL."""
    x = to_tensor(pictures32[:2])
    coefs = np.random.default_rng(3).uniform(-0.3, 0.3, 40)
    for i, s in enumerate(coefs):
        _pil_exact(x, pictures32[:2], "shear_x" if i % 2 else "shear_y", float(s))
    for px in range(-10, 11):
        _pil_exact(x, pictures32[:2], "translate_x", px)
        _pil_exact(x, pictures32[:2], "translate_y", px)


@pytest.mark.parametrize("levels", [1, 2, 3, 17, 60, 256])
def test_equalize_and_autocontrast_on_random_histograms(levels):
    """Random level sets and skewed counts (sizes 32² and 23x41) against PIL: the LUT arithmetic
    (float64 division standing in for integer //) is exact."""
    rng = np.random.default_rng(levels)
    for h, w in ((32, 32), (23, 41)):
        values = rng.choice(256, size=levels, replace=False)
        weights = rng.dirichlet(np.full(levels, 0.3))
        a = rng.choice(values, size=(4, h, w, 3), p=weights).astype(np.uint8)
        x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
        for name in ("equalize", "autocontrast"):
            _pil_exact(x, a, name, None)

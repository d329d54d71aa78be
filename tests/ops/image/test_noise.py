"""Noise ops: fidelity to imagecorruptions (ImageNet-C) and to an independent numpy version of the
reference definitions (CIFAR-10-C, Tiny-ImageNet-C), plus the per-element noise semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import augforge
from augforge.core.errors import InvalidParameterError
from augforge.core.registry import build_op, get_op
from augforge.ops.image import noise as noise_ops

from .metrics import mean_psnr
from .reference import reference_corrupt

NAMES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
LEVELS = (1, 2, 3, 4, 5)
TOLERANCE_DB = 0.5

# Independent copy of the constants (reference doc §1.3 and §2.1), one value per severity.
CONSTANTS = {
    "imagenet": {
        "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
        "shot_noise": [60, 25, 12, 5, 3],
        "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
        "speckle_noise": [0.15, 0.20, 0.35, 0.45, 0.60],
    },
    "cifar": {
        "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
        "shot_noise": [500, 250, 100, 75, 50],
        "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
        "speckle_noise": [0.06, 0.10, 0.12, 0.16, 0.20],
    },
    "tiny": {
        "gaussian_noise": [0.04, 0.08, 0.12, 0.15, 0.18],
        "shot_noise": [250, 100, 50, 30, 15],
        "impulse_noise": [0.01, 0.02, 0.05, 0.08, 0.14],
        "speckle_noise": [0.15, 0.20, 0.25, 0.30, 0.35],
    },
}
PARAM = {"gaussian_noise": "sigma", "shot_noise": "lam", "impulse_noise": "amount", "speckle_noise": "sigma"}


def numpy_noise(image: np.ndarray, name: str, c: float, rng: np.random.Generator) -> np.ndarray:
    """The reference definitions, written again with numpy: uint8 HWC in, truncated uint8 out."""
    x = image / 255.0
    if name == "gaussian_noise":
        y = x + rng.normal(scale=c, size=x.shape)
    elif name == "shot_noise":
        y = rng.poisson(x * c) / c
    elif name == "impulse_noise":
        flipped = rng.random(x.shape) < c
        salted = rng.random(x.shape) < 0.5
        y = x.copy()
        y[flipped & salted] = 1.0
        y[flipped & ~salted] = 0.0
    else:
        y = x + x * rng.normal(scale=c, size=x.shape)
    return np.uint8(np.clip(y, 0, 1) * 255)


def ours(images: np.ndarray, name: str, severity: int, preset: str, seed: int = 0) -> np.ndarray:
    out = augforge.corrupt(augforge.to_float(images), name, severity, seed=seed, preset=preset)
    return augforge.to_uint8(out, mode="truncate")


@pytest.mark.parametrize("severity", LEVELS)
@pytest.mark.parametrize("name", NAMES)
def test_imagenet_psnr_matches_imagecorruptions(images224, name, severity):
    """Mean PSNR(clean, corrupted) over 16 crops at 224² within 0.5 dB of imagecorruptions'.
    (Its impulse_noise draws from an unseeded skimage RNG, so only statistics are compared.)"""
    reference = np.stack([reference_corrupt(im, name, severity, seed=i) for i, im in enumerate(images224)])
    got = mean_psnr(images224, ours(images224, name, severity, "imagenet"))
    want = mean_psnr(images224, reference)
    assert abs(got - want) < TOLERANCE_DB, f"{name} s{severity}: ours {got:.3f} dB, reference {want:.3f} dB"


@pytest.mark.parametrize("preset, fixture", [("cifar", "images32"), ("tiny", "images64")])
@pytest.mark.parametrize("name", NAMES)
def test_small_presets_match_numpy_reference(request, preset, fixture, name):
    """CIFAR-10-C at 32², Tiny-ImageNet-C at 64²: same PSNR statistics as the numpy definition with
    the typed-in constants. Each crop is used 4 times (different keys / seeds) to tame the noise."""
    images = np.concatenate([request.getfixturevalue(fixture)] * 4)
    keys = [f"k{i}" for i in range(len(images))]
    for level in LEVELS:
        c = CONSTANTS[preset][name][level - 1]
        rng = np.random.default_rng(1000 + level)
        want = mean_psnr(images, np.stack([numpy_noise(im, name, c, rng) for im in images]))
        out = augforge.corrupt(augforge.to_float(images), name, level, seed=7, keys=keys, preset=preset)
        got = mean_psnr(images, augforge.to_uint8(out, mode="truncate"))
        assert abs(got - want) < TOLERANCE_DB, f"{preset} {name} s{level}: ours {got:.3f}, numpy {want:.3f}"


@pytest.mark.parametrize("preset", ["imagenet", "cifar", "tiny"])
@pytest.mark.parametrize("name", NAMES)
def test_tables_equal_the_reference_constants(name, preset):
    spec = get_op(name)
    assert spec.presets == ("imagenet", "cifar", "tiny")
    got = [spec.params(level, preset)[PARAM[name]] for level in LEVELS]
    assert got == pytest.approx(CONSTANTS[preset][name], abs=0, rel=1e-12)


def flat(value: float, c: int = 3, size: int = 128) -> torch.Tensor:
    return torch.full((1, c, size, size), value, dtype=torch.float64)


def gens(n: int = 1, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def test_gaussian_noise_is_iid_per_channel():
    x = flat(0.5)
    d = noise_ops.gaussian_noise(x, 0.05, gens()) - x
    assert float(d.std()) == pytest.approx(0.05, rel=0.02)
    assert abs(float(d.mean())) < 2e-3
    channels = d[0].flatten(1)
    assert abs(float(torch.corrcoef(channels)[0, 1])) < 0.03, "channels must get independent noise"


def test_shot_noise_is_poisson():
    lam = 40.0
    x = flat(0.5)
    y = noise_ops.shot_noise(x, lam, gens())
    counts = y * lam
    assert torch.allclose(counts, counts.round(), atol=1e-9), "values are counts / lam"
    assert float(counts.mean()) == pytest.approx(0.5 * lam, rel=0.01)
    assert float(counts.var()) == pytest.approx(0.5 * lam, rel=0.05)


def test_impulse_noise_hits_each_element_independently():
    amount = 0.2
    x = flat(0.5, size=200)
    y = noise_ops.impulse_noise(x, amount, gens())
    hit = y != 0.5
    assert float(hit.double().mean()) == pytest.approx(amount, rel=0.03)
    assert float((y == 1).double().sum() / hit.double().sum()) == pytest.approx(0.5, abs=0.02)
    all_three = hit[0].all(dim=0).double().mean()
    assert float(all_three) == pytest.approx(amount**3, rel=0.2), "per-channel draws, not per-pixel"


def test_speckle_noise_is_multiplicative():
    x = torch.cat([flat(0.2), flat(0.6)])
    d = noise_ops.speckle_noise(x, 0.1, gens(2)) - x
    assert float(d[0].std()) == pytest.approx(0.02, rel=0.03)
    assert float(d[1].std()) == pytest.approx(0.06, rel=0.03)
    black = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    assert torch.equal(noise_ops.speckle_noise(black, 0.5, gens()), black)


@pytest.mark.parametrize("name", NAMES)
def test_zero_strength_override_is_identity(name):
    x = flat(0.25, size=16).float()
    neutral = {"sigma": 0.0, "amount": 0.0, "lam": 1e9}[PARAM[name]]
    y = build_op(name, 5, **{PARAM[name]: neutral})(x, 3)
    # Poisson(lam·x)/lam keeps a std of sqrt(x/lam) ≈ 2e-5 at lam = 1e9
    torch.testing.assert_close(y, x, atol=1e-4 if name == "shot_noise" else 1e-7, rtol=0)


def test_sample_draws_only_from_its_generator():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    g = gens(3, seed=10)
    batch = noise_ops.gaussian_noise(x, 0.1, g)
    alone = noise_ops.gaussian_noise(x[1:2], 0.1, [torch.Generator().manual_seed(11)])
    assert torch.equal(batch[1:2], alone)
    with pytest.raises(ValueError, match="one generator per sample"):
        noise_ops.shot_noise(x, 10.0, g[:2])


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("gaussian_noise", -0.1, "sigma must be >= 0"),
        ("gaussian_noise", float("nan"), "sigma must be finite"),
        ("speckle_noise", "0.2", "sigma must be a number"),
        ("shot_noise", 0, "lam must be > 0"),
        ("impulse_noise", 1.5, "amount must be <= 1"),
        ("impulse_noise", True, "amount must be a number"),
    ],
)
def test_bad_overrides(name, value, message):
    with pytest.raises(InvalidParameterError, match=message):
        build_op(name, 1, **{PARAM[name]: value})

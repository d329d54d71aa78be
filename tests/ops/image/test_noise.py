"""Noise ops: fidelity to imagecorruptions (ImageNet-C) and to an independent numpy version of the
reference definitions (CIFAR-10-C, Tiny-ImageNet-C), plus the per-element noise semantics."""

from __future__ import annotations

import math

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


# --------------------------------------------------------------------------- 8-bit paths and draws


def u8_batch(n: int = 4, size: int = 48, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def via_float(op, x: torch.Tensor, rng) -> torch.Tensor:
    """The contract of the 8-bit path: the float op on x / 255, truncated like the reference savers."""
    out = augforge.to_uint8(op(augforge.to_float(x.permute(0, 2, 3, 1).numpy()), rng), mode="truncate")
    return torch.from_numpy(out).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity, preset", [(1, "imagenet"), (5, "imagenet"), (1, "cifar")])
def test_uint8_path_equals_float_path(name, severity, preset):
    """Same draws: the uint8 result is exactly the float result truncated like the savers."""
    op = build_op(name, severity, preset=preset)
    assert op.takes_uint8()
    for x in (u8_batch(), u8_batch(2, size=33)[:, :1].contiguous()):  # RGB, and grey of odd size
        got = op(x, 11)
        assert got.dtype == torch.uint8 and got.shape == x.shape
        assert torch.equal(got, via_float(op, x, 11))


def test_truncate_equals_to_uint8_at_every_boundary():
    """Every float32 within 3e-4/255 of a truncation boundary, where float32 arithmetic would put
    139 of them one level off: _truncate gives to_uint8's levels."""
    windows = []
    for n in range(1, 256):
        lo, hi = np.float32((n - 3e-4) / 255), np.float32(min(1.0, (n + 1e-4) / 255))
        windows.append(np.arange(np.array(lo).view(np.int32), np.array(hi).view(np.int32) + 1,
                                 dtype=np.int32).view(np.float32))
    y = torch.from_numpy(np.concatenate(windows))
    want = torch.from_numpy(augforge.to_uint8(y.view(1, 1, 1, -1))).view(-1)
    got = noise_ops._truncate(y.clone(), torch.empty(y.shape, dtype=torch.uint8), y.double())
    assert torch.equal(got, want)
    edges = noise_ops._truncate(torch.tensor([-0.5, 0.0, 1.0, 7.0]), torch.empty(4, dtype=torch.uint8),
                                torch.empty(4, dtype=torch.float64))
    assert edges.tolist() == [0, 0, 255, 255]


@pytest.mark.parametrize("name", NAMES)
def test_uint8_sample_draws_only_from_its_generator(name):
    op = build_op(name, 3)
    x = u8_batch(3)
    g = gens(3, seed=20)
    batch = op(x, g)
    for i in range(3):
        assert torch.equal(batch[i:i + 1], op(x[i:i + 1], [torch.Generator().manual_seed(20 + i)]))
    assert torch.equal(op(x, 5), op(x, 5)) and not torch.equal(op(x, 5), op(x, 6))
    with pytest.raises(ValueError, match="one generator per sample"):
        getattr(noise_ops, f"{name}_uint8")(x, 0.1 if name != "shot_noise" else 10.0, g[:2])


@pytest.mark.parametrize("name", NAMES)
def test_uint8_zero_strength_is_identity(name):
    x = u8_batch(2, size=16)
    neutral = {"sigma": 0.0, "amount": 0.0, "lam": 1e9}[PARAM[name]]
    y = build_op(name, 5, **{PARAM[name]: neutral})(x, 3)
    # lam = 1e9 takes the float fallback: Poisson noise (std ≈ 0.005 levels) may truncate k − 0.003 to k − 1
    assert (y.int() - x.int()).abs().max() <= (1 if name == "shot_noise" else 0)


def test_impulse_amount_one_hits_everything():
    x = u8_batch(1, size=64)
    for y in (build_op("impulse_noise", 1, amount=1.0)(x, 0),
              via_float(build_op("impulse_noise", 1, amount=1.0), x, 0)):
        assert bool(((y == 0) | (y == 255)).all())
        assert float((y == 255).double().mean()) == pytest.approx(0.5, abs=0.02)


def test_impulse_thresholds_are_the_exact_word_cut_points():
    # u = (w + 2^31) / 2^32 < p  <=>  w < ceil(p · 2^32) − 2^31
    assert noise_ops._impulse_thresholds(0.0) == (-(2**31), -(2**31))
    assert noise_ops._impulse_thresholds(1.0) == (0, 2**31)
    salt, hit = noise_ops._impulse_thresholds(0.09)
    assert hit == math.ceil(0.09 * 2**32) - 2**31 and salt == math.ceil(0.045 * 2**32) - 2**31


def test_bits_draw_is_per_generator_and_uniform():
    from augforge.ops.image._threads import draw

    for shape in [(3, 17, 19), (3, 16, 16)]:  # odd and even lengths
        got = draw(shape, gens(3, seed=40), "bits", device=torch.device("cpu"))
        assert got.dtype == torch.int32 and got.shape == (3, *shape)
        n = math.prod(shape)
        for i in range(3):
            words = torch.empty((n + 1) // 2, dtype=torch.int64).random_(
                -(2**63), None, generator=torch.Generator().manual_seed(40 + i))
            assert torch.equal(got[i].reshape(-1), words.view(torch.int32)[:n])
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # large enough to be split over the pool: the same words
    try:
        split = draw((3, 256, 256), gens(4, seed=50), "bits", device=torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    for i in range(4):
        words = torch.empty(3 * 256 * 128, dtype=torch.int64).random_(
            -(2**63), None, generator=torch.Generator().manual_seed(50 + i))
        assert torch.equal(split[i].reshape(-1), words.view(torch.int32))
    big = draw((4, 128, 128), gens(1), "bits", device=torch.device("cpu")).view(-1)
    bit_means = torch.stack([(big >> b) & 1 for b in range(32)]).double().mean(1)
    assert float((bit_means - 0.5).abs().max()) < 0.01


def shot_level_pmf(k: int, lam: float) -> np.ndarray:
    """P(output level = j), j = 0..255, of the float shot path on level k truncated to uint8, written
    independently with scipy: rate fl32(fl32(k)/255)·lam in float32, level(c) = trunc(255·clip(c/lam))."""
    from scipy.stats import poisson

    rate = float(np.float32(np.float32(k) / np.float32(255.0)) * np.float32(lam))
    counts = np.arange(int(np.ceil(lam)) + 1)
    y = np.clip(counts.astype(np.float32) / np.float32(lam), 0, 1).astype(np.float64)
    level = np.floor(y * 255 + 1e-4).astype(int)
    pmf = poisson.pmf(counts, rate)
    pmf[-1] += poisson.sf(counts[-1], rate)  # counts above ceil(lam) are level 255 too
    return np.bincount(level, weights=pmf, minlength=256)


@pytest.mark.parametrize("lam", [12, 60, 500, 0.7])
def test_shot_uint8_levels_follow_the_exact_distribution(lam):
    """Chi-square of the 8-bit sampler's output levels against the exact pmf, per input level,
    and its mean against the exact mean (the sampler is not torch.poisson: only the law is equal)."""
    from scipy.stats import chi2

    levels = [0, 1, 9, 64, 128, 200, 254, 255]
    x = torch.tensor(levels, dtype=torch.uint8).repeat_interleave(4096).view(1, 1, len(levels), 4096)
    x = x.expand(8, 3, -1, -1).contiguous()  # 8 pictures · 3 channels · 4096 = 98304 draws per level
    y = build_op("shot_noise", 1, lam=lam)(x, 1)
    for row, k in enumerate(levels):
        got = torch.bincount(y[:, :, row].reshape(-1).long(), minlength=256).double().numpy()
        pmf = shot_level_pmf(k, lam)
        n = got.sum()
        expected = pmf * n
        big = expected >= 5
        obs = np.append(got[big], got[~big].sum())
        exp = np.append(expected[big], expected[~big].sum())
        if exp[-1] < 5:  # fold a tiny remainder into the last large bin
            obs[-2] += obs[-1]
            exp[-2] += exp[-1]
            obs, exp = obs[:-1], exp[:-1]
        stat = float(((obs - exp) ** 2 / np.maximum(exp, 1e-300)).sum())
        assert obs[exp == 0].sum() == 0
        dof = max(len(obs) - 1, 1)
        assert chi2.sf(stat, dof) > 1e-4 or len(obs) == 1, f"lam {lam} level {k}: chi2 {stat:.1f}, dof {dof}"
        mean = float((np.arange(256) * pmf).sum())
        sd = float(np.sqrt((((np.arange(256) - mean) ** 2) * pmf).sum()))
        assert abs(float((got * np.arange(256)).sum() / n) - mean) <= 5 * sd / np.sqrt(n) + 1e-9


def test_shot_tables_match_scipy():
    from scipy.special import pdtr

    tables = noise_ops._shot_tables(25.0, torch.float32, torch.device("cpu"))
    thr = tables.counts.thr.view(256, 26)  # counts 0..24 below the cap ceil(25), then the sentinel
    assert bool((thr[:, 25] == 2**31).all()) and bool((thr[:, 1:] >= thr[:, :-1]).all())
    for k in (0, 77, 255):
        rate = float(np.float32(np.float32(k) / np.float32(255.0)) * np.float32(25.0))
        for c in range(25):
            assert abs(int(thr[k, c]) - (math.ceil(pdtr(c, rate) * 2**32) - 2**31)) <= 1
    assert bool((tables.levels.top.long() >= tables.levels.entry.long() % 32768).all())


def test_shot_float_path_per_sample_sampler():
    """Samples on the 8-bit levels use the table sampler, others torch.poisson; each sample's
    result depends on it alone, whatever the rest of the batch holds."""
    lam = 12.0
    on = u8_batch(2, size=32).float().div_(255.0)
    off = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    batch = torch.cat([on[:1], off, on[1:]])
    got = noise_ops.shot_noise(batch, lam, gens(3, seed=30))
    for i in range(3):
        alone = noise_ops.shot_noise(batch[i:i + 1], lam, [torch.Generator().manual_seed(30 + i)])
        assert torch.equal(got[i:i + 1], alone)
    poisson = torch.poisson(off * lam, generator=torch.Generator().manual_seed(31)).div_(lam).clamp_(0, 1)
    assert torch.equal(got[1:2], poisson)
    counts = got[[0, 2]] * lam
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    direct = torch.poisson(on[:1] * lam, generator=torch.Generator().manual_seed(30)).div_(lam).clamp_(0, 1)
    assert not torch.equal(got[:1], direct)
    # float64 levels k/255 are levels too; the tables follow the float64 rates
    g64 = noise_ops.shot_noise(on.double(), lam, gens(2, seed=30))
    assert g64.dtype == torch.float64 and torch.allclose(g64 * lam, (g64 * lam).round(), atol=1e-9)


def test_shot_uint8_imagenet_psnr_matches_numpy_reference(images224):
    """The 8-bit shot sampler on the ImageNet-C preset: same PSNR as the numpy definition."""
    x = torch.from_numpy(images224).permute(0, 3, 1, 2).contiguous()
    for level in LEVELS:
        c = CONSTANTS["imagenet"]["shot_noise"][level - 1]
        rng = np.random.default_rng(2000 + level)
        want = mean_psnr(images224, np.stack([numpy_noise(im, "shot_noise", c, rng) for im in images224]))
        got = mean_psnr(images224, build_op("shot_noise", level)(x, 9).permute(0, 2, 3, 1).numpy())
        assert abs(got - want) < TOLERANCE_DB, f"s{level}: ours {got:.3f}, numpy {want:.3f}"


@pytest.mark.parametrize("name", NAMES)
def test_uint8_path_takes_strided_batches(name):
    """A channels-last view (as from NHWC pictures) gives the same result as its contiguous copy."""
    op = build_op(name, 2)
    nhwc = u8_batch(3, size=24).permute(0, 2, 3, 1).contiguous()
    view = nhwc.permute(0, 3, 1, 2)
    assert not view.is_contiguous()
    assert torch.equal(op(view, 4), op(view.contiguous(), 4))


@pytest.mark.parametrize("name", ["gaussian_noise", "speckle_noise"])
@pytest.mark.parametrize("shape", [(4, 3, 96, 80), (3, 1, 130, 127)])
def test_per_picture_uint8_path_equals_the_blocked_path(name: str, shape: tuple[int, ...],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture-by-picture 8-bit path (several threads, large pictures) gives the blocked path's
    bits, and both equal the float path + to_uint8."""
    from augforge import build_op, to_uint8
    from augforge.ops.image import noise

    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    op = build_op(name, 5)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert noise._per_picture(x)
        fast = op(x, 7)
        monkeypatch.setattr(noise, "_per_picture", lambda t: False)
        blocked = op(x, 7)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(fast, blocked)
    via_float = to_uint8(op(x.float() / 255.0, 7))
    assert np.array_equal(fast.permute(0, 2, 3, 1).numpy(), via_float)

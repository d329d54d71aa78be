"""PRIME: primitives' parameter laws, kernels against direct numpy/scipy evaluations, mixing
moments, §6.2 presets, and the transform contract (determinism, batch independence, forms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage, stats

from augforge.core.errors import InvalidParameterError
from augforge.core.seeding import generator_for, sample_generators
from augforge.transforms import PRIME, Diffeo, RandomFilter, RandomSmoothColor
from augforge.transforms import prime as P
from augforge.transforms import prime_kernels as K

CUDA = torch.cuda.is_available()


def gens(n: int, offset: int = 0) -> list[torch.Generator]:
    return [generator_for(offset + i) for i in range(n)]


def image_batch(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, w, dtype=torch.float64).view(1, 1, 1, w)
    return (0.6 * torch.rand(b, c, h, w, generator=g, dtype=torch.float64) + 0.4 * ramp).to(dtype)


# --------------------------------------------------------------------------- presets (§6.2)


def test_presets_match_reference():
    expected = {  # typed from corruptions-2d.md §6.2
        "cifar": dict(cut_max=100, c_cut=100, c_t=0.01, freqs=None, k=3, sigma=4.0, jsd=True),
        "imagenet": dict(cut_max=500, c_cut=500, c_t=0.05, freqs=20, k=3, sigma=4.0, jsd=False),
    }
    for preset, e in expected.items():
        t = PRIME(preset)
        diffeo, color, filt = t.primitives
        assert (
            isinstance(diffeo, Diffeo)
            and isinstance(color, RandomSmoothColor)
            and isinstance(filt, RandomFilter)
        )
        assert (diffeo.cut_min, diffeo.cut_max, diffeo.alpha) == (2, e["cut_max"], 1.0)
        assert (color.cut, color.t_max, color.max_freqs) == (e["c_cut"], e["c_t"], e["freqs"])
        assert (filt.size, filt.sigma_max, filt.centered) == (e["k"], e["sigma"], False)
        assert (t.width, t.depth, t.max_depth, t.jsd) == (3, -1, 3, e["jsd"])
    assert PRIME("imagenet", jsd=True).jsd is True


# --------------------------------------------------------------------------- Diffeo


def test_diffeo_cutoff_and_temperature_laws():
    n_draws, n = 3000, 32
    draws = Diffeo(100).draw(gens(n_draws), 3, n, n)
    cmax = np.array([d.cut_max for d in draws])
    cut = np.array([d.cut for d in draws])
    b_cut = np.array([d.beta_cut for d in draws])
    b_t = np.array([d.beta_t for d in draws])
    # c_max ~ U{3..100}
    assert cmax.min() == 3 and cmax.max() == 100
    assert abs(cmax.mean() - 51.5) < 3 * 28.0 / math.sqrt(n_draws)
    # c = 2 + floor(B (c_max + 1 - 2)), B ~ Beta(1/2, 1/2)
    np.testing.assert_array_equal(cut, 2 + np.floor(b_cut * (cmax - 1)).astype(int))
    assert cut.min() == 2 and (cut <= cmax).all()
    for b in (b_cut, b_t):
        assert abs(b.mean() - 0.5) < 0.02 and abs(b.var() - 0.125) < 0.01  # uniform would give 1/12
        assert stats.kstest(b, stats.beta(0.5, 0.5).cdf).pvalue > 1e-3
    # T = T1 + B'(max(T1, T2) - T1), T1 = 1/(pi n^2 ln c), T2 = 4/(pi^3 c^2 ln c)
    t1 = 1.0 / (np.pi * n**2 * np.log(cut))
    t2 = 4.0 / (np.pi**3 * cut.astype(float) ** 2 * np.log(cut))
    temps = np.array([d.temperature for d in draws])
    np.testing.assert_allclose(temps, t1 + b_t * (np.maximum(t1, t2) - t1), rtol=1e-12)
    assert (temps[cut > 2 * n / np.pi] == t1[cut > 2 * n / np.pi]).all()
    normals = torch.cat([d.normals.flatten() for d in draws])
    assert all(d.normals.shape == (2, d.cut, d.cut) for d in draws)
    assert abs(float(normals.mean())) < 0.01 and abs(float(normals.std()) - 1) < 0.01


def test_diffeo_non_square_uses_the_short_side():
    d_wide = Diffeo(40).draw(gens(50), 3, 24, 40)
    d_square = Diffeo(40).draw(gens(50), 3, 24, 24)
    assert [d.temperature for d in d_wide] == [d.temperature for d in d_square]
    out = Diffeo(40)(image_batch(2, h=24, w=40))
    assert out.shape == (2, 3, 24, 40)


def test_diffeo_field_is_the_sine_series():
    h, w = 20, 28
    prim = Diffeo(12)
    draw = next(d for d in prim.draw(gens(40), 3, h, w) if d.cut >= 5)
    fields = K.displacement_fields(prim.coefficients([draw], torch.float64, torch.device("cpu")), h, w)[0]
    xs, ys = np.linspace(0, 1, w), np.linspace(0, 1, h)
    normals = draw.normals.double().numpy()
    for f in range(2):
        ref = np.zeros((h, w))
        for i in range(1, draw.cut + 1):
            for j in range(1, draw.cut + 1):
                r = math.hypot(i, j)
                if r < draw.cut + 0.5:
                    ref += (
                        normals[f, i - 1, j - 1]
                        / r
                        * np.outer(np.sin(np.pi * j * ys), np.sin(np.pi * i * xs))
                    )
        np.testing.assert_allclose(fields[f].numpy(), ref, atol=1e-10)



@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_diffeo_fields_by_cut_blocks_equal_the_padded_synthesis(dtype):
    """Fields synthesised per block of cut-offs equal the sum over all modes up to the batch's
    largest cut-off (extra modes have weight 0), and a draw's field does not depend on its batch."""
    prim = Diffeo(100)
    draws = prim.draw(gens(24, offset=3), 3, 20, 28)
    assert len({-(-d.cut // P._MODE_BLOCK) for d in draws}) > 2  # several blocks
    cpu = torch.device("cpu")
    fields = prim.fields(draws, 20, 28, dtype, cpu)
    padded = K.displacement_fields(prim.coefficients(draws, dtype, cpu), 20, 28)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(fields, padded, atol=tol, rtol=0)
    for i in (0, 7, 23):
        assert torch.equal(prim.fields(draws[i:i + 1], 20, 28, dtype, cpu), fields[i:i + 1])

def test_diffeo_remap_matches_scipy():
    h, w = 24, 30
    x = image_batch(1, h=h, w=w, dtype=torch.float64)
    prim = Diffeo(10)
    draw = prim.draw(gens(1, offset=7), 3, h, w)
    out = prim.apply(x, draw)[0].numpy()
    u, v = K.displacement_fields(prim.coefficients(draw, torch.float64, torch.device("cpu")), h, w)[0].numpy()
    scale = math.sqrt(draw[0].temperature)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    cols = np.clip(xx - scale * w * u, 0, w - 1)
    rows = np.clip(yy - scale * h * v, 0, h - 1)
    assert np.abs(scale * w * u).max() > 0.5  # the field really moves pixels
    for c in range(3):
        ref = ndimage.map_coordinates(x[0, c].numpy(), [rows, cols], order=1, mode="nearest")
        np.testing.assert_allclose(out[c], ref, atol=1e-10)


# --------------------------------------------------------------------------- RandomSmoothColor


def test_color_parameter_laws():
    n_draws = 3000
    draws = RandomSmoothColor(10, 0.02).draw(gens(n_draws), 3, 8, 8)
    cuts = np.array([d.cut for d in draws])
    temps = np.array([d.temperature for d in draws])
    assert cuts.min() == 1 and cuts.max() == 10
    counts = np.bincount(cuts, minlength=11)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3
    assert temps.min() >= 0 and temps.max() <= 0.02 and abs(temps.mean() - 0.01) < 0.0005
    assert all(d.freqs.tolist() == list(range(1, d.cut + 1)) for d in draws)
    assert all(d.amplitudes.shape == (3, d.cut) for d in draws)
    # a_k ~ N(0, T): the pooled a_k^2 / T has mean 1
    sq = np.concatenate([(d.amplitudes.double().numpy() ** 2 / d.temperature).ravel() for d in draws])
    assert abs(sq.mean() - 1) < 0.03


def test_color_frequency_band():
    draws = RandomSmoothColor(30, 0.05, max_freqs=5).draw(gens(2000), 1, 8, 8)
    firsts = np.array([d.min_freq for d in draws])
    assert firsts.min() == 1 and all(1 <= d.min_freq <= d.cut for d in draws)
    for d in draws:
        assert d.freqs.tolist() == list(range(d.min_freq, min(d.min_freq + 5, d.cut + 1)))
    assert max(d.freqs.numel() for d in draws) == 5


def test_color_curve_matches_numpy():
    x = image_batch(3, c=3, h=9, w=11, dtype=torch.float64)
    prim = RandomSmoothColor(25, 0.05, max_freqs=7)
    draws = prim.draw(gens(3), 3, 9, 11)
    out = prim.apply(x, draws).numpy()
    for i, d in enumerate(draws):
        v = x[i].numpy()
        amps, freqs = d.amplitudes.double().numpy(), d.freqs.numpy()
        ref = v + sum(amps[:, k, None, None] * np.sin(np.pi * f * v) for k, f in enumerate(freqs))
        np.testing.assert_allclose(out[i], np.clip(ref, 0, 1), atol=1e-12)


def test_color_curve_on_8bit_levels_matches_numpy():
    """Images on the k/255 grid take the per-level table path: still v + Σ a_k sin(π f_k v)."""
    g = torch.Generator().manual_seed(7)
    x = (torch.randint(0, 256, (3, 3, 9, 11), generator=g).double() / 255)
    prim = RandomSmoothColor(25, 0.05, max_freqs=7)
    draws = prim.draw(gens(3, offset=40), 3, 9, 11)
    out = prim.apply(x, draws).numpy()
    for i, d in enumerate(draws):
        v = x[i].numpy()
        amps, freqs = d.amplitudes.double().numpy(), d.freqs.numpy()
        ref = v + sum(amps[:, k, None, None] * np.sin(np.pi * f * v) for k, f in enumerate(freqs))
        np.testing.assert_allclose(out[i], np.clip(ref, 0, 1), atol=1e-12)


def test_color_level_table_equals_pixel_by_pixel():
    """A batch mixing 8-bit-grid images (table path) and off-grid images (pixel path): every image
    equals the pixel-by-pixel curve of the same draws, alone or in the batch."""
    g = torch.Generator().manual_seed(8)
    grid = torch.randint(0, 256, (3, 3, 32, 32), generator=g).float() / 255
    x = torch.cat([grid, image_batch(2, seed=9)])[[0, 3, 1, 4, 2]]
    prim = RandomSmoothColor(100, 0.01)
    draws = prim.draw(gens(5, offset=50), 3, 32, 32)
    out = prim.apply(x, draws)
    counts = [d.normals.shape[1] for d in draws]
    amps = torch.zeros(5, 3, max(counts))
    freqs = torch.zeros(5, max(counts))
    for i, d in enumerate(draws):
        amps[i, :, : counts[i]] = d.amplitudes
        freqs[i, : counts[i]] = d.freqs.float()
    direct = K._curves(x, amps, freqs).clamp(0, 1)
    torch.testing.assert_close(out, direct, atol=1e-6, rtol=0)
    for i in range(5):
        torch.testing.assert_close(prim.apply(x[i : i + 1], draws[i : i + 1])[0], out[i], atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- RandomFilter


@pytest.mark.parametrize(
    ("size", "centered", "index"), [(3, False, 2), (5, False, 3), (3, True, 1), (5, True, 2)]
)
def test_filter_delta_position(size, centered, index):
    draws = RandomFilter(size, 0.0, centered=centered).draw(gens(2), 3, 8, 8)
    expected = torch.zeros(size, size)
    expected[index, index] = 1
    for d in draws:
        assert d.sigma == 0 and torch.equal(d.kernel, expected)


def test_filter_default_quirk_shifts_up_left():
    x = image_batch(2)
    out = RandomFilter(3, 0.0)(x)
    torch.testing.assert_close(out[..., :-1, :-1], x[..., 1:, 1:], atol=0, rtol=0)
    assert (out[..., -1, :] == 0).all() and (out[..., :, -1] == 0).all()
    torch.testing.assert_close(RandomFilter(3, 0.0, centered=True)(x), x, atol=0, rtol=0)


def test_filter_sigma_law():
    draws = RandomFilter(3, 4.0).draw(gens(3000), 3, 8, 8)
    sig = np.array([d.sigma for d in draws])
    assert sig.min() >= 0 and sig.max() <= 4.0 and abs(sig.mean() - 2.0) < 0.08
    assert stats.kstest(sig / 4.0, "uniform").pvalue > 1e-3
    delta = torch.zeros(3, 3)
    delta[2, 2] = 1
    z = torch.cat([((d.kernel - delta) / d.sigma).flatten() for d in draws if d.sigma > 0.05])
    assert abs(float(z.std()) - 1) < 0.02


@pytest.mark.parametrize("size", [3, 5])
def test_filter_matches_scipy_correlate(size):
    x = image_batch(3, h=12, w=15, dtype=torch.float64)
    prim = RandomFilter(size, 0.3)
    draws = prim.draw(gens(3, offset=11), 3, 12, 15)
    out = prim.apply(x, draws).numpy()
    for i, d in enumerate(draws):
        kern = d.kernel.double().numpy()
        for c in range(3):
            ref = ndimage.correlate(x[i, c].numpy(), kern, mode="constant", cval=0.0)
            np.testing.assert_allclose(out[i, c], np.clip(ref, 0, 1), atol=1e-12)


def test_filter_nan_becomes_one():
    kernels = torch.full((1, 3, 3), float("nan"))
    assert (K.random_filter(image_batch(1), kernels) == 1).all()


# --------------------------------------------------------------------------- mixing


def test_mixing_weights_moments():
    n = 4000
    plan = PRIME("cifar").plan(gens(n))
    w, m = plan.weights.numpy(), plan.m.numpy()
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-12)
    assert (w >= 0).all()
    # Dirichlet(1,1,1): mean 1/3, var 1/18, each marginal Beta(1, 2); Beta(1,1) = U(0, 1)
    np.testing.assert_allclose(w.mean(0), 1 / 3, atol=0.012)
    np.testing.assert_allclose(w.var(0), 1 / 18, atol=0.004)
    assert stats.kstest(w[:, 0], stats.beta(1, 2).cdf).pvalue > 1e-3
    assert abs(m.mean() - 0.5) < 0.015 and abs(m.var() - 1 / 12) < 0.005
    assert stats.kstest(m, "uniform").pvalue > 1e-3
    depths = np.bincount(plan.depths.numpy().ravel(), minlength=4)
    assert depths[0] == 0 and stats.chisquare(depths[1:]).pvalue > 1e-3
    choices = np.bincount(plan.choices.numpy().ravel(), minlength=3)
    assert stats.chisquare(choices).pvalue > 1e-3
    assert PRIME("cifar", depth=2).plan(gens(5)).depths.eq(2).all()


def test_output_is_the_mix_of_chains():
    x = image_batch(3, h=16, w=16, seed=4)
    keys = ["a", "b", "c"]
    t = PRIME("cifar", jsd=False, seed=5)
    out = t(x, keys=keys)
    plan = t.plan(sample_generators(5, keys, "prime", "epoch0"))
    for i in range(3):
        mix = torch.zeros_like(x[i])
        for c in range(3):
            y = x[i : i + 1]
            for step in range(int(plan.depths[i, c])):
                prim = t.primitives[int(plan.choices[i, c, step])]
                g = generator_for(int(plan.seeds[i, c, step]))
                y = prim.apply(y, prim.draw([g], 3, 16, 16))
            mix += float(plan.weights[i, c]) * y[0]
        m = float(plan.m[i])
        torch.testing.assert_close(out[i], ((1 - m) * x[i] + m * mix).clamp(0, 1), atol=1e-5, rtol=0)
    assert not torch.equal(out, x)


# --------------------------------------------------------------------------- transform contract

MODULES = {
    "prime_cifar": lambda: PRIME("cifar", jsd=False, seed=3),
    "prime_imagenet": lambda: PRIME("imagenet", seed=3),
    "diffeo": lambda: Diffeo(100, seed=3),
    "color": lambda: RandomSmoothColor(100, 0.01, seed=3),
    "filter": lambda: RandomFilter(3, 4.0, seed=3),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_deterministic_batch_independent_and_epoch_dependent(name):
    x = image_batch(5, seed=1)
    before = x.clone()
    keys = [f"k{i}" for i in range(5)]
    t = MODULES[name]()
    out = t(x, keys=keys)
    assert torch.equal(x, before), "input modified"
    assert out.shape == x.shape and out.dtype == x.dtype and out.data_ptr() != x.data_ptr()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(MODULES[name]()(x, keys=keys), out)
    perm = [3, 0, 4, 2, 1]
    shuffled = t(x[perm], keys=[keys[i] for i in perm])
    for pos, i in enumerate(perm):
        alone = t(x[i : i + 1], keys=[keys[i]])
        torch.testing.assert_close(shuffled[pos : pos + 1], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(alone[0], out[i], atol=1e-5, rtol=0)
    t.set_epoch(1)
    assert not torch.equal(t(x, keys=keys), out)


@pytest.mark.parametrize("name", list(MODULES))
def test_input_forms(name):
    t = MODULES[name]()
    x = image_batch(2, seed=2)
    out32 = t(x, keys=["a", "b"])
    out64 = t(x.double(), keys=["a", "b"])
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, atol=1e-3, rtol=0)
    single = t(x[1], keys=["b"])
    assert single.shape == x.shape[1:]
    torch.testing.assert_close(single, out32[1], atol=1e-5, rtol=0)
    u8 = (x * 255).round().to(torch.uint8)
    out_u8 = t(u8, keys=["a", "b"])
    assert out_u8.dtype == torch.uint8 and out_u8.shape == u8.shape
    img = Image.fromarray(u8[0].permute(1, 2, 0).numpy())
    out_img = t(img, keys=["a"])
    assert isinstance(out_img, Image.Image) and out_img.size == img.size and out_img.mode == "RGB"
    assert np.array_equal(np.asarray(out_img), out_u8[0].permute(1, 2, 0).numpy())
    gray = t(image_batch(2, c=1, h=24, w=20, seed=3))
    assert gray.shape == (2, 1, 24, 20)


def test_jsd_returns_clean_and_two_augmentations():
    x = image_batch(3)
    clean, a1, a2 = PRIME("cifar", seed=1)(x)
    assert torch.equal(clean, x) and clean.data_ptr() != x.data_ptr()
    assert not torch.equal(a1, a2) and not torch.equal(a1, x)
    u8 = PRIME("cifar")((x * 255).to(torch.uint8))
    assert isinstance(u8, tuple) and len(u8) == 3 and all(o.dtype == torch.uint8 for o in u8)


def test_different_keys_differ():
    x = image_batch(1).repeat(2, 1, 1, 1)
    out = PRIME("cifar", jsd=False)(x, keys=["a", "b"])
    assert not torch.equal(out[0], out[1])


def test_constructor_validation():
    bad = [
        lambda: PRIME("mnist"),
        lambda: PRIME(width=0),
        lambda: PRIME(depth=0),
        lambda: PRIME(depth=4),
        lambda: PRIME(max_depth=0),
        lambda: PRIME(jsd="yes"),
        lambda: PRIME(primitives=[]),
        lambda: PRIME(primitives=[torch.nn.Identity()]),
        lambda: PRIME(seed=1.5),
        lambda: Diffeo(2),
        lambda: Diffeo(10, cut_min=1),
        lambda: Diffeo(10, alpha=0),
        lambda: RandomSmoothColor(0),
        lambda: RandomSmoothColor(10, -0.1),
        lambda: RandomSmoothColor(10, 0.1, max_freqs=0),
        lambda: RandomSmoothColor(10, float("nan")),
        lambda: RandomFilter(1),
        lambda: RandomFilter(3, -1.0),
        lambda: RandomFilter(3, 1.0, centered=1),
        lambda: RandomFilter(True),
    ]
    for make in bad:
        with pytest.raises(InvalidParameterError):
            make()
    custom = PRIME(primitives=[RandomFilter(5, 1.0)], width=2, depth=1)
    out = custom(image_batch(2))
    assert isinstance(out, tuple) and out[1].shape == (2, 3, 32, 32)


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("name", list(MODULES))
def test_cuda(name):
    x = image_batch(4).cuda()
    t = MODULES[name]()
    out = t(x, keys=list("abcd"))
    assert out.device == x.device and out.shape == x.shape
    assert torch.equal(t(x, keys=list("abcd")), out)
    alone = t(x[2:3], keys=["c"])
    torch.testing.assert_close(alone, out[2:3], atol=1e-5, rtol=0)

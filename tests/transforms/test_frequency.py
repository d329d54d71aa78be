"""HybridAugment, HybridAugment++ and APR: blur definition, frequency split, amplitude/phase swap
in the Fourier domain, reference control flow replayed from the same draws, presets, arguments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augforge.core.errors import InvalidInputError, InvalidParameterError
from augforge.ops.frequency.augmix_ops import apply_ops, sample_ops
from augforge.ops.frequency.spectral import (
    amplitude_phase_mix,
    amplitude_phase_permute,
    byte_cast,
    gaussian_blur_tv,
    gaussian_kernel1d_tv,
)
from augforge.transforms._common import uniforms
from augforge.transforms.hybrid import APR, HybridAugment, HybridAugmentPP
from tests.transforms.conftest import to_tensor

CPU = torch.device("cpu")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def tv_kernel(k: int, sigma: float) -> torch.Tensor:
    """torchvision's _get_gaussian_kernel1d: pdf exp(-0.5 (x/σ)²) at x = linspace(-(k-1)/2, (k-1)/2, k)."""
    x = torch.linspace(-(k - 1) * 0.5, (k - 1) * 0.5, k, dtype=torch.float64)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


def tv_blur(x: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """torchvision F.gaussian_blur on tensors: 2-D kernel outer(k_y, k_x), reflect padding, conv2d."""
    k1 = tv_kernel(k, sigma).to(x.dtype)
    k2 = torch.outer(k1, k1).expand(x.shape[1], 1, k, k)
    return F.conv2d(F.pad(x, [k // 2] * 4, mode="reflect"), k2, groups=x.shape[1])


def fft(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftn(x.double(), dim=(1, 2, 3))


def ref_apr(amp: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """The reference formula: ifftn(|F(amp)| · exp(1j · angle(F(phase)))).real."""
    mixed = fft(amp).abs() * torch.exp(1j * fft(phase).angle())
    return torch.fft.ifftn(mixed, dim=(1, 2, 3)).real.to(amp.dtype)


@pytest.fixture(scope="module")
def x(pictures32) -> torch.Tensor:
    return to_tensor(pictures32).double()


KEYS = [f"k{i}" for i in range(8)]


@pytest.mark.parametrize(("k", "sigma"), [(1, 0.5), (3, 0.5), (3, 1.0), (5, 0.8), (9, 2.0)])
def test_blur_is_torchvision_gaussian_blur(x, k, sigma):
    torch.testing.assert_close(gaussian_kernel1d_tv(k, sigma), tv_kernel(k, sigma), atol=1e-15, rtol=0)
    torch.testing.assert_close(gaussian_blur_tv(x, k, sigma), tv_blur(x, k, sigma), atol=1e-12, rtol=0)
    if k == 3 and sigma == 0.5:  # the default: centre weight 1 / (1 + 2 e^-2)
        assert abs(float(gaussian_kernel1d_tv(3, 0.5)[1]) - 1 / (1 + 2 * math.exp(-2))) < 1e-12



def test_blur_is_batch_independent_across_cpu_chunks():
    """40 float64 images span several CPU chunks: each image's blur is the same bits alone, in any
    slice and in the whole batch; strided input gives the blur of its values."""
    g = torch.Generator().manual_seed(7)
    xs = torch.rand(40, 3, 32, 32, generator=g, dtype=torch.float64)
    for k, sigma in ((3, 0.5), (9, 1.5)):
        full = gaussian_blur_tv(xs, k, sigma)
        torch.testing.assert_close(full, tv_blur(xs, k, sigma), atol=1e-12, rtol=0)
        for start, stop in ((0, 1), (9, 10), (10, 11), (39, 40), (5, 17), (3, 40)):
            assert torch.equal(gaussian_blur_tv(xs[start:stop], k, sigma), full[start:stop]), (k, start, stop)
    strided = xs[:6].transpose(-1, -2)
    torch.testing.assert_close(gaussian_blur_tv(strided, 3, 0.5), tv_blur(strided.contiguous(), 3, 0.5),
                               atol=1e-12, rtol=0)

def _match(rows: torch.Tensor, candidates: torch.Tensor) -> list[int]:
    d = (rows.flatten(1)[:, None] - candidates.flatten(1)[None]).abs().amax(-1)
    return d.argmin(1).tolist()


def test_ha_paired_low_and_high_parts_come_from_the_right_sources(x):
    """out_i = LF(x_i) + HF(x_π(i)): removing LF(x_i) leaves exactly one image's HF, π a permutation."""
    perms = []
    for call in range(3):
        out = HybridAugment("paired", prob=1.0, seed=call)(x, keys=KEYS)
        low, high = tv_blur(x, 3, 0.5), x - tv_blur(x, 3, 0.5)
        pi = _match(out - low, high)
        assert sorted(pi) == list(range(8))
        torch.testing.assert_close(out - low, high[pi], atol=1e-12, rtol=0)  # high part from x_π(i)
        torch.testing.assert_close(out - high[pi], low, atol=1e-12, rtol=0)  # low part from x_i
        perms.append(pi)
    assert any(p != list(range(8)) for p in perms)


def test_apr_paired_swaps_amplitude_and_phase_in_fourier_domain(x):
    """|F(out_i)| = |F(x_π(i))| and ∠F(out_i) = ∠F(x_i) where both magnitudes are non-negligible."""
    out = APR("paired", preset="cifar", p_apr=1.0, seed=3)(x, keys=KEYS)
    fo, fx = fft(out), fft(x)
    pi = _match(fo.abs(), fx.abs())
    assert sorted(pi) == list(range(8)) and pi != list(range(8))
    scale = float(fx.abs().amax())
    torch.testing.assert_close(fo.abs(), fx.abs()[pi], atol=1e-9 * scale, rtol=0)
    ok = (fx.abs()[pi] > 1e-6 * scale) & (fx.abs() > 1e-6 * scale)
    assert ok.float().mean() > 0.3  # grey pictures have no energy at channel frequencies 1, 2
    phase_gap = (torch.exp(1j * fo.angle()) - torch.exp(1j * fx.angle())).abs()[ok]
    assert float(phase_gap.max()) < 1e-6


def test_apr_paired_imagenet_mixes_normalised_spectra(x):
    mean, std = (torch.tensor(v, dtype=x.dtype).view(1, 3, 1, 1) for v in IMAGENET)
    out = APR("paired", preset="imagenet", p_apr=1.0, seed=3)(x, keys=KEYS)
    fo, fx = fft((out - mean) / std), fft((x - mean) / std)
    pi = _match(fo.abs(), fx.abs())
    torch.testing.assert_close(fo.abs(), fx.abs()[pi], atol=1e-9 * float(fx.abs().amax()), rtol=0)
    plain = APR("paired", preset="imagenet", p_apr=1.0, apr_normalize=None, seed=3)(x, keys=KEYS)
    assert (plain - out).abs().max() > 1e-3  # normalising first changes the result
    with pytest.raises(InvalidInputError, match="channels"):
        APR("paired", preset="imagenet", p_apr=1.0)(x[:, :1], keys=KEYS)


@pytest.mark.parametrize(("preset", "k", "sigma", "norm"),
                         [("cifar", 3, 0.5, None), ("imagenet", 3, 1.0, IMAGENET)])
def test_happ_paired_replayed(x, preset, k, sigma, norm):
    """HA++-P = APR-P(LF) + HF[π], with the coin/permutation order of the reference (p, π, p_apr, π')."""
    t = HybridAugmentPP("paired", preset=preset, prob=1.0, p_apr=1.0, seed=7)
    out = t(x, keys=KEYS)
    gen = t.batch_generator(t.generators(8, CPU, KEYS))
    torch.rand((), generator=gen, dtype=torch.float64)
    perm = torch.randperm(8, generator=gen)
    torch.rand((), generator=gen, dtype=torch.float64)
    perm_apr = torch.randperm(8, generator=gen)
    low = tv_blur(x, k, sigma)
    if norm is None:
        low_apr = ref_apr(low[perm_apr], low)
    else:
        mean, std = (torch.tensor(v, dtype=x.dtype).view(1, 3, 1, 1) for v in norm)
        n = (low - mean) / std
        low_apr = ref_apr(n[perm_apr], n) * std + mean
    torch.testing.assert_close(out, low_apr + (x - low)[perm], atol=1e-9, rtol=0)


@pytest.mark.parametrize(("cls", "kwargs", "rate"), [
    (HybridAugment, {}, 0.6), (HybridAugmentPP, {}, 0.6), (APR, {}, 0.6), (APR, {"preset": "imagenet"}, 0.5),
])
def test_paired_batch_coin(cls, kwargs, rate):
    """A paired transform changes the batch with its preset probability and otherwise returns it."""
    xs = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = cls("paired", **kwargs)
    changed = 0
    for call in range(400):  # 6 images: an identity permutation (unchanged batch) has probability 1/720
        out = t(xs, keys=[f"{call}/{i}" for i in range(6)])
        if not torch.equal(out, xs):
            changed += 1
    assert abs(changed / 400 - rate) < 0.075


def _replay(t, x: torch.Tensor, n: int) -> torch.Tensor:
    return uniforms(t.generators(x.shape[0], CPU, KEYS), n, CPU)


def _op(x: torch.Tensor, u3: torch.Tensor) -> torch.Tensor:
    return apply_ops(x, *sample_ops(u3, 9, 3))


def _ref_apr_single(y: torch.Tensor, u: torch.Tensor, p: float) -> torch.Tensor:
    """datasets/APR.py APRecombination per image (u: op, coin p, op, amplitude coin)."""
    out = []
    for i in range(y.shape[0]):
        a = _op(y[i:i + 1], u[i:i + 1, 0:3])
        if u[i, 3] > p:
            out.append(a)
            continue
        b = _op(a, u[i:i + 1, 4:7])
        out.append((ref_apr(a, b) if u[i, 7] > 0.5 else ref_apr(b, a)).clamp(0, 1))
    return torch.cat(out)


def _ref_hybrid_single(x, u, prob, k, sigma, p_apr):
    """HybridAugment(Plus)Single per image, default (clipping) mode."""
    out = []
    for i in range(x.shape[0]):
        a = _op(x[i:i + 1], u[i:i + 1, 0:3])
        if u[i, 3] > prob:
            out.append(a)
            continue
        b = _op(a, u[i:i + 1, 4:7])
        la, lb = tv_blur(a, k, sigma), tv_blur(b, k, sigma)
        ha, hb = a - la, b - lb
        if p_apr is not None:
            la = _ref_apr_single(la, u[i:i + 1, 8:16], p_apr)
            lb = _ref_apr_single(lb, u[i:i + 1, 16:24], p_apr)
        out.append((la + hb if u[i, 7] > prob else lb + ha).clamp(0, 1))
    return torch.cat(out)


@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
def test_single_variants_replayed(x, preset):
    """Single-image variants follow the reference's control flow with their preset constants."""
    t = HybridAugment("single", preset=preset, seed=1)
    torch.testing.assert_close(t(x, keys=KEYS), _ref_hybrid_single(x, _replay(t, x, 8), 0.5, 3, 0.5, None),
                               atol=1e-9, rtol=0)
    t = HybridAugmentPP("single", preset=preset, seed=2)
    torch.testing.assert_close(t(x, keys=KEYS), _ref_hybrid_single(x, _replay(t, x, 24), 0.5, 3, 0.5, 0.5),
                               atol=1e-9, rtol=0)
    t = APR("single", preset=preset, seed=3)
    torch.testing.assert_close(t(x, keys=KEYS), _ref_apr_single(x, _replay(t, x, 8), 0.5), atol=1e-9, rtol=0)


def test_single_blur_strength_scales_kernel(x):
    t = HybridAugmentPP("single", blur_strength=3, prob=1.0, p_apr=0.0, seed=4)
    assert (t.kernel_size, t.sigma) == (9, 1.5)
    torch.testing.assert_close(t(x, keys=KEYS), _ref_hybrid_single(x, _replay(t, x, 24), 1.0, 9, 1.5, 0.0),
                               atol=1e-9, rtol=0)


def test_byte_cast_is_numpy_uint8_cast():
    v = np.array([-300.7, -256.0, -1.5, -0.3, 0.0, 0.99, 127.5, 255.9, 256.0, 256.7, 300.2, 511.9, 700.0])
    np.testing.assert_array_equal(byte_cast(torch.from_numpy(v)).numpy(), v.astype(np.int64).astype(np.uint8))
    np.testing.assert_array_equal(byte_cast(torch.from_numpy(v)).numpy(), torch.from_numpy(v).byte().numpy())


@pytest.mark.parametrize("cls", [HybridAugment, APR])
def test_faithful_uint8_wraps_where_default_clips(x, cls):
    kwargs = {"prob": 1.0} if cls is HybridAugment else {"p_apr": 1.0}
    clipped = cls("single", seed=5, **kwargs)(x, keys=KEYS)
    wrapped = cls("single", seed=5, faithful_uint8=True, **kwargs)(x, keys=KEYS)
    inside = (clipped > 0) & (clipped < 1)
    torch.testing.assert_close(wrapped[inside], (clipped[inside] * 255).trunc() / 255, atol=1e-12, rtol=0)
    # 255·(1 + δ) wraps to a dark level, 255·(−δ) to a bright one; the default clips instead
    assert (((clipped == 1) & (wrapped < 0.5)) | ((clipped == 0) & (wrapped > 0.5))).any()


def test_paired_clip_option(x):
    raw = APR("paired", p_apr=1.0, seed=3)(x, keys=KEYS)
    assert raw.min() < 0 or raw.max() > 1  # the reference does not clip
    clipped = APR("paired", p_apr=1.0, clip=True, seed=3)(x, keys=KEYS)
    torch.testing.assert_close(clipped, raw.clamp(0, 1), atol=0, rtol=0)


def test_amplitude_phase_mix_identity_and_swap():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64).unbind(0)
    a, b = a[None], b[None]
    torch.testing.assert_close(amplitude_phase_mix(a, a), a, atol=1e-12, rtol=0)
    torch.testing.assert_close(amplitude_phase_mix(a, b), ref_apr(a, b), atol=1e-12, rtol=0)



def test_amplitude_phase_mix_zero_bins_take_phase_zero():
    """A flat phase source has an all-zero spectrum outside DC: angle(0) = 0, no NaN."""
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 8, 12, generator=g, dtype=torch.float64)
    flat = torch.full_like(a, 0.3)
    out = amplitude_phase_mix(a, flat)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref_apr(a, flat), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (31, 17), (13, 9), (28, 28)])
def test_amplitude_phase_mix_is_batch_independent(h, w):
    """An image's recombination is bit-identical alone, in any slice and in the whole batch (the FFT
    library's batched transforms must not round differently depending on the batch size)."""
    g = torch.Generator().manual_seed(h * w)
    a, b = torch.rand(2, 19, 3, h, w, generator=g).unbind(0)
    full = amplitude_phase_mix(a, b)
    for start, stop in ((0, 1), (4, 5), (18, 19), (2, 5), (3, 11), (1, 18)):
        assert torch.equal(amplitude_phase_mix(a[start:stop], b[start:stop]), full[start:stop]), (start, stop)
    torch.testing.assert_close(full, ref_apr(a, b), atol=2e-6, rtol=0)


@pytest.mark.parametrize(("dtype", "c", "h", "w"), [(torch.float64, 3, 32, 32), (torch.float64, 1, 31, 17),
                                                    (torch.float32, 1, 32, 32)])
def test_amplitude_phase_mix_is_batch_independent_float64_and_gray(dtype, c, h, w):
    g = torch.Generator().manual_seed(c * h * w)
    a, b = torch.rand(2, 11, c, h, w, generator=g, dtype=dtype).unbind(0)
    full = amplitude_phase_mix(a, b)
    for start, stop in ((0, 1), (3, 4), (10, 11), (2, 5), (1, 10)):
        assert torch.equal(amplitude_phase_mix(a[start:stop], b[start:stop]), full[start:stop]), (start, stop)
    torch.testing.assert_close(full, ref_apr(a, b), atol=1e-12 if dtype == torch.float64 else 2e-6, rtol=0)


@pytest.mark.parametrize(("n", "side"), [(1, 16), (2, 16), (5, 16), (8, 16), (23, 32)])
def test_amplitude_phase_permute_equals_mix_of_permuted_batch(n, side):
    """APR-P's one-transform form: amplitude of x[π] with the phase of x, bit for bit as
    amplitude_phase_mix(x[π], x), and the reference formula; a flat image keeps phase 0 bins.
    (23 images of 32×28 span several CPU chunks in float64.)"""
    g = torch.Generator().manual_seed(n)
    for dtype in (torch.float32, torch.float64):
        xs = torch.rand(n, 3, side, side - 4, generator=g, dtype=dtype)
        if side == 16:  # an all-zero spectrum outside DC (16×12: the FFTs give exact zeros there)
            xs[0] = 0.4
        perm = torch.randperm(n, generator=g)
        out = amplitude_phase_permute(xs, perm)
        assert torch.equal(out, amplitude_phase_mix(xs[perm], xs))
        torch.testing.assert_close(out, ref_apr(xs[perm], xs), atol=1e-12 if dtype == torch.float64 else 2e-6,
                                   rtol=0)

# Defaults typed from the reference's §5.4 table: (class, mode, preset) -> expected attributes.
DEFAULTS = [
    (HybridAugment, "single", "cifar", {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "severity": 3}),
    (HybridAugment, "single", "imagenet", {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "severity": 3}),
    (HybridAugment, "paired", "cifar", {"kernel_size": 3, "sigma": 0.5, "prob": 0.6}),
    (HybridAugment, "paired", "imagenet", {"kernel_size": 3, "sigma": 0.5, "prob": 0.6}),
    (HybridAugmentPP, "single", "cifar", {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "p_apr": 0.5,
                                          "blur_strength": 1}),
    (HybridAugmentPP, "single", "imagenet", {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "p_apr": 0.5,
                                             "blur_strength": 1}),
    (HybridAugmentPP, "paired", "cifar", {"kernel_size": 3, "sigma": 0.5, "prob": 0.6, "p_apr": 0.6,
                                          "apr_normalize": None}),
    (HybridAugmentPP, "paired", "imagenet", {"kernel_size": 3, "sigma": 1.0, "prob": 0.6, "p_apr": 0.5,
                                             "apr_normalize": IMAGENET}),
    (APR, "single", "cifar", {"p_apr": 0.5, "severity": 3, "faithful_uint8": False}),
    (APR, "single", "imagenet", {"p_apr": 0.5, "severity": 3}),
    (APR, "paired", "cifar", {"p_apr": 0.6, "clip": False}),
    (APR, "paired", "imagenet", {"p_apr": 0.5}),
]


@pytest.mark.parametrize(("cls", "mode", "preset", "expected"), DEFAULTS)
def test_preset_defaults(cls, mode, preset, expected):
    t = cls(mode, preset)
    assert {k: getattr(t, k) for k in expected} == expected


@pytest.mark.parametrize(("make", "word"), [
    (lambda: HybridAugment("both"), "mode"), (lambda: HybridAugment(preset="svhn"), "preset"),
    (lambda: HybridAugment(kernel_size=4), "odd"), (lambda: HybridAugment(kernel_size=0), "kernel_size"),
    (lambda: HybridAugment(sigma=0.0), "sigma"), (lambda: HybridAugment(prob=1.5), "prob"),
    (lambda: HybridAugmentPP(blur_strength=2), "blur_strength"),
    (lambda: HybridAugmentPP(blur_strength=0), "blur_strength"),
    (lambda: HybridAugmentPP(p_apr=-0.1), "p_apr"), (lambda: APR("paired", severity=2), "severity"),
    (lambda: APR("single", clip=True), "clip"),
    (lambda: HybridAugment("paired", faithful_uint8=True), "faithful"),
    (lambda: APR("single", apr_normalize=None), "apr_normalize"),
    (lambda: APR("paired", apr_normalize=((0.5,), (0.0,))), "apr_normalize"),
    (lambda: APR(faithful_uint8="yes"), "faithful_uint8"), (lambda: APR(severity=11), "severity"),
    (lambda: HybridAugment(image_size=-1), "image_size"),
])
def test_bad_arguments(make, word):
    with pytest.raises(InvalidParameterError, match=word):
        make()

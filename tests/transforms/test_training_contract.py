"""Contract of the AugMix / HybridAugment / APR modules: per-sample determinism, batch independence,
epochs, no in-place writes, input forms (float64, CHW, uint8, PIL), CUDA."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from augforge.transforms.augmix import AugMix
from augforge.transforms.hybrid import APR, HybridAugment, HybridAugmentPP
from tests.transforms.conftest import to_tensor

SINGLE = {
    "augmix": lambda: AugMix(seed=4),
    "augmix_imagenet_jsd_all": lambda: AugMix(preset="imagenet", jsd=True, all_ops=True, seed=4),
    "ha_single": lambda: HybridAugment("single", prob=0.7, seed=4),
    "happ_single": lambda: HybridAugmentPP("single", prob=0.8, p_apr=0.7, seed=4),
    "happ_single_faithful": lambda: HybridAugmentPP("single", prob=0.8, faithful_uint8=True, seed=4),
    "apr_single": lambda: APR("single", p_apr=0.7, seed=4),
}
PAIRED = {
    "ha_paired": lambda: HybridAugment("paired", prob=1.0, seed=4),
    "happ_paired": lambda: HybridAugmentPP("paired", "imagenet", prob=1.0, p_apr=1.0, seed=4),
    "apr_paired": lambda: APR("paired", p_apr=1.0, seed=4),
}
ALL = {**SINGLE, **PAIRED}
KEYS = [f"s{i}" for i in range(8)]


def _first(out):
    return out[1] if isinstance(out, tuple) else out


@pytest.fixture(scope="module")
def x(pictures32) -> torch.Tensor:
    return to_tensor(pictures32)


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    return torch.equal(a, b)


@pytest.mark.parametrize("name", list(SINGLE))
def test_batch_independence(x, name):
    """A sample's output is the same alone, in its batch and in a shuffled batch (same key)."""
    t = SINGLE[name]()
    full = t(x, keys=KEYS)
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    shuffled = t(x[order], keys=[KEYS[i] for i in order])
    alone = t(x[3:4], keys=[KEYS[3]])
    for a, b, c in zip(*(o if isinstance(o, tuple) else (o,) for o in (full, shuffled, alone)), strict=True):
        assert torch.equal(b, a[order])
        assert torch.equal(c, a[3:4])
    assert not torch.equal(_first(full), x)


@pytest.mark.parametrize("name", list(ALL))
def test_seed_epoch_determinism_and_no_inplace(x, name):
    t = ALL[name]()
    before = x.clone()
    a = t(x, keys=KEYS)
    assert torch.equal(x, before), "the input must not be modified"
    assert _same(a, ALL[name]()(x, keys=KEYS))  # same seed, epoch and keys: identical
    t.set_epoch(1)
    b = t(x, keys=KEYS)
    assert not _same(a, b)  # a new epoch draws anew
    t.set_epoch(0)
    assert _same(a, t(x, keys=KEYS))
    other = ALL[name]()
    other.seed = 5
    assert not _same(a, other(x, keys=KEYS))
    for out in a if isinstance(a, tuple) else (a,):
        out.add_(1)  # outputs are fresh tensors, never views of the input
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", list(ALL))
def test_input_forms(x, name):
    t = ALL[name]()
    ref = t(x, keys=KEYS)
    out64 = t(x.double(), keys=KEYS)
    for r, o in zip(*(v if isinstance(v, tuple) else (v,) for v in (ref, out64)), strict=True):
        assert o.dtype == torch.float64
        if "faithful" not in name:  # (the byte cast's wrap-around magnifies rounding differences)
            assert (o.float() - r).abs().max() < 2e-5  # float32 and float64 agree (same 8-bit op levels)
    single = t(x[2], keys=[KEYS[2]])
    if name in SINGLE:
        expect = t(x[2:3], keys=[KEYS[2]])
        assert _same(single, tuple(e[0] for e in expect) if isinstance(expect, tuple) else expect[0])
    assert _first(single).shape == x[2].shape
    u8 = (x * 255).round().to(torch.uint8)
    out_u8 = _first(t(u8, keys=KEYS))
    assert out_u8.dtype == torch.uint8 and out_u8.shape == u8.shape
    pic = Image.fromarray(u8[1].permute(1, 2, 0).numpy())
    out_pil = _first(t(pic, keys=["p"]))
    assert isinstance(out_pil, Image.Image) and out_pil.size == pic.size and out_pil.mode == "RGB"


def test_grayscale_single_channel(x):
    gray = x.mean(1, keepdim=True)
    for name in ("augmix", "happ_single", "ha_paired"):
        out = ALL[name]()(gray, keys=KEYS)
        assert out.shape == gray.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(ALL))
def test_cuda(x, name):
    xc = x.cuda()
    a = ALL[name]()(xc, keys=KEYS)
    b = ALL[name]()(xc, keys=KEYS)
    assert _same(a, b)
    for out in a if isinstance(a, tuple) else (a,):
        assert out.device.type == "cuda" and out.shape == x.shape and out.dtype == x.dtype
    if name in SINGLE:
        alone = ALL[name]()(xc[3:4], keys=[KEYS[3]])
        assert torch.equal(_first(alone)[0], _first(a)[3])

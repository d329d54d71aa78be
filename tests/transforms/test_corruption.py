"""RandomCorruption: draw laws, equality with the op applied alone, presets by size, contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from augforge.core.errors import InvalidParameterError, UnknownOpError
from augforge.core.registry import build_op
from augforge.core.seeding import derive_seed, generator_for
from augforge.transforms import RandomCorruption
from augforge.transforms.corruption import default_ops, preset_for_size

CUDA = torch.cuda.is_available()

IMAGENET_C = {  # 15 benchmark corruptions + 4 extra (corruptions-2d.md §1)
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression", "speckle_noise", "gaussian_blur", "spatter", "saturate",
}  # fmt: skip


def image_batch(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, w, dtype=torch.float64).view(1, 1, 1, w)
    return (0.2 + 0.4 * torch.rand(b, c, h, w, generator=g, dtype=torch.float64) + 0.2 * ramp).to(dtype)


def expected_draws(seed: int, key: str, n_ops: int, severities: list[int], p: float, epoch: int = 0):
    """The documented draw order, re-derived: U coin, U op, U severity, then one 62-bit op seed."""
    g = generator_for(derive_seed(seed, key, "random_corruption", f"epoch{epoch}"))
    u = torch.rand(3, dtype=torch.float64, generator=g).tolist()
    op_seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return u[0] < p, int(u[1] * n_ops), severities[int(u[2] * len(severities))], op_seed


def test_default_ops_are_the_19_imagenet_c_ops():
    assert set(default_ops()) == IMAGENET_C and len(default_ops()) == 19
    assert set(RandomCorruption().op_names) == IMAGENET_C


def test_p0_is_identity_and_p1_always_changes():
    x = image_batch(24, seed=1)
    out0 = RandomCorruption(p=0.0)(x)
    assert torch.equal(out0, x) and out0.data_ptr() != x.data_ptr()
    t = RandomCorruption(p=1.0, seed=2)
    keys = [f"s{i}" for i in range(24)]
    out1 = t(x, keys=keys)
    changed = (out1 - x).abs().flatten(1).amax(1) > 0
    assert changed.all(), f"unchanged samples: {(~changed).nonzero().flatten().tolist()}"
    assert len({expected_draws(2, k, 19, [1, 2, 3, 4, 5], 1.0)[1] for k in keys}) >= 8


def test_draw_frequencies_are_uniform():
    n = 6000
    t = RandomCorruption(severities=(1, 3, 5), p=0.3)
    plan = t.plan([generator_for(derive_seed(1, str(i))) for i in range(n)])
    frac = np.mean(plan.applied)
    assert abs(frac - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    op_counts = np.bincount(plan.ops, minlength=19)
    sev_counts = np.array([plan.severities.count(s) for s in (1, 3, 5)])
    assert len(op_counts) == 19 and sev_counts.sum() == n
    for counts in (op_counts, sev_counts):
        df = len(counts) - 1
        chi2 = float(((counts - counts.mean()) ** 2 / counts.mean()).sum())
        assert chi2 < df + 6 * math.sqrt(2 * df), (chi2, counts)
    assert stats.chisquare(op_counts).pvalue > 1e-4


def test_each_sample_equals_its_op_applied_alone():
    ops = ["gaussian_noise", "glass_blur", "fog", "contrast", "motion_blur"]
    sevs = [2, 4, 5]
    x = image_batch(16, seed=3)
    keys = [f"img{i}" for i in range(16)]
    t = RandomCorruption(ops, sevs, p=0.7, seed=11)
    out = t(x, keys=keys)
    applied = 0
    for i, key in enumerate(keys):
        hit, op_index, severity, op_seed = expected_draws(11, key, len(ops), sevs, 0.7)
        if not hit:
            assert torch.equal(out[i], x[i])
            continue
        applied += 1
        op = build_op(ops[op_index], severity, preset="cifar")
        alone = op(x[i : i + 1], [generator_for(op_seed)])
        torch.testing.assert_close(out[i : i + 1], alone, atol=1e-6, rtol=0)
    assert 4 <= applied <= 15



@pytest.mark.parametrize("p", [1.0, 0.6])
def test_one_group_of_many_samples_equals_the_op_alone(p):
    """One (op, severity): every corrupted sample is in one group (consecutive rows when p = 1,
    scattered when p < 1); each equals its op applied alone and the input is left as it was."""
    x = image_batch(10, seed=8)
    before = x.clone()
    keys = [f"g{i}" for i in range(10)]
    out = RandomCorruption(["gaussian_noise"], [4], p=p, seed=13)(x, keys=keys)
    assert torch.equal(x, before)
    op = build_op("gaussian_noise", 4, preset="cifar")
    hits = 0
    for i, key in enumerate(keys):
        hit, _, _, op_seed = expected_draws(13, key, 1, [4], p)
        expect = op(x[i : i + 1], [generator_for(op_seed)]) if hit else x[i : i + 1]
        assert torch.equal(out[i : i + 1], expect), i
        hits += hit
    assert hits == 10 if p == 1.0 else 2 <= hits <= 9

def test_batch_independence_and_determinism():
    x = image_batch(9, seed=4)
    before = x.clone()
    keys = [f"k{i}" for i in range(9)]
    t = RandomCorruption(p=0.8, seed=5)
    out = t(x, keys=keys)
    assert torch.equal(x, before)
    assert torch.equal(RandomCorruption(p=0.8, seed=5)(x, keys=keys), out)
    perm = [4, 8, 0, 2, 7, 1, 3, 6, 5]
    shuffled = t(x[perm], keys=[keys[i] for i in perm])
    for pos, i in enumerate(perm):
        torch.testing.assert_close(shuffled[pos], out[i], atol=1e-6, rtol=0)
        torch.testing.assert_close(t(x[i : i + 1], keys=[keys[i]])[0], out[i], atol=1e-6, rtol=0)
    t.set_epoch(3)
    assert not torch.equal(t(x, keys=keys), out)


def test_preset_by_image_size():
    assert preset_for_size(224, 224) == "imagenet" and preset_for_size(128, 500) == "imagenet"
    assert preset_for_size(127, 127) == "tiny" and preset_for_size(64, 64) == "tiny"
    assert preset_for_size(63, 200) == "cifar" and preset_for_size(32, 32) == "cifar"
    for size, preset in ((64, "tiny"), (32, "cifar"), (128, "imagenet")):
        x = image_batch(1, h=size, w=size, seed=6)
        out = RandomCorruption(["gaussian_noise"], [3], p=1.0, seed=7)(x, keys=["a"])
        op_seed = expected_draws(7, "a", 1, [3], 1.0)[3]
        for other in ("imagenet", "tiny", "cifar"):
            ref = build_op("gaussian_noise", 3, preset=other)(x, [generator_for(op_seed)])
            assert torch.equal(out, ref) == (other == preset), (size, other)
    forced = RandomCorruption(["gaussian_noise"], [3], p=1.0, preset="imagenet", seed=7)
    x = image_batch(1, seed=6)
    ref = build_op("gaussian_noise", 3, preset="imagenet")(x, [generator_for(op_seed)])
    assert torch.equal(forced(x, keys=["a"]), ref)


def test_input_forms():
    # deterministic ops: float64 must agree with float32 (noise ops draw in the input dtype)
    t = RandomCorruption(["gaussian_blur", "contrast"], p=1.0, seed=1)
    x = image_batch(2, seed=8)
    out32 = t(x, keys=["a", "b"])
    out64 = t(x.double(), keys=["a", "b"])
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, atol=1e-4, rtol=0)
    single = t(x[1], keys=["b"])
    assert single.shape == x.shape[1:] and torch.allclose(single, out32[1], atol=1e-6)
    u8 = (x * 255).round().to(torch.uint8)
    out_u8 = t(u8, keys=["a", "b"])
    assert out_u8.dtype == torch.uint8 and out_u8.shape == u8.shape
    img = Image.fromarray(u8[0].permute(1, 2, 0).numpy())
    out_img = t(img, keys=["a"])
    assert isinstance(out_img, Image.Image) and out_img.size == img.size
    assert np.array_equal(np.asarray(out_img), out_u8[0].permute(1, 2, 0).numpy())


def test_constructor_validation():
    with pytest.raises(UnknownOpError, match="unknown operator 'fgo'"):
        RandomCorruption(["fog", "fgo"])
    bad = [
        lambda: RandomCorruption("fog"),
        lambda: RandomCorruption([]),
        lambda: RandomCorruption(["fog", "fog"]),
        lambda: RandomCorruption(["fog", 3]),
        lambda: RandomCorruption(severities=()),
        lambda: RandomCorruption(severities=(0, 1)),
        lambda: RandomCorruption(severities=(5, 6)),
        lambda: RandomCorruption(severities=(1, 1)),
        lambda: RandomCorruption(severities=3),
        lambda: RandomCorruption(severities=(1.0,)),
        lambda: RandomCorruption(p=1.5),
        lambda: RandomCorruption(p=-0.1),
        lambda: RandomCorruption(p=True),
        lambda: RandomCorruption(preset="mnist"),
        lambda: RandomCorruption(seed="0"),
    ]
    for make in bad:
        with pytest.raises(InvalidParameterError):
            make()


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
def test_cuda():
    x = image_batch(6).cuda()
    t = RandomCorruption(p=0.9, seed=1)
    out = t(x, keys=list("abcdef"))
    assert out.device == x.device and out.shape == x.shape
    torch.testing.assert_close(t(x[3:4], keys=["d"]), out[3:4], atol=1e-6, rtol=0)

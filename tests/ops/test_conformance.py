"""The operator contract, checked for every registered op (new ops get these tests for free)."""

from __future__ import annotations

import pytest
import torch

from augforge.core.errors import InvalidInputError, InvalidParameterError, InvalidSeverityError
from augforge.core.registry import build_op, list_ops

SPECS = list_ops()
IMAGE_SPECS = [s for s in SPECS if s.reads == ("image",)]
IDS = [s.name for s in IMAGE_SPECS]
CUDA = torch.cuda.is_available()


def batch(
    b: int = 2, c: int = 3, h: int = 32, w: int = 40, *, seed: int = 0, dtype=torch.float32
) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish content: a gradient plus texture, so blur/colour ops change something.
    base = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    ramp = torch.linspace(0, 1, w, dtype=torch.float64).view(1, 1, 1, w)
    return (0.5 * base + 0.5 * ramp).to(dtype)


def test_registry_is_not_empty():
    assert len(IMAGE_SPECS) >= 9


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_metadata_is_complete(spec):
    assert spec.summary and spec.reference and spec.family
    assert spec.severities == (1, 2, 3, 4, 5)
    for preset in spec.presets:
        for level in spec.severities:
            assert set(spec.params(level, preset)) == set(spec.param_names)


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
@pytest.mark.parametrize("shape", [(2, 3, 32, 40), (2, 1, 24, 24), (1, 3, 8, 13)])
def test_shape_dtype_range(spec, shape):
    for dtype in (torch.float32, torch.float64):
        x = batch(*shape, dtype=dtype)
        out = build_op(spec.name, 3)(x, 0)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        assert out.data_ptr() != x.data_ptr(), "ops must not return their input"


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_input_not_modified(spec):
    x = batch()
    before = x.clone()
    build_op(spec.name, 5)(x, 0)
    assert torch.equal(x, before)


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_same_seed_same_output(spec):
    x = batch()
    op = build_op(spec.name, 4)
    assert torch.equal(op(x, 123), op(x, 123))


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_batch_independence(spec):
    """Sample i alone equals sample i inside a shuffled batch of 7 (same key)."""
    x = batch(7, seed=1)
    keys = [f"img{i}" for i in range(7)]
    op = build_op(spec.name, 3)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    shuffled = op(x[perm], 9, keys=[keys[i] for i in perm])
    for pos, i in enumerate(perm.tolist()):
        alone = op(x[i : i + 1], 9, keys=[keys[i]])
        torch.testing.assert_close(shuffled[pos : pos + 1], alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("spec", [s for s in IMAGE_SPECS if not s.deterministic], ids=lambda s: s.name)
def test_different_seeds_differ(spec):
    x = batch()
    op = build_op(spec.name, 5)
    assert not torch.equal(op(x, 1), op(x, 2))
    # and two samples with the same content but different keys get different draws
    twin = torch.cat([x[:1], x[:1]])
    out = op(twin, 1, keys=["a", "b"])
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("spec", [s for s in IMAGE_SPECS if s.deterministic], ids=lambda s: s.name)
def test_deterministic_ops_ignore_seed(spec):
    x = batch()
    op = build_op(spec.name, 3)
    assert torch.equal(op(x, 1), op(x, 2))


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_every_severity_changes_the_image(spec):
    x = batch(seed=3)
    for level in spec.severities:
        assert not torch.equal(build_op(spec.name, level)(x, 0), x), f"severity {level} is a no-op"


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_bad_arguments(spec):
    x = batch()
    with pytest.raises(InvalidSeverityError):
        build_op(spec.name, 0)
    with pytest.raises(InvalidSeverityError):
        build_op(spec.name, 6)
    with pytest.raises(InvalidParameterError, match="unknown parameter"):
        build_op(spec.name, 1, not_a_parameter=1)
    op = build_op(spec.name, 1)
    with pytest.raises(InvalidInputError, match="channels"):
        op(batch(c=4), 0)
    with pytest.raises(InvalidInputError, match="channels"):
        op(batch(c=2), 0)
    bad = x.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        op(bad, 0)


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=IDS)
def test_cuda(spec):
    x = batch().cuda()
    out = build_op(spec.name, 3)(x, 0)
    assert out.device == x.device and out.shape == x.shape and out.dtype == x.dtype
    cpu = build_op(spec.name, 3)(x.cpu(), 0)
    if spec.deterministic:
        torch.testing.assert_close(out.cpu(), cpu, atol=2 / 255, rtol=0)

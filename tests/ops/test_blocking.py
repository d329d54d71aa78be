"""The base class feeds large CPU batches to `apply` in blocks of samples (Op.CPU_BLOCK); every
image op must give the same result whatever the block size (one sample per block vs the whole
batch), which is what makes the blocking safe."""

from __future__ import annotations

import pytest
import torch

from augforge.core.registry import build_op, list_ops

IMAGE_SPECS = [s for s in list_ops() if s.reads == ("image",)]


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=[s.name for s in IMAGE_SPECS])
def test_block_size_does_not_change_outputs(spec, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 24, 31, generator=g)
    op = build_op(spec.name, 4)
    monkeypatch.setattr(type(op), "CPU_BLOCK", 0)
    whole = op(x, 3)
    monkeypatch.setattr(type(op), "CPU_BLOCK", 1)
    blocked = op(x, 3)
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-6)

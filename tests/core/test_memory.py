"""Output buffers: huge-page advice must not change shape, dtype, device or contents."""

from __future__ import annotations

import torch

from augforge.core import memory


def test_empty_like_matches_torch_for_large_and_small_tensors():
    for shape in [(64, 3, 224, 224), (2, 3, 8, 8)]:
        for dtype in (torch.float32, torch.float64, torch.uint8):
            like = torch.zeros(shape, dtype=dtype)
            out = memory.empty_like(like)
            assert out.shape == like.shape and out.dtype == dtype and out.is_contiguous()
            out.fill_(1)
            assert int(out.sum()) == like.numel()


def test_advice_is_a_no_op_for_views_of_small_or_odd_buffers():
    base = torch.arange(10_000_000, dtype=torch.float32)
    view = base[3:5_000_003]  # not page aligned
    memory.advise_hugepages(view)
    memory.advise_hugepages(torch.ones(10))
    assert float(view[0]) == 3.0 and float(base[-1]) == 9_999_999.0

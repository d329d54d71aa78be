"""Per-sample work on several threads gives exactly the single-thread results."""

from __future__ import annotations

import pytest
import torch

from augforge.ops.image._threads import draw, for_each_sample


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("kind, fn", [("normal", torch.randn), ("uniform", torch.rand)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_draw_equals_torch_per_generator(two_threads, kind, fn, dtype):
    gens = [torch.Generator().manual_seed(100 + i) for i in range(5)]
    got = draw((3, 17, 19), gens, kind, device=torch.device("cpu"), dtype=dtype)
    want = torch.stack([fn((3, 17, 19), generator=torch.Generator().manual_seed(100 + i), dtype=dtype)
                        for i in range(5)])
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="kind"):
        draw((2,), gens, "poisson", device=torch.device("cpu"), dtype=dtype)


def test_for_each_sample_keeps_order(two_threads):
    assert for_each_sample(lambda i: i * i, 9) == [i * i for i in range(9)]
    assert for_each_sample(lambda i: i, 0) == []

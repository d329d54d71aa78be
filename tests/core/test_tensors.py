import numpy as np
import pytest
import torch

from augforge.core.errors import InvalidInputError
from augforge.core.tensors import to_float, to_uint8


def test_round_trip_is_exact_for_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    x = to_float(levels)
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert np.array_equal(to_uint8(x, mode="truncate")[0], levels)
    assert np.array_equal(to_uint8(x, mode="round")[0], levels)


def test_truncate_vs_round():
    x = torch.full((1, 1, 8, 8), 100.7 / 255)
    assert to_uint8(x, mode="truncate").max() == 100
    assert to_uint8(x, mode="round").max() == 101


def test_shapes_accepted():
    assert to_float(np.zeros((8, 9), np.uint8)).shape == (1, 1, 8, 9)
    assert to_float(np.zeros((8, 9, 3), np.uint8)).shape == (1, 3, 8, 9)
    assert to_float([np.zeros((8, 9, 3), np.uint8)] * 2).shape == (2, 3, 8, 9)


def test_bad_inputs():
    with pytest.raises(InvalidInputError):
        to_float(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidInputError):
        to_float(np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(1, 3, 8, 8), mode="nearest")

"""check_image_batch's single-pass value checks: NaN and ±inf name the bad samples, out-of-range
values report the range, and the [0, 1] tolerance is kept."""

from __future__ import annotations

import pytest
import torch

from augforge.core.errors import InvalidInputError
from augforge.core.validation import RANGE_TOLERANCE, check_image_batch


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_non_finite_values_name_the_samples(bad, dtype):
    x = torch.full((6, 3, 8, 9), 0.5, dtype=dtype)
    x[1, 2, 7, 8] = bad
    x[4, 0, 0, 0] = bad
    with pytest.raises(InvalidInputError, match=r"NaN or inf values in sample\(s\) \[1, 4\]"):
        check_image_batch(x, name="op")


def test_nan_next_to_out_of_range_values_is_reported_as_nan():
    x = torch.full((3, 1, 8, 8), 0.5)
    x[0, 0, 0, 0] = 7.0
    x[2, 0, 3, 3] = float("nan")
    with pytest.raises(InvalidInputError, match=r"sample\(s\) \[2\]"):
        check_image_batch(x)


def test_range_is_checked_with_tolerance():
    x = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    x[0, 0, 0, 0] = -RANGE_TOLERANCE
    x[1, 2, 7, 7] = 1 + RANGE_TOLERANCE
    assert check_image_batch(x) is x
    x[1, 1, 1, 1] = 1.01
    with pytest.raises(InvalidInputError, match=r"values must lie in \[0, 1\], got \[-0.0001, 1.01\]"):
        check_image_batch(x)

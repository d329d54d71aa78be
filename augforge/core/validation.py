"""Input checks shared by every image operator, with messages that say what to fix."""

from __future__ import annotations

import math

import torch

from augforge.core.errors import InvalidInputError

MIN_SIDE = 8
RANGE_TOLERANCE = 1e-4


def check_image_batch(x: object, *, name: str = "input") -> torch.Tensor:
    """Check that `x` is a float (B, C, H, W) tensor in [0, 1], C in {1, 3}, H, W >= 8, finite."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InvalidInputError(
            f"{name}: expected a float tensor in [0, 1], got dtype {x.dtype}; "
            "convert uint8 images with augforge.to_float(x)"
        )
    if x.ndim != 4:
        raise InvalidInputError(f"{name}: expected shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    if b == 0:
        raise InvalidInputError(f"{name}: empty batch")
    if c not in (1, 3):
        raise InvalidInputError(f"{name}: expected 1 or 3 channels, got C={c} (shape {tuple(x.shape)})")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InvalidInputError(f"{name}: images must be at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")
    # One pass: aminmax propagates NaN, and an inf shows up as the minimum or maximum.
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = (~torch.isfinite(x)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise InvalidInputError(f"{name}: NaN or inf values in sample(s) {bad}")
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise InvalidInputError(f"{name}: values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return x

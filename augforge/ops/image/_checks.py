"""Parameter checks shared by the image ops' `check_params`: one clear message per bad value."""

from __future__ import annotations

import math
import numbers

from augforge.core.errors import InvalidParameterError


def real(op: str, name: str, value: object, *, lo: float | None = None, hi: float | None = None,
         lo_open: bool = False) -> float:
    """`value` as a finite float in [lo, hi] (or (lo, hi] with lo_open), else InvalidParameterError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{op}: {name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidParameterError(f"{op}: {name} must be finite, got {value!r}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise InvalidParameterError(f"{op}: {name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and v > hi:
        raise InvalidParameterError(f"{op}: {name} must be <= {hi}, got {value!r}")
    return v


def integer(op: str, name: str, value: object, *, lo: int, hi: int) -> int:
    """`value` as an int in lo..hi (inclusive), else InvalidParameterError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{op}: {name} must be an integer in {lo}..{hi}, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise InvalidParameterError(f"{op}: {name} must be in {lo}..{hi}, got {v}")
    return v

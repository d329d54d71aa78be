"""Shared pieces of the training-time transforms: presets, argument checks, per-sample draws."""

from __future__ import annotations

import math
from typing import Any

import torch

from augforge.core.errors import InvalidParameterError

PRESETS = ("cifar", "imagenet")
MODES = ("single", "paired")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(map(repr, choices))
        raise InvalidParameterError(f"{owner}: {name} must be one of {allowed}, got {value!r}")
    return value


def check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{owner}: {name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise InvalidParameterError(f"{owner}: {name} must be {span}, got {value}")
    return value


def check_number(owner: str, name: str, value: Any, *, lo: float, hi: float = math.inf,
                 lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParameterError(f"{owner}: {name} must be a finite number, got {value!r}")
    if value < lo or (lo_open and value == lo) or value > hi:
        left = "(" if lo_open else "["
        raise InvalidParameterError(f"{owner}: {name} must lie in {left}{lo}, {hi}], got {value}")
    return float(value)


def check_probability(owner: str, name: str, value: Any) -> float:
    return check_number(owner, name, value, lo=0.0, hi=1.0)


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def check_kernel(owner: str, kernel_size: Any, sigma: Any, strength: int = 1) -> tuple[int, float]:
    """Validated (kernel_size·strength, sigma·strength); torchvision needs an odd kernel size."""
    k = check_int(owner, "kernel_size", kernel_size, 1)
    s = check_number(owner, "sigma", sigma, lo=0.0, lo_open=True)
    if (k * strength) % 2 == 0:
        what = "kernel_size" if strength == 1 else f"kernel_size * blur_strength = {k * strength}"
        raise InvalidParameterError(f"{owner}: {what} must be odd (torchvision GaussianBlur), got {k}")
    return k * strength, s * strength


def check_image_size(owner: str, value: Any) -> int | None:
    return None if value is None else check_int(owner, "image_size", value, 1)


def uniforms(gens: list[torch.Generator], n: int, device: torch.device) -> torch.Tensor:
    """(B, n) float64 uniforms, row i drawn from gens[i] only (one call per sample)."""
    return torch.stack([torch.rand(n, generator=g, device=device, dtype=torch.float64) for g in gens])


def normals(gens: list[torch.Generator], n: int, device: torch.device) -> torch.Tensor:
    """(B, n) float64 standard normals, row i drawn from gens[i] only (one call per sample)."""
    return torch.stack([torch.randn(n, generator=g, device=device, dtype=torch.float64) for g in gens])

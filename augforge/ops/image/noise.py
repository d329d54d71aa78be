"""ImageNet-C noise corruptions: gaussian, shot (Poisson), impulse (salt & pepper), speckle.

Every draw is i.i.d. per pixel *and* per channel, as in the reference (numpy draws of the full
H×W×C shape). Sample i draws only from gens[i], so its output does not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import real

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."


# --------------------------------------------------------------------------- kernels


def _per_sample(x: torch.Tensor, gens: Sequence[torch.Generator], draw: str) -> torch.Tensor:
    """One (C, H, W) draw per sample from its own generator: 'normal' N(0, 1) or 'uniform' U[0, 1)."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    fn = torch.randn if draw == "normal" else torch.rand
    shape = tuple(x.shape[1:])
    return torch.stack([fn(shape, generator=g, device=x.device, dtype=x.dtype) for g in gens])


def gaussian_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + N(0, sigma²))."""
    return (x + sigma * _per_sample(x, gens, "normal")).clamp_(0.0, 1.0)


def shot_noise(x: torch.Tensor, lam: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(Poisson(lam · x) / lam): photon noise, milder for larger lam."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    rates = x * lam
    counts = torch.stack([torch.poisson(rates[i], generator=g) for i, g in enumerate(gens)])
    return (counts / lam).clamp_(0.0, 1.0)


def impulse_noise(x: torch.Tensor, amount: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """skimage `random_noise(mode='s&p', amount)`: each element is hit with probability `amount`;
    a hit becomes 1 or 0 with equal odds (one uniform draw u: u < amount/2 salt, u < amount pepper)."""
    u = _per_sample(x, gens, "uniform")
    out = torch.where(u < amount, torch.zeros_like(x), x)
    return torch.where(u < 0.5 * amount, torch.ones_like(x), out)


def speckle_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + x · N(0, sigma²)): multiplicative noise."""
    return (x + x * (sigma * _per_sample(x, gens, "normal"))).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------- registered ops


@register_op(
    "gaussian_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="x + N(0, sigma²) i.i.d. per pixel and channel, clipped to [0, 1]. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class GaussianNoise(Op):
    """Additive Gaussian noise (ImageNet-C gaussian_noise)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("sigma",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.08,), (0.12,), (0.18,), (0.26,), (0.38,)],
        "cifar": [(0.04,), (0.06,), (0.08,), (0.09,), (0.10,)],
        "tiny": [(0.04,), (0.08,), (0.12,), (0.15,), (0.18,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": real(self.name, "sigma", params["sigma"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return gaussian_noise(x, self.params["sigma"], gens)


@register_op(
    "shot_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="Poisson(lam·x)/lam i.i.d. per pixel and channel (torch.poisson), clipped; larger lam = "
    "milder. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class ShotNoise(Op):
    """Poisson photon noise (ImageNet-C shot_noise)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("lam",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(60,), (25,), (12,), (5,), (3,)],
        "cifar": [(500,), (250,), (100,), (75,), (50,)],
        "tiny": [(250,), (100,), (50,), (30,), (15,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"lam": real(self.name, "lam", params["lam"], lo=0.0, lo_open=True)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return shot_noise(x, self.params["lam"], gens)


@register_op(
    "impulse_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="Salt & pepper as skimage random_noise(mode='s&p'): each pixel and channel is hit with "
    "probability `amount`, a hit is 0 or 1 with equal odds. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class ImpulseNoise(Op):
    """Salt-and-pepper noise (ImageNet-C impulse_noise)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("amount",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.03,), (0.06,), (0.09,), (0.17,), (0.27,)],
        "cifar": [(0.01,), (0.02,), (0.03,), (0.05,), (0.07,)],
        "tiny": [(0.01,), (0.02,), (0.05,), (0.08,), (0.14,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"amount": real(self.name, "amount", params["amount"], lo=0.0, hi=1.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return impulse_noise(x, self.params["amount"], gens)


@register_op(
    "speckle_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="x + x·N(0, sigma²) i.i.d. per pixel and channel, clipped (an ImageNet-C 'extra' "
    "corruption). " + PRESET_NOTE,
    tags=("noise", "imagenet-c", "extra"),
)
class SpeckleNoise(Op):
    """Multiplicative speckle noise (ImageNet-C speckle_noise)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("sigma",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.15,), (0.20,), (0.35,), (0.45,), (0.60,)],
        "cifar": [(0.06,), (0.10,), (0.12,), (0.16,), (0.20,)],
        "tiny": [(0.15,), (0.20,), (0.25,), (0.30,), (0.35,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": real(self.name, "sigma", params["sigma"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return speckle_noise(x, self.params["sigma"], gens)

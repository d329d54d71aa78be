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
from augforge.ops.image._threads import SERIAL_CHUNK, draw, for_each_sample

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."


# --------------------------------------------------------------------------- kernels


def _per_sample(x: torch.Tensor, gens: Sequence[torch.Generator], kind: str) -> torch.Tensor:
    """One (C, H, W) draw per sample from its own generator: 'normal' N(0, 1) or 'uniform' U[0, 1)
    (the numbers torch.randn / torch.rand would give), drawn on several threads."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    return draw(tuple(x.shape[1:]), list(gens), kind, device=x.device, dtype=x.dtype)


def gaussian_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + N(0, sigma²))."""
    return _per_sample(x, gens, "normal").mul_(sigma).add_(x).clamp_(0.0, 1.0)


def shot_noise(x: torch.Tensor, lam: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(Poisson(lam · x) / lam): photon noise, milder for larger lam."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    rates = x * lam
    # On the CPU, chunk by chunk in order is the same stream as one call, and chunks below torch's
    # parallel grain keep the sampler's output allocation serial on the pool thread (_threads).
    chunk = SERIAL_CHUNK if x.device.type == "cpu" else rates[0].numel()

    def one(i: int) -> list[torch.Tensor]:
        return [torch.poisson(part, generator=gens[i]) for part in rates[i].reshape(-1).split(chunk)]

    # each Poisson number costs about as much as ten uniform draws
    counts = [c for chunks in for_each_sample(one, len(gens), x.device, work=10 * x.numel()) for c in chunks]
    return torch.cat(counts).view_as(x).div_(lam).clamp_(0.0, 1.0)


def impulse_noise(x: torch.Tensor, amount: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """skimage `random_noise(mode='s&p', amount)`: each element is hit with probability `amount`;
    a hit becomes 1 or 0 with equal odds (one uniform draw u: u < amount/2 salt, u < amount pepper).
    Written as x·[u ≥ amount] + [u < amount/2] with float 0/1 masks: exact, and much cheaper
    on the CPU than two where()s."""
    u = _per_sample(x, gens, "uniform")
    out = torch.ge(u, amount, out=torch.empty_like(u)).mul_(x)
    return out.add_(torch.lt(u, 0.5 * amount, out=u))


def speckle_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + x · N(0, sigma²)): multiplicative noise."""
    return _per_sample(x, gens, "normal").mul_(sigma).mul_(x).add_(x).clamp_(0.0, 1.0)


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

    CPU_BLOCK = 1 << 21  # the sampler dominates: larger blocks balance it across threads
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

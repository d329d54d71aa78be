"""ImageNet-C colour corruptions: brightness, contrast, saturate (all deterministic).

Brightness and saturate edit V and S in skimage's HSV space. A 1-channel image is processed as
the RGB image with three equal channels and converted back with 0.299 R + 0.587 G + 0.114 B.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import real
from augforge.ops.image.kernels.color import as_rgb, rgb_to_gray, scale_saturation, shift_value

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."
GRAY_NOTE = (
    "Grayscale input is processed as replicated RGB and converted back with 0.299R+0.587G+0.114B."
)


# --------------------------------------------------------------------------- kernels


def _on_rgb(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply an RGB -> RGB function; 1-channel input goes through replicated RGB and back to gray."""
    if x.shape[-3] == 3:
        return fn(x)
    return rgb_to_gray(fn(as_rgb(x)))


def brightness(x: torch.Tensor, delta: float) -> torch.Tensor:
    """RGB -> HSV, V <- clip(V + delta, 0, 1), -> RGB (in closed form: kernels.color.shift_value)."""
    return _on_rgb(x, lambda rgb: shift_value(rgb, delta))


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """(x - mean_c) · factor + mean_c with the spatial mean of each channel, clipped; formed as
    x · factor + mean_c · (1 − factor), one pass over the picture."""
    means = x.mean(dim=(-2, -1), keepdim=True)
    return torch.add(means.mul_(1.0 - factor), x, alpha=factor).clamp_(0.0, 1.0)


def saturate(x: torch.Tensor, mult: float, offset: float) -> torch.Tensor:
    """RGB -> HSV, S <- clip(S · mult + offset, 0, 1), -> RGB (in closed form:
    kernels.color.scale_saturation)."""
    return _on_rgb(x, lambda rgb: scale_saturation(rgb, mult, offset))


# --------------------------------------------------------------------------- registered ops


@register_op(
    "brightness",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="HSV value shift V + delta (skimage rgb2hsv/hsv2rgb semantics), clipped. "
    + GRAY_NOTE + " " + PRESET_NOTE,
    tags=("weather", "imagenet-c"),
)
class Brightness(Op):
    """Brighten by shifting the HSV value channel (ImageNet-C brightness)."""

    CPU_BLOCK = 1 << 17  # one 224² image: its many HSV temporaries then stay in the cache
    PARAMS: ClassVar[tuple[str, ...]] = ("delta",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        "cifar": [(0.05,), (0.1,), (0.15,), (0.2,), (0.3,)],
        "tiny": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"delta": real(self.name, "delta", params["delta"], lo=-1.0, hi=1.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return brightness(x, self.params["delta"])


@register_op(
    "contrast",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="(x - mean) · factor + mean with the per-channel spatial mean, clipped (for one channel "
    "this equals the replicated-RGB route). " + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class Contrast(Op):
    """Reduce contrast towards each channel's mean (ImageNet-C contrast)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("factor",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        "cifar": [(0.75,), (0.5,), (0.4,), (0.3,), (0.15,)],
        "tiny": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"factor": real(self.name, "factor", params["factor"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return contrast(x, self.params["factor"])


@register_op(
    "saturate",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="HSV saturation S · mult + offset (skimage semantics), clipped; an ImageNet-C 'extra' "
    "corruption. " + GRAY_NOTE + " " + PRESET_NOTE,
    tags=("digital", "imagenet-c", "extra"),
)
class Saturate(Op):
    """Scale and shift HSV saturation (ImageNet-C saturate)."""

    CPU_BLOCK = 1 << 17  # one 224² image: its many HSV temporaries then stay in the cache
    PARAMS: ClassVar[tuple[str, ...]] = ("mult", "offset")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
        "cifar": [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
        "tiny": [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (30.0, 0.2)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "mult": real(self.name, "mult", params["mult"], lo=0.0),
            "offset": real(self.name, "offset", params["offset"], lo=-1.0, hi=1.0),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return saturate(x, self.params["mult"], self.params["offset"])

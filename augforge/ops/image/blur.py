"""ImageNet-C blur corruptions: defocus, glass, motion, zoom and (extra) gaussian blur.

Constants per preset come from hendrycks/robustness (imagenet: make_imagenet_c.py at 224 px,
cifar: make_cifar_c.py at 32 px, tiny: make_tinyimagenet_c.py at 64 px). The kernels live in
`kernels/blur.py` (defocus, glass, motion 8-bit round trip, zoom), `kernels/filters.py`
(Gaussian) and `kernels/motion.py` (ImageMagick's motion line, shared with snow). Every op
accepts any H×W ≥ 8, square or not.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from augforge.core.errors import InvalidParameterError
from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import integer, real
from augforge.ops.image.kernels import blur as K

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."

# numpy.arange(1, stop, step) exactly as numpy produces it (its float artefacts included: the
# ImageNet s1 list arange(1, 1.11, 0.01) has 12 entries, ending at 1.11).
_Z01_106 = (1.0, 1.01, 1.02, 1.03, 1.04, 1.05, 1.06)
_Z01_111 = (*_Z01_106, 1.07, 1.08, 1.09, 1.1, 1.11)
_Z01_116 = (*_Z01_111, 1.12, 1.1300000000000001, 1.1400000000000001, 1.1500000000000001)
_Z01_121 = (*_Z01_116, 1.1600000000000001, 1.1700000000000002, 1.1800000000000002,
            1.1900000000000002, 1.2000000000000002)
_Z01_126 = (*_Z01_121, 1.2100000000000002, 1.2200000000000002, 1.2300000000000002,
            1.2400000000000002, 1.2500000000000002)
_Z02_121 = (1.0, 1.02, 1.04, 1.06, 1.08, 1.1, 1.12, 1.1400000000000001, 1.1600000000000001,
            1.1800000000000002, 1.2000000000000002)
_Z02_126 = (*_Z02_121, 1.2200000000000002, 1.2400000000000002)
_Z03_131 = (1.0, 1.03, 1.06, 1.09, 1.12, 1.1500000000000001, 1.1800000000000002,
            1.2100000000000002, 1.2400000000000002, 1.2700000000000002, 1.3000000000000003)


def _severity_rows(values: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(v,) for v in values]


@register_op(
    "defocus_blur",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="Anti-aliased disk: indicator x²+y² ≤ r² on a 17×17 grid (r ≤ 8; 3×3 anti-alias Gaussian) "
    "or a (2r+1)² grid (5×5 Gaussian), normalised, smoothed like cv2.GaussianBlur (REFLECT_101), "
    "then correlated with each channel like cv2.filter2D (REFLECT_101). Radii > 8 must be "
    "integers. " + PRESET_NOTE,
    tags=("blur", "imagenet-c"),
)
class DefocusBlur(Op):
    """Defocus (disk) blur (ImageNet-C defocus_blur)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("radius", "alias_sigma")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
        "cifar": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "tiny": [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        radius = real(self.name, "radius", params["radius"], lo=0.0, hi=64.0)
        if radius > 8 and radius != int(radius):
            raise InvalidParameterError(f"{self.name}: a radius above 8 must be an integer, got {radius}")
        alias = real(self.name, "alias_sigma", params["alias_sigma"], lo=0.0, lo_open=True)
        return {"radius": radius, "alias_sigma": alias}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return K.defocus_blur(x, self.params["radius"], self.params["alias_sigma"])


@register_op(
    "glass_blur",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="Blur (skimage gaussian, bit-exact in float64), truncate to uint8, then `iterations` "
    "sequential passes over rows H−d..d+1 and columns W−d..d+1 (descending) that copy pixel "
    "(h+dy, w+dx), dy, dx ~ U{−d..d−1}, into (h, w) — the reference's RGB 'swap' is a copy because "
    "of numpy view aliasing — then blur again. The passes are resolved exactly (pointer jumping over "
    "the copy chains), not approximated. Loop bounds use the real H and W like imagecorruptions "
    "(the ImageNet-C script hard-codes 224, CIFAR 32, Tiny 64). Offsets come from torch's "
    "generator, not numpy's: same distribution, different stream. " + PRESET_NOTE,
    tags=("blur", "imagenet-c"),
)
class GlassBlur(Op):
    """Glass blur: blur, local pixel shuffle, blur (ImageNet-C glass_blur)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("sigma", "max_delta", "iterations")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
        "cifar": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        "tiny": [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "sigma": real(self.name, "sigma", params["sigma"], lo=0.0, hi=50.0),
            "max_delta": integer(self.name, "max_delta", params["max_delta"], lo=1, hi=64),
            "iterations": integer(self.name, "iterations", params["iterations"], lo=0, hi=100),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        h, w = x.shape[-2:]
        d, n = self.params["max_delta"], self.params["iterations"]
        offsets = K.glass_offsets(gens, n, h, w, d, x.device)
        return K.glass_blur(x, self.params["sigma"], d, offsets)


@register_op(
    "motion_blur",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="ImageMagick 6 MotionBlurImage(radius R, sigma S, angle θ ~ U(−45°, 45°)): one-sided line "
    "of 2⌈R⌉+1 taps, half-Gaussian weights exp(−i²/2S²), offsets (⌈i·cosθ−½⌉, ⌈i·sinθ−½⌉), edge "
    "replication. Like the reference (PNG of a uint8 image in, 8-bit PNG out) the input is rounded "
    "to 8 bits and the result rounded half up to 8 bits. imagecorruptions skips both roundings "
    "(and truncates its output). Not kornia's motion_blur (a centred line). " + PRESET_NOTE,
    tags=("blur", "imagenet-c"),
)
class MotionBlur(Op):
    """Motion blur along a random direction (ImageNet-C motion_blur)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("radius", "sigma")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
        "cifar": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "tiny": [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "radius": real(self.name, "radius", params["radius"], lo=0.0, hi=256.0, lo_open=True),
            "sigma": real(self.name, "sigma", params["sigma"], lo=0.0, lo_open=True),
        }

    @staticmethod
    def angles(gens: list[torch.Generator], device: torch.device) -> torch.Tensor:
        """One angle per sample, U(−45°, 45°) from its own generator (float64)."""
        return torch.stack([
            torch.empty((), dtype=torch.float64, device=device).uniform_(-45.0, 45.0, generator=g)
            for g in gens
        ])

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return K.motion_blur_8bit(x, self.params["radius"], self.params["sigma"], self.angles(gens, x.device))

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        """The float path's own steps on the levels it would round to (exact in float32), without
        the /255 round trip: equal to it followed by truncation. CPU blocks of CPU_BLOCK elements."""
        assert gens is not None
        angles = self.angles(gens, x.device)
        step = self.block_samples(x)
        out = torch.empty_like(x)
        for i in range(0, x.shape[0], step):
            out[i:i + step] = K.motion_blur_levels(x[i:i + step], self.params["radius"],
                                                   self.params["sigma"], angles[i:i + step])
        return out


@register_op(
    "zoom_blur",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="Mean of the image and its clipped zooms for every factor z (numpy-arange lists "
    "hard-coded, float artefacts included): central ⌈H/z⌉×⌈W/z⌉ crop, corner-aligned bilinear "
    "zoom (scipy zoom order 1, side round(n·z)), central trim to H×W as in ImageNet-C. "
    "imagecorruptions keeps the top-left H×W instead; for factors below 1.5 (all benchmark "
    "lists) the zoomed crop exceeds H by at most 1 px, so the two coincide. " + PRESET_NOTE,
    tags=("blur", "imagenet-c"),
)
class ZoomBlur(Op):
    """Zoom blur: average of centred zooms (ImageNet-C zoom_blur)."""

    CPU_BLOCK = 0  # the whole batch: zoom_blur_cpu chunks it into many planes side by side itself
    PARAMS: ClassVar[tuple[str, ...]] = ("factors",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": _severity_rows([_Z01_111, _Z01_116, _Z02_121, _Z02_126, _Z03_131]),
        "cifar": _severity_rows([_Z01_106, _Z01_111, _Z01_116, _Z01_121, _Z01_126]),
        "tiny": _severity_rows([_Z01_106, _Z01_111, _Z01_116, _Z01_121, _Z01_126]),
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        factors = params["factors"]
        if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or not factors:
            raise InvalidParameterError(f"{self.name}: factors must be a non-empty list of numbers >= 1")
        if not all(isinstance(z, numbers.Real) and not isinstance(z, bool) for z in factors):
            raise InvalidParameterError(f"{self.name}: factors must be numbers, got {factors!r}")
        return {"factors": tuple(real(self.name, "factor", z, lo=1.0, hi=8.0) for z in factors)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return K.zoom_blur(x, self.params["factors"])


@register_op(
    "gaussian_blur",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="skimage.filters.gaussian per channel: edge replication (scipy 'nearest'), kernel radius "
    "int(4σ + 0.5) (an ImageNet-C 'extra' corruption). " + PRESET_NOTE,
    tags=("blur", "imagenet-c", "extra"),
)
class GaussianBlur(Op):
    """Gaussian blur (ImageNet-C gaussian_blur)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("sigma",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": _severity_rows([1, 2, 3, 4, 6]),
        "cifar": _severity_rows([0.4, 0.6, 0.7, 0.8, 1.0]),
        "tiny": _severity_rows([0.5, 0.75, 1.0, 1.25, 1.5]),
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": real(self.name, "sigma", params["sigma"], lo=0.0, hi=100.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return K.gaussian_blur(x, self.params["sigma"])

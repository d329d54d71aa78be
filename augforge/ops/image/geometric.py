"""ImageNet-C elastic_transform: a random affine jitter followed by a smooth displacement field.

Faithful to hendrycks/robustness (ImageNet-C, CIFAR-10-C, Tiny-ImageNet-C), whose
parameterisation differs from `imagecorruptions` (which has no affine step and other constants).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import real
from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.filters import gaussian_filter
from augforge.ops.image.kernels.warp import affine_from_points, sample_bilinear, warp_affine

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
# Image side each preset's pixel constants were written for (ImageNet-C's "244" scale factor is
# part of its constants and is kept; the sizes below only rescale them for other image sizes).
NOMINAL_SIDE = {"imagenet": 224, "cifar": 32, "tiny": 64}


def affine_points(h: int, w: int, *, dtype: torch.dtype = torch.float64,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The reference's three (x, y) source points: centre ± q, q = min(H, W)//3 (shape (3, 2))."""
    cx, cy, q = float(w // 2), float(h // 2), float(min(h, w) // 3)
    pts = [(cx + q, cy + q), (cx + q, cy - q), (cx - q, cy - q)]
    return torch.tensor(pts, dtype=dtype, device=device)


def smooth_field(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage gaussian(noise, σ, mode='reflect', truncate=3) over the last two dims of (B, 2, H, W)."""
    return gaussian_filter(noise, sigma, mode="reflect", truncate=3.0)


def elastic_draws(h: int, w: int, jitter: float, gens: list[torch.Generator], device: torch.device,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: the (3, 2) affine point jitter U(−jitter, jitter) and two U(−1, 1) H×W noise maps."""
    jit = torch.empty(len(gens), 3, 2, device=device, dtype=torch.float64)
    noise = torch.empty(len(gens), 2, h, w, device=device, dtype=dtype)

    def one(i: int) -> None:
        jit[i].uniform_(-jitter, jitter, generator=gens[i])
        noise[i].uniform_(-1.0, 1.0, generator=gens[i])

    for_each_sample(one, len(gens), device, work=noise.numel())
    return jit, noise


def elastic_transform(x: torch.Tensor, alpha: float, sigma: float, jitter: float,
                      gens: list[torch.Generator]) -> torch.Tensor:
    """Affine warp (cv2.warpAffine, bilinear, REFLECT_101) by the map that sends the three points
    to their jittered copies, then resampling at (row + dy, col + dx) (map_coordinates order 1,
    scipy 'reflect'), dx, dy = α · gaussian(U(−1, 1), σ, reflect, truncate 3)."""
    _, _, h, w = x.shape
    shifts, noise = elastic_draws(h, w, jitter, gens, x.device, x.dtype)
    return elastic_from_draws(x, alpha, sigma, shifts, noise)


def elastic_from_draws(x: torch.Tensor, alpha: float, sigma: float, shifts: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
    """Elastic transform given the draws: point `shifts` (B, 3, 2) in px (x, y) and the U(−1, 1)
    `noise` (B, 2, H, W) whose smoothed channels 0 and 1 become dx (columns) and dy (rows)."""
    b, _, h, w = x.shape
    src = affine_points(h, w, device=x.device).expand(b, 3, 2)
    dst = (src + shifts).to(torch.float32).to(torch.float64)  # the reference casts pts2 to float32
    warped = warp_affine(x, affine_from_points(src, dst), "mirror")
    field = smooth_field(noise, sigma).mul_(alpha)  # a fresh tensor: scaled and shifted in place
    dx, dy = field[:, 0], field[:, 1]
    rows = dy.add_(torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1))
    cols = dx.add_(torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w))
    return sample_bilinear(warped, rows, cols, "reflect").clamp_(0.0, 1.0)


@register_op(
    "elastic_transform",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes=(
        "ImageNet-C's definition (not imagecorruptions'): random affine from three points centre "
        "± q (q = min(H, W)//3, centre (W//2, H//2) as (x, y)) each jittered by U(−jitter, jitter), "
        "cv2.warpAffine bilinear with REFLECT_101; then displacement fields α·gaussian(U(−1, 1), σ, "
        "mode reflect, truncate 3) resampled bilinearly with scipy 'reflect' borders (index "
        "folding, exact for kernels wider than the image). Constants in px: imagenet 244·(…) "
        "(the reference's '244' kept), cifar 32·(…), tiny 64·(…); for other sizes α, σ and jitter "
        "are multiplied by min(H, W)/224, /32 or /64. At s1–s2 (imagenet) σ is huge, so the field "
        "is almost constant and the affine jitter dominates. Channels are warped alike, so a "
        "1-channel image gives the gray of its replicated-RGB result. Presets: imagenet (224 px), "
        "cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."
    ),
    tags=("digital", "imagenet-c"),
)
class ElasticTransform(Op):
    """Elastic transform: affine jitter plus a Gaussian-smoothed random displacement field."""

    PARAMS: ClassVar[tuple[str, ...]] = ("alpha", "sigma", "jitter")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [
            (244 * 2, 244 * 0.7, 244 * 0.1),
            (244 * 2, 244 * 0.08, 244 * 0.2),
            (244 * 0.05, 244 * 0.01, 244 * 0.02),
            (244 * 0.07, 244 * 0.01, 244 * 0.02),
            (244 * 0.12, 244 * 0.01, 244 * 0.02),
        ],
        "cifar": [
            (32 * 0, 32 * 0, 32 * 0.08),
            (32 * 0.05, 32 * 0.2, 32 * 0.07),
            (32 * 0.08, 32 * 0.06, 32 * 0.06),
            (32 * 0.1, 32 * 0.04, 32 * 0.05),
            (32 * 0.1, 32 * 0.03, 32 * 0.03),
        ],
        "tiny": [
            (64 * 0, 64 * 0, 64 * 0.08),
            (64 * 0.05, 64 * 0.3, 64 * 0.06),
            (64 * 0.1, 64 * 0.08, 64 * 0.06),
            (64 * 0.1, 64 * 0.03, 64 * 0.03),
            (64 * 0.16, 64 * 0.03, 64 * 0.02),
        ],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        n = self.name
        return {
            "alpha": real(n, "alpha", params["alpha"], lo=0.0),
            "sigma": real(n, "sigma", params["sigma"], lo=0.0),
            "jitter": real(n, "jitter", params["jitter"], lo=0.0),
        }

    def scaled_params(self, h: int, w: int) -> tuple[float, float, float]:
        """(α, σ, jitter) in pixels for an H×W image: the preset constants × min(H, W)/nominal."""
        s = min(h, w) / NOMINAL_SIDE[self.preset]
        return self.params["alpha"] * s, self.params["sigma"] * s, self.params["jitter"] * s

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        alpha, sigma, jitter = self.scaled_params(*x.shape[-2:])
        return elastic_transform(x, alpha, sigma, jitter, gens)

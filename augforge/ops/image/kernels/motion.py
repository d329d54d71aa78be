"""ImageMagick 6's motion-blur line kernel (MagickCore `MotionBlurImage`), batched.

ImageNet-C blurs with Wand's `motion_blur(radius R, sigma S, angle θ)`. ImageMagick builds a
*one-sided* line: width = 2⌈R⌉+1 taps with half-Gaussian weights exp(−i²/2S²) (i = 0..width−1,
normalised to sum 1) at integer offsets (⌈i·cosθ − ½⌉, ⌈i·sinθ − ½⌉) (x right, y down), and
out(x, y) = Σ_i w_i · in(x + dx_i, y + dy_i). Pixels outside the image repeat the edge (the
virtual-pixel behaviour `imagecorruptions` emulates). Kornia's `motion_blur` is a centred line
kernel, a different corruption, hence this module. Shared by `motion_blur` and `snow`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.filters import pad

CV2_MAX_PIXELS = 100 * 100  # float CPU planes up to this size take the cv2 path (faster below ~128²)


def motion_width(radius: float) -> int:
    """Number of taps ImageMagick uses for a positive radius: 2⌈R⌉ + 1."""
    if radius <= 0:
        raise ValueError(f"motion-blur radius must be positive, got {radius}")
    return 2 * math.ceil(radius) + 1


def motion_weights(radius: float, sigma: float, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """The normalised half-Gaussian tap weights, shape (2⌈R⌉+1,)."""
    if sigma <= 0:
        raise ValueError(f"motion-blur sigma must be positive, got {sigma}")
    i = torch.arange(motion_width(radius), dtype=torch.float64)
    w = torch.exp(-(i * i) / (2.0 * sigma * sigma))
    return (w / w.sum()).to(dtype=dtype, device=device)


def motion_offsets(width: int, angles_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer tap offsets (dx, dy), each (B, width), for per-sample angles in degrees.

    Computed the way ImageMagick does: point = width·(sinθ, cosθ), offset_i = ⌈i·point/|point| − ½⌉.
    """
    theta = torch.deg2rad(angles_deg.to(torch.float64)).reshape(-1, 1)
    px, py = width * torch.sin(theta), width * torch.cos(theta)
    hyp = torch.hypot(px, py)
    i = torch.arange(width, dtype=torch.float64, device=theta.device).reshape(1, -1)
    dx = torch.ceil(i * py / hyp - 0.5).to(torch.long)
    dy = torch.ceil(i * px / hyp - 0.5).to(torch.long)
    return dx, dy


def line_blur(x: torch.Tensor, weights: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """out[b](y, x) = Σ_i weights[i] · x[b](y + dy[b, i], x + dx[b, i]) with edge replication.

    `x` is (B, C, H, W); `dx`, `dy` are integer (B, taps) offsets (one line per sample). Offsets
    are clamped to ±size, which is what edge replication amounts to for shifts of any size. On
    CPU shifted views of a padded copy are accumulated (small float planes: cv2, one sample per
    pool thread); on other devices one gather per tap covers the whole batch (few launches).
    """
    b, _, h, w = x.shape
    taps = weights.numel()
    if dx.shape != (b, taps) or dy.shape != (b, taps):
        raise ValueError(f"offsets must be (B, taps) = ({b}, {taps}), "
                         f"got {tuple(dx.shape)} and {tuple(dy.shape)}")
    dx = dx.to("cpu", torch.long).clamp(-w, w)
    dy = dy.to("cpu", torch.long).clamp(-h, h)
    m = int(max(dx.abs().max().item(), dy.abs().max().item()))
    wts = weights.detach().to("cpu", torch.float64).tolist()  # Python floats: exact alphas
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and h * w <= CV2_MAX_PIXELS:
        return _accumulate_planes(x, wts, dx.tolist(), dy.tolist(), m)
    padded = pad(x, m, m, m, m, "nearest")
    if x.device.type == "cpu":
        return _accumulate_views(padded, wts, dx.tolist(), dy.tolist(), m, h, w)
    return _accumulate_gathers(padded, wts, dx.to(x.device), dy.to(x.device), m, h, w)


def _accumulate_views(padded: torch.Tensor, wts: list[float], dx: list[list[int]], dy: list[list[int]],
                      m: int, h: int, w: int) -> torch.Tensor:
    """Per sample and tap, add a shifted view of the padded image."""
    b, c = padded.shape[:2]
    out = torch.zeros(b, c, h, w, dtype=padded.dtype, device=padded.device)
    for i in range(b):
        acc = out[i]
        for wk, ox, oy in zip(wts, dx[i], dy[i], strict=True):
            acc.add_(padded[i, :, m + oy:m + oy + h, m + ox:m + ox + w], alpha=wk)
    return out


def _accumulate_planes(x: torch.Tensor, wts: list[float], dx: list[list[int]], dy: list[list[int]],
                       m: int) -> torch.Tensor:
    """`_accumulate_views` of `pad(x, m, m, m, m, 'nearest')` for float CPU tensors, one sample per
    pool thread (cv2 releases the GIL): the sample's C planes are edge-padded side by side into one
    Hp × (C·Wp) matrix, so that one cv2.scaleAdd (acc = w·view + acc: the same fused step, in the
    same order) shifts all of them per tap; the columns between planes are computed and dropped."""
    b, c, h, w = x.shape
    hp, wp = h + 2 * m, w + 2 * m
    src = x.detach().contiguous().numpy()
    out = torch.empty(b, c, h, w, dtype=x.dtype)
    dst = out.numpy()
    cols = (c - 1) * wp + w  # from plane 0's first output column to plane C−1's last

    def one(i: int) -> None:
        padded = np.empty((hp, c * wp), dtype=src.dtype)
        for k in range(c):
            edge = padded[:, k * wp:(k + 1) * wp]
            cv2.copyMakeBorder(src[i, k], m, m, m, m, cv2.BORDER_REPLICATE, dst=edge)
        acc = np.zeros((h, cols), dtype=src.dtype)
        for wk, ox, oy in zip(wts, dx[i], dy[i], strict=True):
            cv2.scaleAdd(padded[m + oy:m + oy + h, m + ox:m + ox + cols], wk, acc, dst=acc)
        for k in range(c):
            dst[i, k] = acc[:, k * wp:k * wp + w]

    for_each_sample(one, b, x.device, work=b * c * h * w * len(wts))
    return out


def _accumulate_gathers(padded: torch.Tensor, wts: list[float], dx: torch.Tensor, dy: torch.Tensor,
                        m: int, h: int, w: int) -> torch.Tensor:
    """Per tap, one gather of every sample's shifted pixels from the flattened padded images."""
    b, c, hp, wp = padded.shape
    dev = padded.device
    flat = padded.reshape(b, c, hp * wp)
    rows = torch.arange(h, device=dev).view(h, 1) + m
    cols = torch.arange(w, device=dev).view(1, w) + m
    base = (rows * wp + cols).reshape(1, 1, h * w)
    shift = dy * wp + dx  # (B, taps) linear offsets into the padded image
    out = torch.zeros(b, c, h * w, dtype=padded.dtype, device=dev)
    for i, wk in enumerate(wts):
        idx = (base + shift[:, i].view(b, 1, 1)).expand(b, c, h * w)
        out.add_(flat.gather(2, idx), alpha=wk)
    return out.reshape(b, c, h, w)


def motion_blur_kernel(x: torch.Tensor, radius: float, sigma: float,
                       angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick motion blur of each sample of (B, C, H, W) along its own angle (degrees),
    float64 tap weights whatever x's dtype (the one implementation; motion_blur and snow)."""
    weights = motion_weights(radius, sigma, dtype=torch.float64)
    dx, dy = motion_offsets(weights.numel(), angles_deg.detach().to("cpu"))
    return line_blur(x, weights, dx, dy)

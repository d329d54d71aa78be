"""Padding and linear filters with the border semantics of scipy, skimage and OpenCV.

The reference code relies on these libraries' borders, which differ from torch's defaults:
scipy `nearest` = replicate, scipy `reflect` = half-sample symmetric (d c b a | a b c d),
scipy `mirror` = OpenCV REFLECT_101 = torch `reflect` (d c b | a b c d), `wrap` = periodic.
Padding is done by index folding, so pads larger than the image (elastic's 512-px kernel on a
224-px image) fold repeatedly exactly as scipy does, where `torch.nn.functional.pad` refuses.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BORDER_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")


def border_index(n: int, before: int, after: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices for positions -before .. n-1+after under a scipy border mode (-1 = constant)."""
    i = torch.arange(-before, n + after, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i.remainder(n)
    if mode == "reflect":  # half-sample symmetric, period 2n
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if mode == "mirror":  # whole-sample symmetric, period 2n - 2
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    if mode == "constant":
        return torch.where((i < 0) | (i >= n), torch.full_like(i, -1), i)
    raise ValueError(f"unknown border mode {mode!r}; choose one of {BORDER_MODES}")


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of `x` with a scipy border mode (any pad size; constant pads 0)."""
    h, w = x.shape[-2:]
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom), mode="constant", value=0.0)
    rows = border_index(h, top, bottom, mode, x.device)
    cols = border_index(w, left, right, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """scipy.ndimage's 1-D Gaussian: radius int(truncate*sigma + 0.5), normalised to sum 1."""
    if sigma <= 0:
        return torch.ones(1, dtype=dtype, device=device)
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / float(sigma)) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def correlate1d(x: torch.Tensor, kernel: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Correlate the (B, C, H, W) tensor `x` with a 1-D kernel along dim -2 (rows) or -1 (cols)."""
    k = kernel.to(dtype=x.dtype, device=x.device)
    r_before = (k.numel() - 1) // 2
    r_after = k.numel() - 1 - r_before
    b, c, h, w = x.shape
    flat = x.reshape(b * c, 1, h, w)
    if dim in (-2, 2):
        padded = pad(flat, r_before, r_after, 0, 0, mode)
        out = F.conv2d(padded, k.view(1, 1, -1, 1))
    elif dim in (-1, 3):
        padded = pad(flat, 0, 0, r_before, r_after, mode)
        out = F.conv2d(padded, k.view(1, 1, 1, -1))
    else:
        raise ValueError("dim must be -2 (rows) or -1 (columns)")
    return out.reshape(b, c, h, w)


def gaussian_filter(x: torch.Tensor, sigma: float | tuple[float, float], *, mode: str = "nearest",
                    truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over H and W of (B, C, H, W), channels independent.

    Defaults match skimage.filters.gaussian as ImageNet-C calls it (mode nearest, truncate 4).
    """
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    out = x
    if sy > 0:
        out = correlate1d(out, gaussian_kernel1d(sy, truncate, dtype=x.dtype), -2, mode)
    if sx > 0:
        out = correlate1d(out, gaussian_kernel1d(sx, truncate, dtype=x.dtype), -1, mode)
    return out


def filter2d(x: torch.Tensor, kernel: torch.Tensor, *, mode: str = "mirror") -> torch.Tensor:
    """Correlate each channel of (B, C, H, W) with a 2-D kernel (cv2.filter2D semantics;
    its default border REFLECT_101 is mode 'mirror'). The anchor is the kernel centre."""
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    b, c, h, w = x.shape
    flat = pad(x.reshape(b * c, 1, h, w), top, kh - 1 - top, left, kw - 1 - left, mode)
    out = F.conv2d(flat, kernel.to(dtype=x.dtype, device=x.device).view(1, 1, kh, kw))
    return out.reshape(b, c, h, w)


def odd_kernel_size(n: float) -> int:
    """Smallest odd integer >= n (helper for kernel sizes)."""
    k = math.ceil(n)
    return k if k % 2 == 1 else k + 1

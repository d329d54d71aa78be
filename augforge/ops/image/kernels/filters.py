"""Padding and linear filters with the border semantics of scipy, skimage and OpenCV.

The reference code relies on these libraries' borders, which differ from torch's defaults:
scipy `nearest` = replicate, scipy `reflect` = half-sample symmetric (d c b a | a b c d),
scipy `mirror` = OpenCV REFLECT_101 = torch `reflect` (d c b | a b c d), `wrap` = periodic.

- `pad`: torch's own padding where it has the mode and the pad fits (fast), flipped slices for
  scipy `reflect`, and index folding otherwise, so pads larger than the image fold repeatedly
  exactly as scipy does (where `torch.nn.functional.pad` refuses).
- `correlate1d` / `gaussian_filter`: a 1-D correlation with a border mode written as a matrix,
  applied in row tiles: each tile of outputs is one small matmul with the band of inputs it reads
  (the border fold is inside the matrix). Exact for any kernel length (elastic's 1025 taps on
  224 px) and several times faster on the CPU than conv2d or a dense n×n product.
- `filter2d`: cv2.filter2D (2-D kernel, REFLECT_101 by default); large kernels go through the FFT
  of the padded image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

BORDER_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")
_TORCH_MODE = {"nearest": "replicate", "mirror": "reflect", "wrap": "circular"}
CPU_TILE = 32  # output rows per matmul tile on the CPU (the whole side on other devices)
FFT_MIN_TAPS = 50  # filter2d: FFT correlation beats direct conv2d from about a 7×7 kernel up


def fold_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer indices (any range) into [0, n) with a scipy border mode."""
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i.remainder(n)
    if mode == "reflect":  # half-sample symmetric, period 2n: d c b a | a b c d
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if mode == "mirror":  # whole-sample symmetric, period 2n − 2 (cv2 REFLECT_101): d c b | a b c d
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    raise ValueError(f"unknown border mode {mode!r}; choose nearest, wrap, reflect or mirror")


def _symmetric_pad(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """scipy 'reflect' padding along `dim` for pads ≤ its size: flipped edge slices."""
    n = x.shape[dim]
    parts = [x.narrow(dim, 0, before).flip(dim), x, x.narrow(dim, n - after, after).flip(dim)]
    return torch.cat(parts, dim)


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of `x` (any leading dims) with a scipy border mode, any pad size;
    'constant' pads zeros. Always returns a new tensor."""
    if mode not in BORDER_MODES:
        raise ValueError(f"unknown border mode {mode!r}; choose one of {BORDER_MODES}")
    h, w = x.shape[-2:]
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom), mode="constant", value=0.0)
    vertical, horizontal = max(top, bottom), max(left, right)
    fits = {"nearest": True, "mirror": vertical < h and horizontal < w,
            "wrap": vertical <= h and horizontal <= w}.get(mode, False)
    if fits:
        flat = x.reshape(1, -1, h, w)
        out = F.pad(flat, (left, right, top, bottom), mode=_TORCH_MODE[mode])
        return out.reshape(*x.shape[:-2], h + top + bottom, w + left + right)
    if mode == "reflect" and vertical <= h and horizontal <= w:
        return _symmetric_pad(_symmetric_pad(x, top, bottom, -2), left, right, -1)
    rows = fold_index(torch.arange(-top, h + bottom, device=x.device), h, mode)
    cols = fold_index(torch.arange(-left, w + right, device=x.device), w, mode)
    return x.index_select(-2, rows).index_select(-1, cols)


# --------------------------------------------------------------------------- 1-D correlation


def gaussian_weights(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
    """scipy.ndimage's 1-D Gaussian weights, computed the way scipy's `_gaussian_kernel1d` does
    (numpy, float64): radius int(truncate·σ + 0.5), exp(−½/σ² · t²) for integer t, divided by
    the sum. σ ≤ 0 gives (1,). Cached: ops ask for the same few σ on every call."""
    return _gaussian_weights(float(sigma), float(truncate))


@functools.lru_cache(maxsize=256)
def _gaussian_weights(sigma: float, truncate: float) -> tuple[float, ...]:
    if sigma <= 0:
        return (1.0,)
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * t**2)
    phi = phi / phi.sum()
    return tuple(float(v) for v in phi)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, *, dtype: torch.dtype = torch.float64,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """`gaussian_weights` as a tensor."""
    return torch.tensor(gaussian_weights(sigma, truncate), dtype=dtype, device=device)


Tiles = tuple[tuple[int, int, int, int, torch.Tensor], ...]


def matrix_tiles(matrix: torch.Tensor, tile: int, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> Tiles:
    """Row tiles (t0, t1, c0, c1, M[t0:t1, c0:c1]) of an (out × in) matrix, c0..c1 spanning the
    tile's non-zero columns: `apply_tiles` then equals multiplying by the whole matrix (the
    skipped entries are exact zeros), at a fraction of the work for banded matrices."""
    n_out = matrix.shape[0]
    tiles = []
    for t0 in range(0, n_out, tile):
        t1 = min(n_out, t0 + tile)
        cols = matrix[t0:t1].ne(0).any(dim=0).nonzero().flatten()
        c0, c1 = (int(cols[0]), int(cols[-1]) + 1) if cols.numel() else (0, 1)
        tiles.append((t0, t1, c0, c1, matrix[t0:t1, c0:c1].to(dtype=dtype, device=device).contiguous()))
    return tuple(tiles)


def apply_tiles(x: torch.Tensor, tiles: Tiles, dim: int) -> torch.Tensor:
    """y = M · x along dim −2 (rows) or −1 (columns) of (..., H, W) for a matrix M given as
    `matrix_tiles`: one small matmul per tile with the band of inputs it reads."""
    rows = dim in (-2, x.ndim - 2)
    n_out = tiles[-1][1]
    shape = (*x.shape[:-2], n_out, x.shape[-1]) if rows else (*x.shape[:-1], n_out)
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    for t0, t1, c0, c1, a in tiles:
        if rows:
            torch.matmul(a, x[..., c0:c1, :], out=out[..., t0:t1, :])
        else:
            torch.matmul(x[..., c0:c1], a.T, out=out[..., t0:t1])
    return out


def tile_size(x: torch.Tensor, n: int) -> int:
    """Output rows per tile: CPU_TILE on the CPU (banded work, cache-sized), all n elsewhere."""
    return CPU_TILE if x.device.type == "cpu" else n


@functools.lru_cache(maxsize=128)
def _correlation_tiles(n: int, weights: tuple[float, ...], mode: str, tile: int, dtype: torch.dtype,
                       device: str) -> Tiles:
    """`matrix_tiles` of the n×n correlation with `weights` under a border mode, built tile by
    tile (the fold is in the matrix; a tile reads every input its outputs fold onto)."""
    k = torch.tensor(weights, dtype=torch.float64)
    r = (k.numel() - 1) // 2
    offsets = torch.arange(k.numel()) - r
    tiles = []
    for t0 in range(0, n, tile):
        t1 = min(n, t0 + tile)
        src = fold_index(torch.arange(t0, t1).view(-1, 1) + offsets, n, mode)
        c0, c1 = int(src.min()), int(src.max()) + 1
        a = torch.zeros(t1 - t0, c1 - c0, dtype=torch.float64)
        a.scatter_add_(1, src - c0, k.expand(t1 - t0, -1).contiguous())
        tiles.append((t0, t1, c0, c1, a.to(dtype=dtype, device=device)))
    return tuple(tiles)


def correlate1d(x: torch.Tensor, weights: Sequence[float] | torch.Tensor, dim: int,
                mode: str) -> torch.Tensor:
    """scipy.ndimage.correlate1d of `x` (..., H, W) along dim −2 (rows) or −1 (columns) with an
    odd-length kernel (centred, scipy's origin 0) and a scipy border mode (not 'constant')."""
    if dim not in (-2, -1, x.ndim - 2, x.ndim - 1):
        raise ValueError("dim must be -2 (rows) or -1 (columns)")
    if len(weights) % 2 == 0:
        raise ValueError(f"correlate1d needs an odd-length kernel, got {len(weights)} taps")
    if mode not in _TORCH_MODE and mode != "reflect":
        raise ValueError(f"unknown border mode {mode!r}; choose nearest, wrap, reflect or mirror")
    w = tuple(float(v) for v in (weights.tolist() if isinstance(weights, torch.Tensor) else weights))
    n = x.shape[dim]
    tiles = _correlation_tiles(n, w, mode, tile_size(x, n), x.dtype, str(x.device))
    return apply_tiles(x, tiles, dim)


def gaussian_filter(x: torch.Tensor, sigma: float | tuple[float, float], *, mode: str = "nearest",
                    truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over the last two dims of (..., H, W), rows first.

    Defaults match skimage.filters.gaussian as ImageNet-C calls it (mode nearest, truncate 4).
    σ ≤ 0 on an axis leaves it alone; returns a new tensor."""
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    out = x
    if sy > 0:
        out = correlate1d(out, gaussian_weights(float(sy), truncate), -2, mode)
    if sx > 0:
        out = correlate1d(out, gaussian_weights(float(sx), truncate), -1, mode)
    return out.clone() if out is x else out


# --------------------------------------------------------------------------- 2-D correlation


def _fast_size(n: int) -> int:
    """Smallest m ≥ n whose only prime factors are 2, 3 and 5 (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def filter2d(x: torch.Tensor, kernel: torch.Tensor, *, mode: str = "mirror") -> torch.Tensor:
    """Correlate each channel of (B, C, H, W) with a 2-D kernel (cv2.filter2D semantics; its
    default border REFLECT_101 is mode 'mirror'); the anchor is (kh // 2, kw // 2). Kernels of
    FFT_MIN_TAPS taps or more go through the FFT of the padded image, whose valid part equals the
    direct correlation up to float rounding."""
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    b, c, h, w = x.shape
    planes = x.reshape(1, b * c, h, w)
    if kernel.numel() < FFT_MIN_TAPS:
        padded = pad(planes, top, kh - 1 - top, left, kw - 1 - left, mode)
        k = kernel.to(dtype=x.dtype, device=x.device).view(1, 1, kh, kw).expand(b * c, 1, kh, kw)
        return F.conv2d(padded, k, groups=b * c).reshape(b, c, h, w)
    # Pad straight to the FFT size: outputs 0..h−1 read padded rows 0..h+kh−2 only, so the extra
    # rows (border values rather than zeros) never reach them, even through the circular wrap.
    size = (_fast_size(h + kh - 1), _fast_size(w + kw - 1))
    padded = pad(planes, top, size[0] - h - top, left, size[1] - w - left, mode)
    spectrum = torch.fft.rfft2(padded)
    key = (kernel.detach().cpu().to(torch.float64).numpy().tobytes(), kh, kw)
    spectrum.mul_(_kernel_spectrum(key, size, x.dtype, str(x.device)))
    return torch.fft.irfft2(spectrum, s=size)[..., :h, :w].reshape(b, c, h, w)


@functools.lru_cache(maxsize=32)
def _kernel_spectrum(key: tuple[bytes, int, int], size: tuple[int, int], dtype: torch.dtype,
                     device: str) -> torch.Tensor:
    """conj(rfft2(k)) at `size` for the kernel whose float64 bytes and shape are `key` (cached:
    the op calls this per block): multiplying by it turns the FFT product into a correlation."""
    data, kh, kw = key
    k = torch.frombuffer(bytearray(data), dtype=torch.float64).view(kh, kw)
    return torch.fft.rfft2(k.to(dtype=dtype, device=device), s=size).conj()


def odd_kernel_size(n: float) -> int:
    """Smallest odd integer >= n (helper for kernel sizes)."""
    k = math.ceil(n)
    return k if k % 2 == 1 else k + 1

"""Resampling kernels with the border semantics of scipy.ndimage and OpenCV.

- `sample_bilinear`: bilinear sampling at arbitrary (row, col) coordinates where each of the four
  taps is fetched through a border fold — scipy `map_coordinates(order=1, mode=...)` and
  `cv2.remap/warpAffine(INTER_LINEAR, borderMode=...)` both work this way. `grid_sample` cannot
  express scipy `reflect` (half-sample symmetric) or fold pads larger than the image.
- `warp_affine`: cv2.warpAffine (src→dst matrix, inverted internally, REFLECT_101 = 'mirror').
- `affine_from_points`: cv2.getAffineTransform for a batch of 3-point pairs.
- `smooth_matrix` / `gaussian_smooth2d`: a 1-D correlation with a border mode written as an n×n
  matrix, so any Gaussian (even elastic s1's 1025 taps on 224 px) costs two small matmuls.
- `zoom_corner_aligned`, `clipped_zoom`: scipy `zoom(order=1)` and ImageNet-C's clipped zoom.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from augforge.ops.image.kernels.filters import gaussian_kernel1d, pad


def fold_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer indices (any range) into [0, n) with a scipy border mode."""
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode == "wrap":
        return i.remainder(n)
    if mode == "reflect":  # half-sample symmetric: d c b a | a b c d
        j = i.remainder(2 * n)
        return torch.where(j >= n, 2 * n - 1 - j, j)
    if mode == "mirror":  # whole-sample symmetric = cv2 REFLECT_101: d c b | a b c d
        if n == 1:
            return torch.zeros_like(i)
        j = i.remainder(2 * n - 2)
        return torch.where(j >= n, 2 * n - 2 - j, j)
    raise ValueError(f"unknown border mode {mode!r}; choose nearest, wrap, reflect or mirror")


def fold_coordinate(c: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map continuous coordinates onto [0, n − 1] so that plain bilinear interpolation there equals
    bilinear interpolation of the border-extended signal (wrap excepted: result in [0, n)).

    The interpolant of a symmetric extension is itself symmetric, so coordinates can be folded
    before interpolating: 'mirror' reflects about 0 and n − 1; 'reflect' (half-sample) about −½
    and n − ½, after which the half-pixel margins, where both taps read the edge sample, clamp.
    """
    if n == 1 or mode == "nearest":
        return c.clamp(0, n - 1)
    if mode == "wrap":
        return c.remainder(n)
    if mode == "mirror":
        period = 2 * n - 2
        t = c.remainder(period)
        return torch.where(t <= n - 1, t, period - t)
    if mode == "reflect":
        period = 2 * n
        t = (c + 0.5).remainder(period)
        return (torch.where(t < n, t, period - t) - 0.5).clamp(0, n - 1)
    raise ValueError(f"unknown border mode {mode!r}; choose nearest, wrap, reflect or mirror")


def sample_bilinear(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, mode: str) -> torch.Tensor:
    """Bilinearly sample (B, C, H, W) at per-sample coordinates `rows`, `cols` of shape (B, Ho, Wo).

    Equivalent to folding every tap index with `mode` (scipy map_coordinates order 1 / cv2
    INTER_LINEAR with that border): coordinates are folded with `fold_coordinate`, then sampled
    with grid_sample (align_corners=True puts pixel centres on integer coordinates). 'wrap'
    appends one wrapped row and column so the last interval interpolates back to the first sample.
    """
    h, w = x.shape[-2:]
    r = fold_coordinate(rows.to(x.dtype), h, mode)
    q = fold_coordinate(cols.to(x.dtype), w, mode)
    src = pad(x, 0, 1, 0, 1, "wrap") if mode == "wrap" else x
    hs, ws = src.shape[-2:]
    gx = q * (2.0 / max(ws - 1, 1)) - 1.0
    gy = r * (2.0 / max(hs - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)


def affine_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) matrices M with M·[x, y, 1] = dst for the three (x, y) points of src, like
    cv2.getAffineTransform. `src`, `dst`: (B, 3, 2)."""
    ones = torch.ones(*src.shape[:-1], 1, dtype=src.dtype, device=src.device)
    a = torch.cat([src, ones], dim=-1)  # (B, 3, 3): rows [x, y, 1]
    return torch.linalg.solve(a, dst).transpose(1, 2)


def warp_affine(x: torch.Tensor, matrix: torch.Tensor, mode: str = "mirror") -> torch.Tensor:
    """cv2.warpAffine(x, M, (W, H), INTER_LINEAR, borderMode) per sample: dst(p) = src(M⁻¹·p).

    `matrix` is (B, 2, 3) mapping source (x, y) to destination (x, y); default border REFLECT_101.
    """
    b, _, h, w = x.shape
    full = torch.zeros(b, 3, 3, dtype=torch.float64, device=x.device)
    full[:, :2] = matrix.to(device=x.device, dtype=torch.float64)
    full[:, 2, 2] = 1.0
    inv = torch.linalg.inv(full)
    ys = torch.arange(h, dtype=torch.float64, device=x.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64, device=x.device).view(1, 1, w)
    sx = inv[:, 0, 0].view(b, 1, 1) * xs + inv[:, 0, 1].view(b, 1, 1) * ys + inv[:, 0, 2].view(b, 1, 1)
    sy = inv[:, 1, 0].view(b, 1, 1) * xs + inv[:, 1, 1].view(b, 1, 1) * ys + inv[:, 1, 2].view(b, 1, 1)
    return sample_bilinear(x, sy, sx, mode)


@functools.lru_cache(maxsize=64)
def _smooth_matrix_cpu(n: int, sigma: float, truncate: float, mode: str) -> torch.Tensor:
    return smooth_matrix(n, gaussian_kernel1d(sigma, truncate), mode, dtype=torch.float64)


def smooth_matrix(n: int, kernel: torch.Tensor, mode: str, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The n×n matrix A with (A·v)[i] = Σ_k kernel[k] · v[fold(i + k − r)], r = len(kernel)//2:
    a centred 1-D correlation with a scipy border mode, for kernels of any length."""
    k = kernel.to(torch.float64).cpu()
    r = (k.numel() - 1) // 2
    i = torch.arange(n).view(n, 1)
    off = torch.arange(k.numel()).view(1, -1) - r
    src = fold_index(i + off, n, mode)
    a = torch.zeros(n, n, dtype=torch.float64)
    a.scatter_add_(1, src, k.view(1, -1).expand(n, -1).contiguous())
    return a.to(dtype=dtype, device=device)


def gaussian_smooth2d(x: torch.Tensor, sigma: float, *, mode: str = "nearest",
                      truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter over the last two dims of (..., H, W) as A_h · X · A_wᵀ.

    Exact for kernels longer than the image (repeated folding), and on CPU several times faster
    than direct convolution for the kernel sizes ImageNet-C uses. σ ≤ 0 returns x unchanged.
    Defaults are skimage.filters.gaussian's (mode nearest, truncate 4).
    """
    if sigma <= 0:
        return x
    h, w = x.shape[-2:]
    a_h = _smooth_matrix_cpu(h, float(sigma), float(truncate), mode).to(dtype=x.dtype, device=x.device)
    a_w = a_h if w == h else _smooth_matrix_cpu(w, float(sigma), float(truncate), mode).to(
        dtype=x.dtype, device=x.device)
    return a_h @ x @ a_w.T


def zoom_corner_aligned(x: torch.Tensor, factor: float) -> torch.Tensor:
    """scipy.ndimage.zoom(order=1) over H and W: output side round(n·z), corner-aligned grid."""
    h, w = x.shape[-2:]
    size = (round(h * factor), round(w * factor))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """ImageNet-C's clipped_zoom for (B, C, H, W): central ⌈H/z⌉×⌈W/z⌉ crop (top = (H−ch)//2),
    zoomed by z (corner-aligned bilinear, side round(ch·z)), then trimmed centrally to H×W."""
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    z = zoom_corner_aligned(x[..., top:top + ch, left:left + cw], factor)
    zh, zw = z.shape[-2:]
    t, s = (zh - h) // 2, (zw - w) // 2
    return z[..., t:t + h, s:s + w]

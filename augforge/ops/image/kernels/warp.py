"""Resampling kernels with the border semantics of scipy.ndimage and OpenCV.

- `sample_bilinear`: bilinear sampling at arbitrary (row, col) coordinates where each of the four
  taps is fetched through a border fold — scipy `map_coordinates(order=1, mode=...)` and
  `cv2.remap/warpAffine(INTER_LINEAR, borderMode=...)` both work this way. `grid_sample`'s
  'border' padding is scipy 'nearest'; its 'reflection' padding folds the coordinate any number
  of times about the outer pixel centres (align_corners=True: scipy 'mirror', cv2 REFLECT_101)
  or about the image edges (align_corners=False: scipy 'reflect') and then clamps it, which is
  exactly the per-tap fold, so those modes need no folding of our own.
- `warp_affine`: cv2.warpAffine (src→dst matrix, inverted internally, REFLECT_101 = 'mirror').
- `affine_from_points`: cv2.getAffineTransform for a batch of 3-point pairs.
- `zoom_corner_aligned`, `clipped_zoom`: scipy `zoom(order=1)` and ImageNet-C's clipped zoom.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from augforge.ops.image.kernels.filters import pad


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
    INTER_LINEAR with that border): 'mirror' and 'reflect' go straight to grid_sample's
    'reflection' padding (which folds as they do; see the module docstring); 'nearest' and 'wrap'
    coordinates are folded with `fold_coordinate`, then sampled with grid_sample
    (align_corners=True puts pixel centres on integer coordinates). 'wrap' appends one wrapped row
    and column so the last interval interpolates back to the first sample.
    """
    h, w = x.shape[-2:]
    if mode in ("mirror", "reflect") and h > 1 and w > 1:
        grid = torch.empty((*cols.shape, 2), dtype=x.dtype, device=x.device)  # (x, y) interleaved
        if mode == "mirror":  # align_corners=True: pixel c at 2c/(n − 1) − 1
            torch.mul(cols, 2.0 / (w - 1), out=grid[..., 0])
            torch.mul(rows, 2.0 / (h - 1), out=grid[..., 1])
            grid.sub_(1.0)
        else:  # align_corners=False: pixel c at (2c + 1)/n − 1
            torch.mul(cols, 2.0 / w, out=grid[..., 0]).add_(1.0 / w - 1.0)
            torch.mul(rows, 2.0 / h, out=grid[..., 1]).add_(1.0 / h - 1.0)
        return _reflect_sample(x, grid, mode)
    r = fold_coordinate(rows.to(x.dtype), h, mode)
    q = fold_coordinate(cols.to(x.dtype), w, mode)
    src = pad(x, 0, 1, 0, 1, "wrap") if mode == "wrap" else x
    hs, ws = src.shape[-2:]
    grid = torch.empty((*q.shape, 2), dtype=q.dtype, device=q.device)  # (x, y) interleaved
    torch.mul(q, 2.0 / max(ws - 1, 1), out=grid[..., 0])
    torch.mul(r, 2.0 / max(hs - 1, 1), out=grid[..., 1])
    grid.sub_(1.0)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _reflect_sample(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
    """grid_sample with 'reflection' padding: 'mirror' (align_corners=True) or 'reflect'."""
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=mode == "mirror")


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
    if mode == "mirror" and h > 1 and w > 1:
        # the same map in grid_sample's normalised coordinates (align_corners=True): S·M⁻¹·S⁻¹
        scale = torch.tensor([[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0.0, 0.0, 1.0]],
                             dtype=torch.float64, device=x.device)
        theta = (scale @ inv @ torch.linalg.inv(scale))[:, :2].to(x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device).view(1, 1, w)
        ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device).view(1, h, 1)
        grid = torch.empty(b, h, w, 2, dtype=x.dtype, device=x.device)
        for k in range(2):  # (a·X + c) + b·Y per output pixel, like F.affine_grid at a third the cost
            a, bk, c = (theta[:, k, i].view(b, 1, 1) for i in range(3))
            torch.add(a * xs + c, bk * ys, out=grid[..., k])
        return _reflect_sample(x, grid, mode)
    ys = torch.arange(h, dtype=torch.float64, device=x.device).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64, device=x.device).view(1, 1, w)
    # (a·x + b·y) + c per pixel, with a·x and b·y formed once per column and per row
    sx = (inv[:, 0, 0].view(b, 1, 1) * xs + inv[:, 0, 1].view(b, 1, 1) * ys).add_(inv[:, 0, 2].view(b, 1, 1))
    sy = (inv[:, 1, 0].view(b, 1, 1) * xs + inv[:, 1, 1].view(b, 1, 1) * ys).add_(inv[:, 1, 2].view(b, 1, 1))
    return sample_bilinear(x, sy, sx, mode)


def zoom_corner_aligned(x: torch.Tensor, factor: float) -> torch.Tensor:
    """scipy.ndimage.zoom(order=1) over H and W of (..., H, W): output side round(n·z),
    corner-aligned grid. All planes go in as channels of one image, except that three planes go
    in as three images: torch's CPU kernel is several times slower on 3-channel images, and
    fastest on many channels (same values up to float rounding)."""
    h, w = x.shape[-2:]
    size = (round(h * factor), round(w * factor))
    planes = x.reshape(1, -1, h, w)
    if planes.shape[1] == 3:
        planes = planes.view(3, 1, h, w)
    return F.interpolate(planes, size=size, mode="bilinear", align_corners=True).reshape(*x.shape[:-2], *size)


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

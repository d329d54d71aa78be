"""PIL's BOX resampling for any sizes (non-integer factors, up or down) as separable matrix products.

`torch.nn.functional.interpolate(mode="area")` equals PIL BOX only for integer factors. PIL builds,
per output index i, a box of width max(1, in/out) centred at (i + 0.5)·in/out and averages the input
pixels it covers (libImaging/Resample.c, `precompute_coeffs` with `box_filter`). We build the same
coefficient matrix (out × in), so a resize is two (banded, tiled) matmuls and runs on any device.
When upsampling, every row holds a single 1 (the box is one input pixel wide: source
floor((i + 0.5)·in/out)), so that pass is an exact copy (index_select of rows, or a 0/1 matmul).

For 8-bit images PIL also rounds: coefficients become 22-bit fixed point, the horizontal pass runs
first and is rounded to uint8 before the vertical pass. `resize_box_levels` reproduces that
bit-exactly on integer levels held in float64 (every product and sum is an integer < 2**53).
"""

from __future__ import annotations

import functools

import torch

from augforge.ops.image.kernels.filters import Tiles, apply_tiles, matrix_tiles, tile_size

_SUPPORT = 0.5  # PIL's box filter support
PRECISION_BITS = 32 - 8 - 2  # PIL's fixed-point precision for 8-bit resampling


@functools.lru_cache(maxsize=256)
def _box_coefficients(in_size: int, out_size: int) -> torch.Tensor:
    """float64 (out, in) matrix of PIL's normalised BOX coefficients (CPU, cached)."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in={in_size}, out={out_size}")
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = _SUPPORT * filterscale
    ss = 1.0 / filterscale
    center = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    # C casts (int) truncate; both arguments are >= 0 here, so floor is the same.
    xmin = torch.floor(center - support + 0.5).clamp(min=0)
    xmax = torch.floor(center + support + 0.5).clamp(max=in_size)
    j = torch.arange(in_size, dtype=torch.float64)
    arg = (j[None, :] - center[:, None] + 0.5) * ss
    inside = (j[None, :] >= xmin[:, None]) & (j[None, :] < xmax[:, None])
    weights = torch.where(inside & (arg > -0.5) & (arg <= 0.5), 1.0, 0.0).to(torch.float64)
    total = weights.sum(dim=1, keepdim=True)
    return weights / torch.where(total == 0, torch.ones_like(total), total)


def box_matrix(in_size: int, out_size: int, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(out, in) matrix M so that `M @ v` is PIL's BOX resize of a 1-D float signal v."""
    return _box_coefficients(in_size, out_size).to(dtype=dtype, device=device)


def box_matrix_fixed(in_size: int, out_size: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL's 8-bit fixed-point coefficients (integers, as float64): round(w · 2**22)."""
    w = _box_coefficients(in_size, out_size)
    return torch.floor(w * (1 << PRECISION_BITS) + 0.5).to(device=device)


@functools.lru_cache(maxsize=256)
def _copy_index(in_size: int, out_size: int) -> torch.Tensor | None:
    """Source index per output when every coefficient row is one-hot with weight 1, else None."""
    w = _box_coefficients(in_size, out_size)
    one_hot = bool(((w > 0).sum(dim=1) == 1).all()) and bool((w.max(dim=1).values == 1.0).all())
    return w.argmax(dim=1) if one_hot else None


def copy_index(in_size: int, out_size: int) -> torch.Tensor | None:
    """For a BOX resize whose every output is one input pixel (upsampling, or the same size): the
    source index of each output (CPU int64); None when outputs average several pixels."""
    return _copy_index(in_size, out_size)


@functools.lru_cache(maxsize=256)
def _tiles(in_size: int, out_size: int, fixed: bool, tile: int, dtype: torch.dtype, device: str) -> Tiles:
    """Banded tiles of the float (or 8-bit fixed-point) coefficient matrix."""
    matrix = box_matrix_fixed(in_size, out_size) if fixed else _box_coefficients(in_size, out_size)
    return matrix_tiles(matrix, tile, dtype=dtype, device=device)


def _linear_pass(y: torch.Tensor, in_size: int, out_size: int, dim: int, *,
                 fixed: bool = False) -> torch.Tensor:
    """Apply the (out, in) BOX coefficients along dim -1 or -2 as banded matmuls. A one-hot
    (upsampling) pass copies rows with index_select; along columns it stays a 0/1 matmul on the
    CPU, which is exact and much faster there than a gather."""
    index = _copy_index(in_size, out_size)
    if index is not None and (dim in (-2, y.ndim - 2) or y.device.type != "cpu"):
        return y.index_select(dim, index.to(y.device))
    tiles = _tiles(in_size, out_size, fixed and index is None, tile_size(y, out_size), y.dtype, str(y.device))
    return apply_tiles(y, tiles, dim)


def resize_box(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """BOX-resize the last two dims of a float tensor to `size` = (H', W'), no quantisation
    (PIL mode 'F' semantics: double coefficients, no intermediate rounding)."""
    h, w = x.shape[-2:]
    out_h, out_w = size
    y = x
    if out_w != w:
        y = _linear_pass(y, w, out_w, -1)
    if out_h != h:
        y = _linear_pass(y, h, out_h, -2)
    return y if y is not x else x.clone()


def _fixed_round(acc: torch.Tensor) -> torch.Tensor:
    """libImaging's 8-bit rounding of a fixed-point sum: (acc + 2**21) >> 22, clipped to 0..255."""
    half, scale = float(1 << (PRECISION_BITS - 1)), 1.0 / (1 << PRECISION_BITS)
    return acc.add_(half).mul_(scale).floor_().clamp_(0.0, 255.0)


def resize_box_levels(levels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """PIL `Image.resize(size[::-1], BOX)` of 8-bit images, bit-exact.

    `levels`: float64 tensor of integers 0..255 (..., H, W). Horizontal pass first, each pass
    rounded to integers as libImaging does; a pass whose size does not change is skipped (PIL too).
    """
    if levels.dtype != torch.float64:
        raise TypeError(f"resize_box_levels needs float64 integer levels, got {levels.dtype}")
    h, w = levels.shape[-2:]
    out_h, out_w = size
    y = levels
    for dim, n_in, n_out in ((-1, w, out_w), (-2, h, out_h)):
        if n_out == n_in:
            continue
        y = _linear_pass(y, n_in, n_out, dim, fixed=True)
        if _copy_index(n_in, n_out) is None:  # weight 2**22 on one pixel: the result is that pixel
            y = _fixed_round(y)
    return y if y is not levels else levels.clone()


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> float64 integer levels round(x·255) (inverts k/255 exactly)."""
    return x.to(torch.float64, copy=True).mul_(255.0).round_().clamp_(0.0, 255.0)

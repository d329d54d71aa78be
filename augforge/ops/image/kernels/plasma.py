"""Diamond-square plasma fractal of ImageNet-C's fog, batched with one generator per sample.

Restates the reference algorithm: an N×N map (N a power of two) starts at 0; with step = N and
wibble = 100, while step ≥ 2 a "squares" pass sets each square centre to the mean of its four
corners and a "diamonds" pass sets each edge midpoint to the mean of its two corner and two
centre neighbours (all periodic); every new point also gets wibble · U(−wibble, wibble) — the
noise amplitude is wibble², a quirk of the reference kept on purpose. Then step //= 2,
wibble /= decay. Finally each map is min–max normalised to [0, 1].
"""

from __future__ import annotations

import functools

import torch

from augforge.ops.image._threads import draw


def next_power_of_two(n: int) -> int:
    """Smallest power of two ≥ n (n ≥ 1)."""
    return 1 << (max(int(n), 1) - 1).bit_length()


def noise_count(mapsize: int) -> int:
    """Random numbers one fractal consumes: 3·n² per level, n = mapsize/step."""
    total, n = 0, 1
    while n < mapsize:
        total += 3 * n * n
        n *= 2
    return total


def plasma_fractal(mapsize: int, decay: float, gens: list[torch.Generator], *,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   normalise: bool = True) -> torch.Tensor:
    """One (mapsize, mapsize) fractal per generator, stacked to (B, mapsize, mapsize) in [0, 1].
    With normalise=False: the raw (B, N + 1, N + 1) map of `plasma_padded` (callers that fold
    the normalisation into later arithmetic use `plasma_range`).

    Sample b's uniforms come only from gens[b] (one draw of all its numbers, then split by level).
    """
    uniforms = plasma_uniforms(mapsize, gens, device=device, dtype=dtype)
    if not normalise:
        return plasma_padded(mapsize, decay, uniforms)
    return plasma_from_uniforms(mapsize, decay, uniforms)


def plasma_uniforms(mapsize: int, gens: list[torch.Generator], *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All U[0, 1) numbers the fractals consume, (B, noise_count(mapsize)), one draw per generator."""
    check_mapsize(mapsize)
    return draw((noise_count(mapsize),), gens, "uniform", device=torch.device(device), dtype=dtype)


def check_mapsize(mapsize: int) -> None:
    """Raise ValueError unless mapsize is a power of two >= 2."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma fractal mapsize must be a power of two >= 2, got {mapsize}")


@functools.lru_cache(maxsize=16)
def _noise_coefficients(mapsize: int, decay: float, dtype: torch.dtype,
                        device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-number (scale, offset) so that the increment of each uniform u is u·scale + offset =
    wibble · U(−wibble, wibble): scale 2·wibble², offset −wibble², wibble of that number's level."""
    scale = torch.empty(noise_count(mapsize), dtype=torch.float64)
    offset = torch.empty_like(scale)
    wibble, used, n = 100.0, 0, 1
    while n < mapsize:
        scale[used:used + 3 * n * n] = 2 * wibble * wibble
        offset[used:used + 3 * n * n] = -wibble * wibble
        used, n, wibble = used + 3 * n * n, 2 * n, wibble / decay
    return scale.to(device=device, dtype=dtype)[None], offset.to(device=device, dtype=dtype)[None]


PREFIX_SIDE = 16  # levels up to this side are one matrix product (they are all dispatch overhead)


def plasma_padded(mapsize: int, decay: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The fractal before normalisation, with its first row and column repeated after the last:
    (B, N + 1, N + 1) from (B, noise_count(N)) U[0, 1) numbers. The repeats are what the periodic
    neighbours of the next level read, so every step is a plain slice sum; they also leave the
    map's minimum and maximum unchanged.

    Per level the numbers are consumed in the reference's order: square centres, then edge
    midpoints on corner rows, then edge midpoints on corner columns (each block row-major); each
    new point is the mean of its four neighbours plus u·2wibble² − wibble². The map is linear in
    these increments, so the levels up to PREFIX_SIDE are one product with a cached matrix."""
    check_mapsize(mapsize)
    b = uniforms.shape[0]
    if uniforms.shape != (b, noise_count(mapsize)):
        raise ValueError(f"need (B, {noise_count(mapsize)}) uniforms, got {tuple(uniforms.shape)}")
    scale, offset = _noise_coefficients(mapsize, float(decay), uniforms.dtype, str(uniforms.device))
    noise = torch.addcmul(offset, uniforms, scale)  # all increments in one pass
    n = min(mapsize, PREFIX_SIDE)
    used = noise_count(n)
    grid = (noise[:, :used] @ _prefix_matrix(n, noise.dtype, str(noise.device))).view(b, n + 1, n + 1)
    while n < mapsize:
        inc = noise[:, used:used + 3 * n * n].view(b, 3, n, n)
        grid, n, used = _refine(grid, inc), 2 * n, used + 3 * n * n
    return grid


@functools.lru_cache(maxsize=16)
def _prefix_matrix(side: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """(noise_count(side), (side + 1)²) matrix taking a map's first increments to its padded
    side×side grid: the levels run once on the identity (one basis increment per row), in float64."""
    k = noise_count(side)
    basis = torch.eye(k, dtype=torch.float64)
    grid, n, used = torch.zeros(k, 2, 2, dtype=torch.float64), 1, 0
    while n < side:
        inc = basis[:, used:used + 3 * n * n].view(k, 3, n, n)
        grid, n, used = _refine(grid, inc), 2 * n, used + 3 * n * n
    return grid.reshape(k, -1).to(device=device, dtype=dtype)


def _refine(grid: torch.Tensor, inc: torch.Tensor) -> torch.Tensor:
    """One diamond-square level: padded (B, n + 1, n + 1) corners and the level's increments
    (B, 3, n, n) (centres, row midpoints, column midpoints) -> padded (B, 2n + 1, 2n + 1) grid."""
    b, n = grid.shape[0], grid.shape[1] - 1
    nxt = torch.empty(b, 2 * n + 1, 2 * n + 1, device=grid.device, dtype=grid.dtype)
    cols = grid[:, :-1] + grid[:, 1:]  # (B, n, n + 1): corner pairs down each corner column
    centres = torch.add(cols[:, :, :-1], cols[:, :, 1:])
    centres = torch.add(inc[:, 0], centres, alpha=0.25, out=centres)
    # edge midpoints on corner rows: corners left/right, centres above/below (periodic)
    rows = torch.add(grid[:, :-1, :-1], grid[:, :-1, 1:]).add_(centres)
    rows[:, 1:].add_(centres[:, :-1])
    rows[:, 0].add_(centres[:, -1])
    torch.add(inc[:, 1], rows, alpha=0.25, out=nxt[:, 0:2 * n:2, 1:2 * n:2])
    # edge midpoints on corner columns: corners above/below, centres left/right (periodic)
    mids = cols[:, :, :-1].add_(centres)
    mids[:, :, 1:].add_(centres[:, :, :-1])
    mids[:, :, 0].add_(centres[:, :, -1])
    torch.add(inc[:, 2], mids, alpha=0.25, out=nxt[:, 1:2 * n:2, 0:2 * n:2])
    nxt[:, 1:2 * n:2, 1:2 * n:2] = centres
    nxt[:, 0:2 * n + 1:2, 0:2 * n + 1:2] = grid
    nxt[:, -1, 1:-1] = nxt[:, 0, 1:-1]
    nxt[:, 1:-1, -1] = nxt[:, 1:-1, 0]
    return nxt


def plasma_from_uniforms(mapsize: int, decay: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The fractal built from given U[0, 1) numbers, (B, noise_count(mapsize)) -> (B, N, N),
    min–max normalised to [0, 1]."""
    field = plasma_padded(mapsize, decay, uniforms)
    lo, hi = plasma_range(field)
    return field[:, :mapsize, :mapsize].sub(lo).div_(hi - lo)


def plasma_range(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map minimum and maximum of (B, N, N) maps, each (B, 1, 1). Two reductions: one
    `aminmax` over a dim is many times slower on the CPU. max(x − lo) = hi − lo exactly (rounding
    is monotonic), so normalising with these matches the reference's two-step normalisation."""
    return field.amin(dim=(1, 2), keepdim=True), field.amax(dim=(1, 2), keepdim=True)

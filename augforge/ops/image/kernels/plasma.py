"""Diamond-square plasma fractal of ImageNet-C's fog, batched with one generator per sample.

Restates the reference algorithm: an N×N map (N a power of two) starts at 0; with step = N and
wibble = 100, while step ≥ 2 a "squares" pass sets each square centre to the mean of its four
corners and a "diamonds" pass sets each edge midpoint to the mean of its two corner and two
centre neighbours (all periodic); every new point also gets wibble · U(−wibble, wibble) — the
noise amplitude is wibble², a quirk of the reference kept on purpose. Then step //= 2,
wibble /= decay. Finally each map is min–max normalised to [0, 1].
"""

from __future__ import annotations

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
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One (mapsize, mapsize) fractal per generator, stacked to (B, mapsize, mapsize) in [0, 1].

    Sample b's uniforms come only from gens[b] (one draw of all its numbers, then split by level).
    """
    return plasma_from_uniforms(mapsize, decay, plasma_uniforms(mapsize, gens, device=device, dtype=dtype))


def plasma_uniforms(mapsize: int, gens: list[torch.Generator], *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """All U[0, 1) numbers the fractals consume, (B, noise_count(mapsize)), one draw per generator."""
    check_mapsize(mapsize)
    return draw((noise_count(mapsize),), gens, "uniform", device=torch.device(device), dtype=dtype)


def check_mapsize(mapsize: int) -> None:
    """Raise ValueError unless mapsize is a power of two >= 2."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma fractal mapsize must be a power of two >= 2, got {mapsize}")


def _rolled_sum(a: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """a + a.roll(shift, dim) for shift ±1, as two slice adds without a rolled copy."""
    n = a.shape[dim]
    dst = torch.empty_like(a)
    first, last = (0, n - 1) if shift == -1 else (n - 1, 0)  # the element that wraps around
    body = (0, 1) if shift == -1 else (1, 0)  # dst[i] = a[i] + a[i + 1] (−1) or a[i − 1] (+1)
    torch.add(a.narrow(dim, body[0], n - 1), a.narrow(dim, body[1], n - 1),
              out=dst.narrow(dim, body[0], n - 1))
    torch.add(a.narrow(dim, last, 1), a.narrow(dim, first, 1), out=dst.narrow(dim, last, 1))
    return dst


def _add_rolled_(out: torch.Tensor, a: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """out += a.roll(shift, dim) for shift ±1, with two slice adds instead of a rolled copy."""
    n = a.shape[dim]
    lo, hi = (1, 0) if shift == -1 else (0, 1)  # out[i] += a[i + 1] (shift −1) or a[i − 1] (+1)
    out.narrow(dim, hi, n - 1).add_(a.narrow(dim, lo, n - 1))
    out.narrow(dim, n - 1 if shift == -1 else 0, 1).add_(a.narrow(dim, 0 if shift == -1 else n - 1, 1))
    return out


def _interleave(corners: torch.Tensor, row_mids: torch.Tensor, col_mids: torch.Tensor,
                centres: torch.Tensor) -> torch.Tensor:
    """The next level's (B, 2n, 2n) corner grid from this level's four (B, n, n) point sets."""
    b, n, _ = corners.shape
    out = torch.empty(b, n, 2, n, 2, dtype=corners.dtype, device=corners.device)
    out[:, :, 0, :, 0] = corners
    out[:, :, 0, :, 1] = row_mids
    out[:, :, 1, :, 0] = col_mids
    out[:, :, 1, :, 1] = centres
    return out.view(b, 2 * n, 2 * n)


def plasma_from_uniforms(mapsize: int, decay: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The fractal built from given U[0, 1) numbers, (B, noise_count(mapsize)) -> (B, N, N).

    Per level the numbers are consumed in the reference's order: square centres, then edge
    midpoints on corner rows, then edge midpoints on corner columns (each block row-major).
    The points of a level are kept as dense (B, n, n) grids (corners, centres, row and column
    midpoints) and interleaved into the next level's corners, which avoids strided writes."""
    check_mapsize(mapsize)
    b = uniforms.shape[0]
    if uniforms.shape != (b, noise_count(mapsize)):
        raise ValueError(f"need (B, {noise_count(mapsize)}) uniforms, got {tuple(uniforms.shape)}")
    corners = torch.zeros(b, 1, 1, device=uniforms.device, dtype=uniforms.dtype)
    wibble, used = 100.0, 0

    def wibbled(total: torch.Tensor) -> torch.Tensor:
        """total / 4 + wibble · (u · 2·wibble − wibble), in place on the fresh `total`."""
        nonlocal used
        k = total[0].numel()
        noise = uniforms[:, used:used + k].reshape(total.shape) * (2 * wibble)
        used += k
        return total.div_(4).add_(noise.sub_(wibble).mul_(wibble))

    while corners.shape[1] < mapsize:
        centres = wibbled(_rolled_sum(_rolled_sum(corners, -1, 1), -1, 2))
        # edge midpoints on corner rows: centres above/below, corners left/right
        row_mids = wibbled(_add_rolled_(_rolled_sum(centres, 1, 1).add_(corners), corners, -1, 2))
        # edge midpoints on corner columns: centres left/right, corners above/below
        col_mids = wibbled(_add_rolled_(_rolled_sum(centres, 1, 2).add_(corners), corners, -1, 1))
        corners = _interleave(corners, row_mids, col_mids, centres)
        wibble /= decay
    flat = corners.reshape(b, -1)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
    # max(x − lo) = hi − lo exactly: rounding is monotonic, so one pass finds both extremes
    flat.sub_(lo).div_(hi - lo)
    return corners

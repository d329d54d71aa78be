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
    count = noise_count(mapsize)
    return torch.stack([torch.rand(count, generator=g, device=device, dtype=dtype) for g in gens])


def check_mapsize(mapsize: int) -> None:
    """Raise ValueError unless mapsize is a power of two >= 2."""
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"plasma fractal mapsize must be a power of two >= 2, got {mapsize}")


def plasma_from_uniforms(mapsize: int, decay: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The fractal built from given U[0, 1) numbers, (B, noise_count(mapsize)) -> (B, N, N).

    Per level the numbers are consumed in the reference's order: square centres, then edge
    midpoints on corner rows, then edge midpoints on corner columns (each block row-major)."""
    check_mapsize(mapsize)
    b = uniforms.shape[0]
    if uniforms.shape != (b, noise_count(mapsize)):
        raise ValueError(f"need (B, {noise_count(mapsize)}) uniforms, got {tuple(uniforms.shape)}")
    m = torch.zeros(b, mapsize, mapsize, device=uniforms.device, dtype=uniforms.dtype)
    step, wibble, used = mapsize, 100.0, 0

    def wibbled(total: torch.Tensor) -> torch.Tensor:
        nonlocal used
        k = total[0].numel()
        u = uniforms[:, used:used + k].reshape(total.shape)
        used += k
        return total / 4 + wibble * (u * (2 * wibble) - wibble)

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        acc = corners + corners.roll(-1, dims=1)
        acc = acc + acc.roll(-1, dims=2)
        m[:, half::step, half::step] = wibbled(acc)
        centres = m[:, half::step, half::step]
        corners = m[:, 0::step, 0::step]
        # edge midpoints on corner rows: centres above/below, corners left/right
        left_right = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        m[:, 0::step, half::step] = wibbled(left_right)
        # edge midpoints on corner columns: centres left/right, corners above/below
        top_bottom = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        m[:, half::step, 0::step] = wibbled(top_bottom)
        step //= 2
        wibble /= decay
    flat = m.reshape(b, -1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / flat.max(dim=1, keepdim=True).values
    return flat.reshape(b, mapsize, mapsize)

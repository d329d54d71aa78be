"""Pure batched tensor kernels of PRIME's three primitives (Modas et al., ECCV 2022).

Restated from the reference description (corruptions-2d.md §6.2): max-entropy diffeomorphisms
(sine-series displacement fields + clamped bilinear remap), spectral colour curves
(v + Σ a_k sin(π k v)) and random k×k convolutions. Randomness is drawn elsewhere (prime.py);
these functions take the drawn numbers as tensors and work on any device and float dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def temperature_range(n: int, cut: int) -> tuple[float, float]:
    """The diffeo temperature bounds for image side `n` and cut-off `cut` (≥ 2).

    T1 = 1 / (π n² ln c) gives a typical displacement of about half a pixel; T2 = 4 / (π³ c² ln c)
    is the largest temperature without overhangs (folds) of the deformation.
    """
    log_c = math.log(cut)
    return 1.0 / (math.pi * n * n * log_c), 4.0 / (math.pi**3 * cut * cut * log_c)


def mode_weights(cuts: torch.Tensor, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per-sample mode amplitudes (B, size, size): 1/√(i²+j²) where √(i²+j²) < cut + 0.5, else 0.

    Index [b, i-1, j-1] is mode (i, j), i, j = 1..size; `cuts` (B,) holds each sample's cut-off.
    """
    k = torch.arange(1, size + 1, dtype=dtype, device=cuts.device)
    r = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    keep = r[None] < (cuts.to(dtype)[:, None, None] + 0.5)
    return torch.where(keep, 1.0 / r[None], torch.zeros((), dtype=dtype, device=cuts.device))


def sine_modes(n: int, size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, size) table sin(π k t) for t = linspace(0, 1, n) and k = 1..size."""
    t = torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
    k = torch.arange(1, size + 1, dtype=dtype, device=device)
    return torch.sin(math.pi * t[:, None] * k[None, :])


def displacement_fields(coeffs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sine-series fields: out[..., y, x] = Σ_ij coeffs[..., i-1, j-1] sin(π i x̂) sin(π j ŷ).

    `coeffs` is (..., m, m) with i the horizontal and j the vertical frequency; x̂ = linspace(0, 1, W)
    and ŷ = linspace(0, 1, H) are the normalised pixel coordinates. Returns (..., H, W).
    """
    m = coeffs.shape[-1]
    sx = sine_modes(width, m, coeffs.dtype, coeffs.device)  # (W, m): sin(π i x̂)
    sy = sine_modes(height, m, coeffs.dtype, coeffs.device)  # (H, m): sin(π j ŷ)
    along_y = coeffs @ sy.T  # (..., m_i, H): Σ_j a_ij sin(π j ŷ)
    return along_y.transpose(-1, -2) @ sx.T  # (..., H, W)


def remap_bilinear(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """out[y, x] = bilinear sample of the image at (x − dx, y − dy), coordinates clamped to the image.

    x: (B, C, H, W); dx, dy: (B, H, W) displacements in pixels. Runs as `grid_sample` (bilinear,
    align_corners=True, so normalised ±1 are the centres of the edge pixels, border padding): one
    fused kernel instead of four gathers and their temporaries. Coordinates go through the
    normalisation to [−1, 1] and back, so they carry float rounding (~1e-7 px in float32).
    """
    _, _, h, w = x.shape
    gy = torch.arange(h, dtype=dx.dtype, device=x.device).view(1, h, 1)
    gx = torch.arange(w, dtype=dx.dtype, device=x.device).view(1, 1, w)
    xn = (gx - dx).clamp(0, w - 1).mul_(2 / max(w - 1, 1)).sub_(1)
    yn = (gy - dy).clamp(0, h - 1).mul_(2 / max(h - 1, 1)).sub_(1)
    grid = torch.stack([xn, yn], dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def diffeo(x: torch.Tensor, coeffs: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Deform a batch with per-sample fields: coeffs (B, 2, m, m) (u then v, mode-weighted) and
    temperature (B,). dx = √T·W·u, dy = √T·H·v (per-axis scale; for square images both are n)."""
    _, _, h, w = x.shape
    return diffeo_fields(x, displacement_fields(coeffs, h, w), temperature)


def diffeo_fields(x: torch.Tensor, fields: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """`diffeo` from the synthesised fields (B, 2, H, W) (u then v, before the √T scale)."""
    _, _, h, w = x.shape
    root_t = temperature.to(fields.dtype).sqrt().view(-1, 1, 1)
    dx = root_t * w * fields[:, 0]
    dy = root_t * h * fields[:, 1]
    return remap_bilinear(x, dx, dy)


def smooth_color(x: torch.Tensor, coeffs: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Spectral colour curve per image and channel: v + Σ_k a_k sin(π f_k v), clamped to [0, 1].

    coeffs: (B, C, K) amplitudes a_k; freqs: (B, K) frequencies f_k (padding entries have a_k = 0,
    which adds exactly zero). An image whose values are all k/255 (an 8-bit picture: the first
    step of every PRIME chain) has at most 256 distinct values per channel, so its curve is
    computed on the 256 levels, with the same arithmetic, and looked up (a quarter of the work at
    32², far less at 224²); other images are computed pixel by pixel. Either way `_curves`.
    """
    b, c, h, w = x.shape
    a = coeffs.to(x.dtype)
    f = freqs.to(x.dtype)
    levels = x.mul(255).round_().clamp_(0, 255)
    on_grid = (levels.div(255) == x).reshape(b, -1).all(dim=1)
    if not bool(on_grid.any()):
        return _curves(x, a, f).clamp_(0.0, 1.0)
    grid = torch.arange(256, dtype=x.dtype, device=x.device).div_(255)  # the same division as the check
    out = torch.empty_like(x)
    for rows, lut in ((on_grid.nonzero().view(-1), True), ((~on_grid).nonzero().view(-1), False)):
        if rows.numel() == 0:
            continue
        src = grid.view(1, 1, 1, 256).expand(rows.numel(), c, 1, 256) if lut else x.index_select(0, rows)
        curve = _curves(src, a.index_select(0, rows), f.index_select(0, rows))
        if lut:
            index = levels.index_select(0, rows).reshape(-1, c, h * w).long()
            curve = curve.view(-1, c, 256).gather(2, index).view(-1, c, h, w)
        out.index_copy_(0, rows, curve)
    return out.clamp_(0.0, 1.0)


def _curves(x: torch.Tensor, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """v + Σ_k a_k sin(π f_k v) (not clamped), one frequency per step of a loop over K: memory
    stays O(B·C·H·W). Terms that add exactly zero (f_k = 0 or a_k = 0 on every channel) are
    skipped: images are ordered by their last live term, so step k runs on the prefix of images
    that still need it. The kept terms are summed in the same order with the same arithmetic, so
    the result is the same as summing every term."""
    live = (f != 0) & (a != 0).any(dim=1)  # (B, K)
    steps = torch.where(live, torch.arange(1, live.shape[-1] + 1, device=x.device), 0).amax(dim=1)
    order = torch.argsort(steps, descending=True, stable=True)
    counts = steps[order].tolist()
    b, c = x.shape[:2]
    xs = x.index_select(0, order)
    # term-major copies, so that term j of the first `rows` images is a plain slice
    amps = a[order].permute(2, 0, 1).reshape(-1, b, c, 1, 1)
    pf = (math.pi * f[order]).T.reshape(-1, b, 1, 1, 1)
    out = xs.clone()
    term = torch.empty_like(xs)
    rows = len(counts)
    for j in range(counts[0] if counts else 0):
        while counts[rows - 1] <= j:
            rows -= 1
        t = torch.mul(pf[j, :rows], xs[:rows], out=term[:rows])
        out[:rows].addcmul_(amps[j, :rows], t.sin_())  # out += a_k·sin(π f_k v), one pass
    return out.index_select(0, torch.argsort(order))


def identity_kernel(size: int, index: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A (size, size) delta with its one at [index, index]."""
    delta = torch.zeros(size, size, dtype=dtype, device=device)
    delta[index, index] = 1.0
    return delta


def random_filter(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each image with its own (k, k) kernel (shared by its channels), zero "same" padding
    (PyTorch's: left/top pad (k−1)//2), NaN → 1, clamp to [0, 1]. kernels: (B, k, k)."""
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).reshape(b * c, 1, k, k)
    out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding="same", groups=b * c).reshape(b, c, h, w)
    out = torch.where(torch.isnan(out), torch.ones((), dtype=out.dtype, device=out.device), out)
    return out.clamp_(0.0, 1.0)


def mix(clean: torch.Tensor, chains: torch.Tensor, weights: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(1 − m)·clean + m·Σ_i w_i·chain_i. chains: (width, B, C, H, W); weights: (B, width); m: (B,)."""
    w = weights.to(clean.dtype).T.reshape(chains.shape[0], -1, 1, 1, 1)
    mixed = (w * chains).sum(0)
    mm = m.to(clean.dtype).view(-1, 1, 1, 1)
    return ((1 - mm) * clean + mm * mixed).clamp_(0.0, 1.0)

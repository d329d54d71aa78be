"""Frequency split and amplitude–phase recombination kernels of HybridAugment / APR.

* The low/high split is spatial, as in the reference: low = torchvision
  `GaussianBlur(kernel_size, sigma)` (kernel exp(−t²/(2σ²)) over the integer offsets
  t = −(k−1)/2 … (k−1)/2, normalised; torch 'reflect' padding, i.e. d c b | a b c d), high = x − low.
* Amplitude–phase recombination transforms whole (C, H, W) images with `torch.fft.fftn`, the
  channel axis included (the reference's numpy fftn over H×W×C and torch fftn over dims (1, 2, 3)),
  combines |F(a)| with ∠F(p) and keeps the real part of the inverse transform.
"""

from __future__ import annotations

import math

import torch

from augforge.ops.image.kernels.filters import pad

_FFT_DIMS = (-3, -2, -1)


def gaussian_kernel1d_tv(kernel_size: int, sigma: float, *, dtype: torch.dtype = torch.float64,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """torchvision's 1-D Gaussian: exp(−t²/(2σ²)) at t = −(k−1)/2 … (k−1)/2, summing to 1."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma}")
    half = (kernel_size - 1) / 2
    t = torch.linspace(-half, half, kernel_size, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur_tv(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """torchvision GaussianBlur(kernel_size, sigma) on (B, C, H, W), applied separably.

    Taps are summed with shifted slices (no convolution algorithm choice), so each image's result
    is bit-identical whatever batch it is in.
    """
    k = gaussian_kernel1d_tv(kernel_size, sigma, dtype=x.dtype, device=x.device)
    r = kernel_size // 2
    if r == 0:
        return x.clone()
    h, w = x.shape[-2:]
    p = pad(x, r, r, r, r, "mirror")  # scipy 'mirror' = torch 'reflect'
    taps = k.tolist()  # Python floats: x * float is the same product as x * 0-d tensor
    rows = p[..., 0:h, :] * taps[0]
    term = torch.empty_like(rows)
    for t in range(1, kernel_size):  # rows += k[t] * p[t:t+h]: same sums, no new tensors
        rows += torch.mul(p[..., t:t + h, :], taps[t], out=term)
    out = rows[..., 0:w] * taps[0]
    term = torch.empty_like(out)
    for t in range(1, kernel_size):
        out += torch.mul(rows[..., t:t + w], taps[t], out=term)
    return out


def frequency_split(x: torch.Tensor, kernel_size: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) = (blur(x), x − blur(x)) with the torchvision Gaussian above."""
    low = gaussian_blur_tv(x, kernel_size, sigma)
    return low, x - low


def amplitude_phase_mix(amplitude_source: torch.Tensor, phase_source: torch.Tensor) -> torch.Tensor:
    """Real part of IFFT(|F(amplitude_source)| · exp(i·∠F(phase_source))), FFT over (C, H, W)."""
    fa = torch.fft.fftn(amplitude_source, dim=_FFT_DIMS)
    fp = torch.fft.fftn(phase_source, dim=_FFT_DIMS)
    return torch.fft.ifftn(torch.polar(fa.abs(), fp.angle()), dim=_FFT_DIMS).real


def byte_cast(levels: torch.Tensor) -> torch.Tensor:
    """numpy `astype(uint8)` / torch `.byte()` of float levels: truncate toward zero, wrap mod 256."""
    return levels.trunc().remainder(256)

"""Frequency split and amplitude–phase recombination kernels of HybridAugment / APR.

* The low/high split is spatial, as in the reference: low = torchvision
  `GaussianBlur(kernel_size, sigma)` (kernel exp(−t²/(2σ²)) over the integer offsets
  t = −(k−1)/2 … (k−1)/2, normalised; torch 'reflect' padding, i.e. d c b | a b c d), high = x − low.
* Amplitude–phase recombination transforms whole (C, H, W) images over all three axes, the
  channel axis included (the reference's numpy fftn over H×W×C and torch fftn over dims (1, 2, 3)),
  combines |F(a)| with ∠F(p) and keeps the real part of the inverse transform (computed with the
  real-input FFTs, see `amplitude_phase_mix`).
"""

from __future__ import annotations

import math

import torch

from augforge.ops.image.kernels.filters import pad

_FFT_DIMS = (-3, -2, -1)
_FFT_BATCH = 4  # pad FFT batches to a multiple of this (see `amplitude_phase_mix`)


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
    """Real part of IFFT(|F(amplitude_source)| · exp(i·∠F(phase_source))), FFT over (C, H, W).

    Both sources are real, so the recombined spectrum is Hermitian and the real part of its
    inverse is the inverse real FFT of its half: rfftn / irfftn do half the work of fftn / ifftn
    (same values up to float rounding). |F(a)|·exp(i·∠F(p)) is computed as F(p)·|F(a)|/|F(p)| on
    the real and imaginary parts, and as |F(a)| where F(p) is 0 (∠0 = 0).
    The batch is zero-padded to a multiple of _FFT_BATCH images: the FFT library transforms a
    batch of one image along another code path (rounding differently), and with the padding an
    image's result does not depend on how many images share the call (batch independence, bit for
    bit; tests/transforms/test_frequency.py checks it).
    """
    n = amplitude_source.shape[0]
    pad = -n % _FFT_BATCH
    if pad:
        zeros = amplitude_source.new_zeros(pad, *amplitude_source.shape[1:])
        amplitude_source = torch.cat([amplitude_source, zeros])
        phase_source = torch.cat([phase_source, zeros.to(phase_source.dtype)])
    fa = torch.view_as_real(torch.fft.rfftn(amplitude_source, dim=_FFT_DIMS))
    fp = torch.view_as_real(torch.fft.rfftn(phase_source, dim=_FFT_DIMS))
    magnitude = torch.hypot(fa[..., 0], fa[..., 1])
    phase_magnitude = torch.hypot(fp[..., 0], fp[..., 1])
    nonzero = phase_magnitude > 0
    mixed = fp * torch.where(nonzero, magnitude / phase_magnitude, 0.0).unsqueeze(-1)
    mixed[..., 0] += torch.where(nonzero, 0.0, magnitude)
    out = torch.fft.irfftn(torch.view_as_complex(mixed), s=amplitude_source.shape[-3:], dim=_FFT_DIMS)
    return out[:n]


def byte_cast(levels: torch.Tensor) -> torch.Tensor:
    """numpy `astype(uint8)` / torch `.byte()` of float levels: truncate toward zero, wrap mod 256."""
    return levels.trunc().remainder(256)

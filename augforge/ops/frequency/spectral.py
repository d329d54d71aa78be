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
from functools import lru_cache

import torch

from augforge.ops.image.kernels.filters import pad

_FFT_BATCH = 4  # pad FFT batches to a multiple of this (see `amplitude_phase_mix`)
CPU_CHUNK_BYTES = 1 << 18  # CPU batch chunk of the blur (chosen by timing at 32², 1 thread)


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
    is bit-identical whatever batch it is in. On the CPU the batch goes in chunks of about
    CPU_CHUNK_BYTES so the padded copy and the temporaries stay in cache (same sums).
    """
    r = kernel_size // 2
    if r == 0:
        return x.clone()
    taps = _taps(kernel_size, sigma, x.dtype)  # x * float is the same product as x * 0-d tensor
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    per = x.shape[0] if x.device.type != "cpu" else max(1, CPU_CHUNK_BYTES // max(1, x[:1].nbytes))
    for i in range(0, x.shape[0], per):
        _blur_into(x[i:i + per], out[i:i + per], taps)
    return out


def _blur_into(x: torch.Tensor, out: torch.Tensor, taps: tuple[float, ...]) -> None:
    """Write the separable blur of x (rows, then columns; reflect padding) into `out`."""
    k, r = len(taps), len(taps) // 2
    h, w = x.shape[-2:]
    p = pad(x, r, r, r, r, "mirror")  # scipy 'mirror' = torch 'reflect'
    rows = p[..., 0:h, :] * taps[0]
    term = torch.empty_like(rows)
    for t in range(1, k):  # rows += k[t] * p[t:t+h]: same sums, no new tensors
        rows += torch.mul(p[..., t:t + h, :], taps[t], out=term)
    torch.mul(rows[..., 0:w], taps[0], out=out)
    term = term[..., 0:w]
    for t in range(1, k):
        out += torch.mul(rows[..., t:t + w], taps[t], out=term)


@lru_cache(maxsize=64)
def _taps(kernel_size: int, sigma: float, dtype: torch.dtype) -> tuple[float, ...]:
    """The 1-D kernel's taps rounded to `dtype`, as Python floats (built once per setting)."""
    return tuple(gaussian_kernel1d_tv(kernel_size, sigma, dtype=dtype).tolist())


def frequency_split(x: torch.Tensor, kernel_size: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) = (blur(x), x − blur(x)) with the torchvision Gaussian above."""
    low = gaussian_blur_tv(x, kernel_size, sigma)
    return low, x - low


def amplitude_phase_mix(amplitude_source: torch.Tensor, phase_source: torch.Tensor) -> torch.Tensor:
    """Real part of IFFT(|F(amplitude_source)| · exp(i·∠F(phase_source))), FFT over (C, H, W).

    Both sources are real, so the recombined spectrum is Hermitian and the real part of its
    inverse is the inverse real FFT of its half: the transforms are a real FFT over (H, W) and a
    complex one over C (`_spectrum`; the same values as rfftn / fftn up to float rounding, faster
    than one 3-axis rfftn). Both sources go through one forward call. |F(a)|·exp(i·∠F(p)) is
    F(p)·|F(a)|/|F(p)|, and |F(a)| where F(p) is 0 (∠0 = 0); magnitudes are √(re² + im²).
    Every element-wise step is an IEEE-exact operation (+, −, ×, ÷, √), the same in the vector
    and the scalar loops. The FFT batches are padded to a multiple of _FFT_BATCH images: the FFT
    library transforms a batch of one image along another code path (rounding differently), and
    with the padding an image's result does not depend on how many images share the call (batch
    independence, bit for bit; tests/transforms/test_frequency.py checks it). On the CPU the
    images go in chunks of about CPU_CHUNK_BYTES (a multiple of _FFT_BATCH images): the spectra
    and temporaries stay in cache.
    """
    n = amplitude_source.shape[0]
    per = _chunk_images(amplitude_source)
    if per >= n:
        return _mix(amplitude_source, phase_source)
    out = torch.empty_like(amplitude_source, memory_format=torch.contiguous_format)
    for i in range(0, n, per):
        out[i:i + per] = _mix(amplitude_source[i:i + per], phase_source[i:i + per])
    return out


def _mix(amplitude_source: torch.Tensor, phase_source: torch.Tensor) -> torch.Tensor:
    """`amplitude_phase_mix` of one chunk."""
    n = amplitude_source.shape[0]
    spec = _spectrum(_padded(amplitude_source, phase_source))
    magnitude = _magnitude(spec[:2 * n])
    # the mix overwrites F(a) (no longer needed); rows n.. only pad the inverse batch
    _recombine(spec[n:2 * n], magnitude[:n], magnitude[n:], out=spec[:n])
    return _inverse(spec[:n + (-n % _FFT_BATCH)], amplitude_source.shape[-2:])[:n]


def amplitude_phase_permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """`amplitude_phase_mix(x[perm], x)` with one forward transform of x: the spectrum of
    x[perm] is the spectrum of x permuted (the FFT is batch-independent, so bit for bit). The mix
    and the inverse go in CPU chunks like `amplitude_phase_mix`."""
    n = x.shape[0]
    spec = _spectrum(_padded(x))
    magnitude = _magnitude(spec[:n])
    amplitude = magnitude[perm]
    per = _chunk_images(x)
    if per >= n:
        _recombine(spec[:n], amplitude, magnitude, out=spec[:n])  # in place: F(x) is not read again
        return _inverse(spec[:n + (-n % _FFT_BATCH)], x.shape[-2:])[:n]
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for i in range(0, n, per):  # mix and invert chunk by chunk (chunks of _FFT_BATCH multiples)
        m = min(per, n - i)
        _recombine(spec[i:i + m], amplitude[i:i + m], magnitude[i:i + m], out=spec[i:i + m])
        out[i:i + m] = _inverse(spec[i:i + m + (-m % _FFT_BATCH)], x.shape[-2:])[:m]
    return out


def _chunk_images(x: torch.Tensor) -> int:
    """Images per FFT chunk: about CPU_CHUNK_BYTES of x on the CPU, a multiple of _FFT_BATCH
    (all images elsewhere)."""
    if x.device.type != "cpu":
        return x.shape[0]
    return max(1, CPU_CHUNK_BYTES // max(1, x[:1].nbytes) // _FFT_BATCH) * _FFT_BATCH


def _padded(*parts: torch.Tensor) -> torch.Tensor:
    """The images of `parts` stacked, zero images appended up to a multiple of _FFT_BATCH."""
    n = sum(p.shape[0] for p in parts)
    out = parts[0].new_empty((n + (-n % _FFT_BATCH), *parts[0].shape[1:]))
    at = 0
    for p in parts:
        out[at:at + p.shape[0]] = p
        at += p.shape[0]
    out[n:].zero_()
    return out


def _magnitude(spec: torch.Tensor) -> torch.Tensor:
    """|F| as √(re² + im²) (a new real tensor)."""
    parts = torch.view_as_real(spec)
    squares = parts * parts
    return (squares[..., 0] + squares[..., 1]).sqrt_()


def _recombine(phase: torch.Tensor, amplitude: torch.Tensor, phase_magnitude: torch.Tensor, *,
               out: torch.Tensor) -> None:
    """out = phase · amplitude / |phase|, and amplitude where phase is 0. `amplitude` and
    `phase_magnitude` are scratch (overwritten); `phase` gets +1 where it is 0; `out` may be
    `phase` itself."""
    flat = (phase_magnitude == 0).to(phase_magnitude.dtype)  # where F(p) = 0: (F(p) + 1)·|F(a)| / 1
    torch.view_as_real(phase)[..., 0] += flat
    torch.mul(phase, amplitude.div_(phase_magnitude.add_(flat)), out=out)


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    """rfftn over (C, H, W) as a real FFT over (H, W), then a complex FFT over C (if C > 1)."""
    f = torch.fft.rfft2(x)
    return f if x.shape[-3] == 1 else torch.fft.fft(f, dim=-3)


def _inverse(f: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """irfftn over (C, H, W) with output (H, W) = size: inverse of `_spectrum`."""
    if f.shape[-3] > 1:
        f = torch.fft.ifft(f, dim=-3)
    return torch.fft.irfft2(f, s=tuple(size))


def byte_cast(levels: torch.Tensor) -> torch.Tensor:
    """numpy `astype(uint8)` / torch `.byte()` of float levels: truncate toward zero, wrap mod 256."""
    return levels.trunc().remainder(256)

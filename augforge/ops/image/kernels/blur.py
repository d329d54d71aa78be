"""Pure kernels of the ImageNet-C blur family: defocus disk, glass shuffle, motion, zoom, Gaussian.

- `disk_kernel` / `defocus_blur`: the anti-aliased disk (cv2.GaussianBlur on a 17×17 or (2r+1)²
  indicator, REFLECT_101) correlated with each channel like cv2.filter2D (REFLECT_101).
- `gaussian_blur`: skimage.filters.gaussian (edge replication, truncate 4) as shifted adds over
  cache-sized blocks (short kernels on the CPU) or two dense smoothing matrices (kernels.warp);
  both are much faster on the CPU than a one-channel conv2d.
- `blur_to_uint8`: np.uint8(skimage gaussian(x) · 255) bit for bit (float64, scipy's weights and
  summation order). Glass blur truncates its first blur to uint8, so a last-ulp difference decides
  a whole grey level in flat regions.
- `glass_pass_sources` / `glass_shuffle`: the sequential, in-place pixel "swap" of glass blur
  (really a copy on RGB arrays), resolved exactly without a per-pixel loop (pointer jumping).
- `motion_blur`: ImageMagick's line kernel (kernels.motion) accumulated by slicing on the CPU.
- `zoom_blur`: the mean of the image and its clipped zooms (kernels.warp.clipped_zoom).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from augforge.ops.image.kernels.filters import correlate1d, gaussian_filter, pad
from augforge.ops.image.kernels.motion import line_blur, motion_offsets, motion_weights
from augforge.ops.image.kernels.warp import clipped_zoom, gaussian_smooth2d

MATMUL_MAX_SIDE = 512  # dense separable matrices beat conv2d up to about this image side
FFT_MIN_TAPS = 50  # FFT correlation beats direct conv2d from about a 7×7 kernel up
CPU_BLOCK = 1 << 16  # elements per block and CPU thread of shifted-add passes (stays in cache)
BLOCKED_MAX_TAPS = 13  # up to this Gaussian length, shifted adds beat dense matrices on the CPU
GLASS_BLOCK = 1 << 17  # pixels per block and CPU thread of the glass-blur pipeline


def cpu_tuned(x: torch.Tensor) -> bool:
    """Whether to take the CPU-tuned code paths (cache-sized blocks, slicing). The other paths
    process the whole batch at once, which suits GPUs; both give the same results."""
    return x.device.type == "cpu"


def fast_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """filters.pad (scipy border modes), through F.pad where torch has the same mode and size."""
    h, w = x.shape[-2:]
    if mode == "nearest":
        return F.pad(x, (left, right, top, bottom), mode="replicate")
    if mode == "mirror" and max(top, bottom) < h and max(left, right) < w:
        return F.pad(x, (left, right, top, bottom), mode="reflect")
    return pad(x, top, bottom, left, right, mode)


# --------------------------------------------------------------------------- defocus


def cv2_gaussian_kernel1d(ksize: int, sigma: float) -> torch.Tensor:
    """cv2.getGaussianKernel(ksize, sigma) for sigma > 0: exp(−t²/2σ²), t = i − (ksize−1)/2,
    normalised to sum 1 (float64)."""
    t = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) * 0.5
    k = torch.exp(-0.5 / (sigma * sigma) * t * t)
    return k / k.sum()


def disk_kernel(radius: float, alias_sigma: float) -> torch.Tensor:
    """ImageNet-C's anti-aliased defocus disk (float64, odd square, centred).

    r ≤ 8: a 17×17 grid of offsets −8..8 and a 3×3 anti-alias Gaussian; otherwise a (2r+1)² grid
    and a 5×5 Gaussian. Indicator of x²+y² ≤ r², normalised to sum 1, then cv2.GaussianBlur
    (σ = alias_sigma, REFLECT_101 border, not re-normalised). All-zero outer rings are cropped
    symmetrically (they contribute exact zeros, so the filter result is unchanged)."""
    if radius <= 8:
        half, ksize = 8, 3
    else:
        if radius != int(radius):
            raise ValueError(f"defocus radius > 8 must be an integer (odd kernel), got {radius}")
        half, ksize = int(radius), 5
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = ((xx * xx + yy * yy) <= float(radius) ** 2).to(torch.float64)
    disk = disk / disk.sum()
    g = cv2_gaussian_kernel1d(ksize, alias_sigma)
    k = correlate1d(correlate1d(disk[None, None], g, -2, "mirror"), g, -1, "mirror")[0, 0]
    nz = torch.nonzero(k)
    n = k.shape[0]
    margin = int(min(nz[:, 0].min(), nz[:, 1].min(), n - 1 - nz[:, 0].max(), n - 1 - nz[:, 1].max()))
    return k[margin:n - margin, margin:n - margin].contiguous()


def _fast_size(n: int) -> int:
    """Smallest m ≥ n whose only prime factors are 2, 3 and 5 (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def correlate2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "mirror") -> torch.Tensor:
    """cv2.filter2D per channel of (B, C, H, W) with an odd square kernel (border `mode`,
    default REFLECT_101). Large kernels go through the FFT of the padded image, whose valid part
    equals the direct correlation (float rounding aside)."""
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    r, s = kh // 2, kw // 2
    k = kernel.to(dtype=x.dtype, device=x.device)
    padded = fast_pad(x.reshape(b * c, 1, h, w), r, r, s, s, mode)
    if kernel.numel() < FFT_MIN_TAPS:
        return F.conv2d(padded, k.view(1, 1, kh, kw)).reshape(b, c, h, w)
    size = (_fast_size(h + kh - 1), _fast_size(w + kw - 1))
    spectrum = torch.fft.rfft2(padded, s=size)
    spectrum.mul_(torch.fft.rfft2(k, s=size).conj())
    return torch.fft.irfft2(spectrum, s=size)[..., :h, :w].reshape(b, c, h, w)


def defocus_blur(x: torch.Tensor, radius: float, alias_sigma: float) -> torch.Tensor:
    """Correlate every channel of (B, C, H, W) with the defocus disk (cv2.filter2D, REFLECT_101)."""
    return correlate2d(x, disk_kernel(radius, alias_sigma), "mirror")


# --------------------------------------------------------------------------- Gaussian


def scipy_gaussian_weights(sigma: float, truncate: float = 4.0) -> list[float]:
    """scipy's `_gaussian_kernel1d` weights, computed with numpy the way scipy does them
    (exp of −x²/2σ² evaluated by Horner's rule, divided by the numpy sum); σ ≤ 0 gives [1]."""
    if sigma <= 0:
        return [1.0]
    radius = int(truncate * float(sigma) + 0.5)
    t = np.arange(-radius, radius + 1)
    c2 = -0.5 / (sigma * sigma)
    phi = np.exp((c2 * t) * t, dtype=np.float64)
    phi /= phi.sum()
    return [float(v) for v in phi]


def _symmetric_pass(padded: torch.Tensor, weights: Sequence[float], dim: int, n: int,
                    out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """scipy's correlate1d for a symmetric kernel, in its order: out = x0·w0, then
    out += (x[−j] + x[+j])·w_j for j = r .. 1. Separate elementwise ops: no fused multiply-add
    can change a rounding, on any device."""
    r = (len(weights) - 1) // 2
    torch.mul(padded.narrow(dim, r, n), weights[r], out=out)
    for j in range(r, 0, -1):
        torch.add(padded.narrow(dim, r - j, n), padded.narrow(dim, r + j, n), out=tmp)
        out.add_(tmp.mul_(weights[r - j]))
    return out


def _symmetric_filter(x: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Separable symmetric filter of (N, C, H, W), rows first, edge replication, scipy's order."""
    r = (len(weights) - 1) // 2
    h, w = x.shape[-2:]
    tmp = torch.empty_like(x)
    rows = _symmetric_pass(fast_pad(x, r, r, 0, 0, "nearest"), weights, -2, h, torch.empty_like(x), tmp)
    return _symmetric_pass(fast_pad(rows, 0, 0, r, r, "nearest"), weights, -1, w, torch.empty_like(x), tmp)


def _planes(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """x as (B·C, 1, H, W) planes and how many to process at once: cache-sized blocks on the CPU
    (the elementwise passes are memory-bound), the whole batch on other devices."""
    b, c, h, w = x.shape
    step = max(1, CPU_BLOCK * torch.get_num_threads() // (h * w)) if cpu_tuned(x) else b * c
    return x.reshape(b * c, 1, h, w), step


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian per channel (edge replication, radius int(4σ+0.5)) in x's dtype.

    The fastest exact-border method by case: short kernels as shifted adds over cache-sized
    blocks (CPU), otherwise two dense smoothing matrices (sides ≤ 512), else a 1-D conv."""
    if sigma <= 0:
        return x.clone()
    weights = scipy_gaussian_weights(sigma)
    if cpu_tuned(x) and len(weights) <= BLOCKED_MAX_TAPS:
        planes, step = _planes(x)
        out = torch.empty_like(planes)
        for i in range(0, planes.shape[0], step):
            out[i:i + step] = _symmetric_filter(planes[i:i + step], weights)
        return out.view_as(x)
    if max(x.shape[-2:]) <= MATMUL_MAX_SIDE:
        return gaussian_smooth2d(x, sigma, mode="nearest", truncate=4.0)
    return gaussian_filter(x, sigma)


def snap_to_levels(x: torch.Tensor) -> torch.Tensor:
    """float64 copy of x where values within 1e-3/255 of a level k/255 become exactly k/255.

    float32 cannot hold k/255 while the reference divides uint8 by 255 in float64; snapping
    recovers those values for 8-bit inputs and leaves any other value unchanged."""
    v = x * 255.0  # in x's dtype: float32 work is half the memory traffic of float64
    r = v.round()
    return torch.where((v - r).abs() < 1e-3, r, v).to(torch.float64).div_(255.0)


def blur_to_uint8(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """np.uint8(skimage.filters.gaussian(x, sigma) * 255) as a uint8 tensor, bit-exact for 8-bit
    inputs (float64, scipy's order), in cache-sized blocks of planes on the CPU."""
    weights = scipy_gaussian_weights(sigma)
    planes, step = _planes(x)
    out = torch.empty(planes.shape, dtype=torch.uint8, device=x.device)
    for i in range(0, planes.shape[0], step):
        v = _symmetric_filter(snap_to_levels(planes[i:i + step]), weights)
        out[i:i + step] = v.mul_(255.0).floor_().clamp_(0.0, 255.0)
    return out.view_as(x)


# --------------------------------------------------------------------------- glass blur
#
# The reference loops over rows h = H−d .. d+1 and, inside, columns w = W−d .. d+1 (both
# descending) and sets pixel (h, w) to the *current* value of (h+dy, w+dx), dy, dx ∈ [−d, d−1].
# A source later in raster order that lies inside that region was already overwritten in this
# pass, so (h, w) receives that source's final value; any other source (earlier in raster order,
# outside the region, or the pixel itself) still holds its value from before the pass. Let
# next(p) = src(p) in the first case and p otherwise: following `next` until it stops gives the
# pixel whose *pre-pass* source value p ends up with. Pointer jumping (next ← next∘next) finds
# the end of every chain in ⌈log2(longest chain)⌉ gathers, for all pixels and samples at once.


def glass_pass_sources(offsets: torch.Tensor, height: int, width: int, delta: int) -> torch.Tensor:
    """Where each pixel of the pass region takes its value from, for one sequential pass.

    The region is rows d+1..H−d × columns d+1..W−d; `offsets` is an integer (B, 2, H−2d, W−2d)
    tensor, offsets[b, :, i, j] = (dy, dx) drawn for pixel (d+1+i, d+1+j). Returns the int64
    (B·(H−2d)·(W−2d),) indices, into the batch's B·H·W pixels (b·H·W + h·W + w), of the values
    from *before* the pass that the region's pixels (in raster order) end up with."""
    b = offsets.shape[0]
    dev = offsets.device
    hr, wr = height - 2 * delta, width - 2 * delta
    if offsets.shape[1:] != (2, hr, wr):
        raise ValueError(f"offsets must be (B, 2, {hr}, {wr}), got {tuple(offsets.shape)}")
    dy, dx = offsets[:, 0], offsets[:, 1]
    rows = torch.arange(hr, device=dev, dtype=torch.int32).view(hr, 1)
    cols = torch.arange(wr, device=dev, dtype=torch.int32).view(1, wr)
    first = torch.arange(b, device=dev).view(b, 1, 1) * (height * width) + (delta + 1) * (width + 1)
    src = ((dy * width + dx + rows * width + cols).long() + first).view(-1)
    if delta < 2:  # dy, dx ∈ {−1, 0}: no source was overwritten earlier in the pass
        return src
    # In region-local raster order (local row i is image row d+1+i) the source is `step` pixels
    # ahead; a positive step reaches a pixel already rewritten in this pass if it lies inside the
    # region, which can only fail in the last d−1 rows and the first d / last d−1 columns.
    step = dy * wr + dx
    forward = step > 0
    for rs, cs in ((slice(max(hr - delta + 1, 0), hr), slice(0, wr)),
                   (slice(0, hr), slice(0, min(delta, wr))),
                   (slice(0, hr), slice(max(wr - delta + 1, 0), wr))):
        si, sj = rows[rs] + dy[:, rs, cs], cols[:, cs] + dx[:, rs, cs]
        forward[:, rs, cs] &= (si < hr) & (sj >= 0) & (sj < wr)
    # Pointer jumping over the batch-flattened region: nxt[p] = p + step where forward, else p.
    # Each round nxt ← nxt∘nxt doubles the links followed; it stops changing once every pointer
    # has reached the end of its chain (⌈log2(longest chain)⌉ + 1 rounds).
    here = torch.arange(hr * wr, device=dev, dtype=torch.int32).view(1, hr, wr)
    offset = torch.arange(b, device=dev).view(b, 1) * (hr * wr)
    nxt = ((step * forward + here).view(b, -1) + offset).view(-1)
    while True:
        jumped = nxt.index_select(0, nxt)
        if torch.equal(jumped, nxt):
            break
        nxt = jumped
    return src.index_select(0, nxt)


def glass_shuffle(x: torch.Tensor, offsets: Sequence[torch.Tensor], delta: int) -> torch.Tensor:
    """Apply len(offsets) sequential glass-blur passes to (B, C, H, W) (any dtype).

    offsets[k] holds pass k's (B, 2, H−2d, W−2d) draws (see glass_pass_sources). Pixels move with
    all their channels, so the work is done channels-last (one row of C values per pixel)."""
    b, c, h, w = x.shape
    hr, wr = h - 2 * delta, w - 2 * delta
    if hr <= 0 or wr <= 0 or not offsets:
        return x.clone()
    pixels = x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
    for off in offsets:
        values = pixels.view(b * h * w, c).index_select(0, glass_pass_sources(off, h, w, delta))
        pixels[:, delta + 1:h - delta + 1, delta + 1:w - delta + 1] = values.view(b, hr, wr, c)
    return pixels.permute(0, 3, 1, 2).contiguous()


def glass_offsets(gens: Sequence[torch.Generator], iterations: int, height: int, width: int, delta: int,
                  device: torch.device) -> list[torch.Tensor]:
    """Per pass, int32 (B, 2, H−2d, W−2d) draws (dy, dx) uniform in [−d, d−1]; sample i draws
    all of its passes from gens[i] alone."""
    shape = (iterations, 2, max(height - 2 * delta, 0), max(width - 2 * delta, 0))
    draws = torch.empty((len(gens), *shape), dtype=torch.int32, device=device)
    for i, g in enumerate(gens):
        torch.randint(-delta, delta, shape, generator=g, device=device, dtype=torch.int32, out=draws[i])
    return list(draws.unbind(1))


def glass_blur(x: torch.Tensor, sigma: float, delta: int, offsets: Sequence[torch.Tensor]) -> torch.Tensor:
    """ImageNet-C glass blur of (B, C, H, W) in [0, 1] given each pass's (B, 2, H−2d, W−2d) offsets:
    blur and truncate to uint8 (bit-exact), shuffle, blur again in x's dtype.

    On the CPU the batch goes through in blocks of about GLASS_BLOCK pixels: every stage is a
    chain of memory-bound passes, about twice as fast when a block stays in the cache."""
    b, _, h, w = x.shape
    step = max(1, GLASS_BLOCK * torch.get_num_threads() // (h * w)) if cpu_tuned(x) else b
    out = torch.empty_like(x)
    for i in range(0, b, step):
        levels = blur_to_uint8(x[i:i + step], sigma)
        shuffled = glass_shuffle(levels, [off[i:i + step] for off in offsets], delta)
        out[i:i + step] = gaussian_blur(shuffled.to(x.dtype) / 255.0, sigma)
    return out


# --------------------------------------------------------------------------- motion blur


def line_blur_sliced(x: torch.Tensor, weights: Sequence[float], dx: torch.Tensor,
                     dy: torch.Tensor) -> torch.Tensor:
    """kernels.motion.line_blur (edge-replicated line sum, same tap order, same result) by adding
    shifted slices of one padded tensor per sample: ~15× faster than a gather on the CPU."""
    b, _, h, w = x.shape
    dxl = dx.clamp(-w, w).tolist()
    dyl = dy.clamp(-h, h).tolist()
    m = max(max(abs(v) for row in dxl for v in row), max(abs(v) for row in dyl for v in row))
    padded = fast_pad(x, m, m, m, m, "nearest")
    out = torch.zeros_like(x)
    for s in range(b):  # the offsets differ per sample; each add is a whole C×H×W slice
        acc, src = out[s], padded[s]
        for wi, ox, oy in zip(weights, dxl[s], dyl[s], strict=True):
            acc.add_(src[:, m + oy:m + oy + h, m + ox:m + ox + w], alpha=wi)
    return out


def motion_blur(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick motion blur (radius, sigma) of each sample along its own angle in degrees."""
    weights = motion_weights(radius, sigma, dtype=torch.float64)
    dx, dy = motion_offsets(weights.numel(), angles_deg.detach().cpu())
    if cpu_tuned(x):
        return line_blur_sliced(x, weights.tolist(), dx, dy)
    return line_blur(x, weights.to(x.dtype), dx, dy)


def motion_blur_8bit(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageNet-C motion blur of x in [0, 1] with the reference's 8-bit round trip: a uint8 PNG
    goes into ImageMagick and an 8-bit PNG comes out, so levels in, rounded (half up) levels out."""
    levels = torch.round(x * 255.0).clamp_(0.0, 255.0)
    blurred = motion_blur(levels, radius, sigma, angles_deg)
    return torch.floor(blurred + 0.5).clamp_(0.0, 255.0) / 255.0


# --------------------------------------------------------------------------- zoom blur


def zoom_blur(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """(x + Σ_z clipped_zoom(x, z)) / (|Z| + 1): ImageNet-C zoom blur (central crop and trim)."""
    out = x.clone()
    for z in factors:
        out += x if z == 1.0 else clipped_zoom(x, float(z))
    return out / (len(factors) + 1)

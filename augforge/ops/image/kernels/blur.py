"""Pure kernels of the ImageNet-C blur family: defocus disk, glass shuffle, motion, zoom.

- `disk_kernel` / `defocus_blur`: the anti-aliased disk (cv2.GaussianBlur on a 17×17 or (2r+1)²
  indicator, REFLECT_101) correlated with each channel like cv2.filter2D (filters.filter2d).
- Gaussian blur is `filters.gaussian_filter` (skimage semantics, banded matmuls), the one
  implementation every op uses.
- `blur_to_uint8`: np.uint8(skimage gaussian(x) · 255) bit for bit (float64, scipy's weights and
  summation order). Glass blur truncates its first blur to uint8, so a last-ulp difference decides
  a whole grey level in flat regions; this is the only place a Gaussian is summed tap by tap.
- `glass_pass_sources` / `glass_shuffle`: the sequential, in-place pixel "swap" of glass blur
  (really a copy on RGB arrays), resolved exactly without a per-pixel loop (pointer jumping).
- `motion_blur_8bit`: ImageMagick's line kernel (kernels.motion, shared with snow) on 8-bit levels.
- `zoom_blur`: the mean of the image and its clipped zooms (kernels.warp.zoom_sum).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.filters import correlate1d, filter2d, gaussian_filter, gaussian_weights, pad
from augforge.ops.image.kernels.motion import motion_blur_kernel
from augforge.ops.image.kernels.warp import clipped_zoom

CPU_BLOCK = 1 << 16  # elements per block and CPU thread of shifted-add passes (stays in cache)
GLASS_BLOCK = 1 << 17  # pixels per block and CPU thread of the glass-blur pipeline


def cpu_tuned(x: torch.Tensor) -> bool:
    """Whether to take the CPU-tuned code paths (cache-sized blocks). The other paths process
    the whole batch at once, which suits GPUs; both give the same results."""
    return x.device.type == "cpu"


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


def defocus_blur(x: torch.Tensor, radius: float, alias_sigma: float) -> torch.Tensor:
    """Correlate every channel of (B, C, H, W) with the defocus disk (cv2.filter2D, REFLECT_101)."""
    return filter2d(x, disk_kernel(radius, alias_sigma), mode="mirror")


# --------------------------------------------------------------------------- bit-exact Gaussian


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
    rows = _symmetric_pass(pad(x, r, r, 0, 0, "nearest"), weights, -2, h, torch.empty_like(x), tmp)
    return _symmetric_pass(pad(rows, 0, 0, r, r, "nearest"), weights, -1, w, torch.empty_like(x), tmp)


def _planes(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """x as (B·C, 1, H, W) planes and how many to process at once: cache-sized blocks on the CPU
    (the elementwise passes are memory-bound), the whole batch on other devices."""
    b, c, h, w = x.shape
    step = max(1, CPU_BLOCK * torch.get_num_threads() // (h * w)) if cpu_tuned(x) else b * c
    return x.reshape(b * c, 1, h, w), step


def snap_to_levels(x: torch.Tensor) -> torch.Tensor:
    """float64 copy of x where values within 1e-3/255 of a level k/255 become exactly k/255.

    float32 cannot hold k/255 while the reference divides uint8 by 255 in float64; snapping
    recovers those values for 8-bit inputs and leaves any other value unchanged."""
    v = x * 255.0  # in x's dtype: float32 work is half the memory traffic of float64
    r = v.round()
    near = torch.lt((v - r).abs_(), 1e-3, out=torch.empty_like(v))
    v.add_(r.sub_(v).mul_(near))  # v + (r − v) = r exactly when near (Sterbenz), v + 0 = v else
    return v.to(torch.float64).div_(255.0)


def blur_to_uint8(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """np.uint8(skimage.filters.gaussian(x, sigma) * 255) as a uint8 tensor, bit-exact for 8-bit
    inputs (float64, scipy's order), in cache-sized blocks of planes on the CPU."""
    weights = gaussian_weights(sigma)
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
    tensor, offsets[b, :, i, j] = (dy, dx) drawn for pixel (d+1+i, d+1+j). Returns the indices
    (int32 while B·H·W < 2³¹, else int64), into the batch's B·H·W pixels (b·H·W + h·W + w), of
    the values from *before* the pass that the region's pixels (in raster order) end up with."""
    b = offsets.shape[0]
    dev = offsets.device
    hr, wr = height - 2 * delta, width - 2 * delta
    if offsets.shape[1:] != (2, hr, wr):
        raise ValueError(f"offsets must be (B, 2, {hr}, {wr}), got {tuple(offsets.shape)}")
    itype = torch.int32 if b * height * width < 2**31 else torch.int64
    dy, dx = offsets[:, 0].to(itype), offsets[:, 1].to(itype)
    rows = torch.arange(hr, device=dev, dtype=itype).view(hr, 1)
    cols = torch.arange(wr, device=dev, dtype=itype).view(1, wr)
    first = torch.arange(b, device=dev, dtype=itype).view(b, 1, 1) * (height * width)
    first += (delta + 1) * (width + 1)
    src = (dy * width + dx + rows * width + cols + first).view(-1)
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
    here = torch.arange(hr * wr, device=dev, dtype=itype).view(1, hr, wr)
    offset = torch.arange(b, device=dev, dtype=itype).view(b, 1) * (hr * wr)
    nxt = ((step * forward + here).view(b, -1) + offset).view(-1)
    while True:
        jumped = nxt.index_select(0, nxt)
        if torch.equal(jumped, nxt):
            break
        nxt = jumped
    return src.index_select(0, nxt)


def _pack_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W), C ≤ 3 -> int32 (B, H, W) with channel k in bits 8k..8k+7."""
    packed = x[:, 0].to(torch.int32)
    for k in range(1, x.shape[1]):
        packed.add_(x[:, k].to(torch.int32).mul_(1 << (8 * k)))
    return packed


def _unpack_pixels(packed: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of _pack_pixels."""
    return torch.stack([packed.bitwise_right_shift(8 * k).bitwise_and_(255).to(torch.uint8)
                        for k in range(channels)], dim=1)


def glass_shuffle(x: torch.Tensor, offsets: Sequence[torch.Tensor], delta: int) -> torch.Tensor:
    """Apply len(offsets) sequential glass-blur passes to (B, C, H, W) (any dtype).

    offsets[k] holds pass k's (B, 2, H−2d, W−2d) draws (see glass_pass_sources). Pixels move with
    all their channels: 8-bit pixels are packed into one int32 each (a gather of scalars), other
    dtypes move as channels-last rows of C values."""
    b, c, h, w = x.shape
    hr, wr = h - 2 * delta, w - 2 * delta
    if hr <= 0 or wr <= 0 or not offsets:
        return x.clone()
    packed = x.dtype == torch.uint8 and c <= 3
    pixels = _pack_pixels(x) if packed else x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
    flat = pixels.view(b * h * w, -1) if not packed else pixels.view(-1)
    region = pixels[:, delta + 1:h - delta + 1, delta + 1:w - delta + 1]
    for off in offsets:
        values = flat.index_select(0, glass_pass_sources(off, h, w, delta))
        region.copy_(values.view(region.shape))
    return _unpack_pixels(pixels, c) if packed else pixels.permute(0, 3, 1, 2).contiguous()


def glass_offsets(gens: Sequence[torch.Generator], iterations: int, height: int, width: int, delta: int,
                  device: torch.device) -> list[torch.Tensor]:
    """Per pass, int32 (B, 2, H−2d, W−2d) draws (dy, dx) uniform in [−d, d−1]; sample i draws
    all of its passes from gens[i] alone."""
    shape = (iterations, 2, max(height - 2 * delta, 0), max(width - 2 * delta, 0))
    draws = torch.empty((len(gens), *shape), dtype=torch.int32, device=device)

    def one(i: int) -> None:
        torch.randint(-delta, delta, shape, generator=gens[i], device=device, dtype=torch.int32, out=draws[i])

    for_each_sample(one, len(gens), device, work=draws.numel())
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
        out[i:i + step] = gaussian_filter(shuffled.to(x.dtype) / 255.0, sigma)
    return out


# --------------------------------------------------------------------------- motion blur


def motion_blur_8bit(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageNet-C motion blur of x in [0, 1] with the reference's 8-bit round trip: a uint8 PNG
    goes into ImageMagick and an 8-bit PNG comes out, so levels in, rounded (half up) levels out."""
    levels = (x * 255.0).round_().clamp_(0.0, 255.0)
    blurred = motion_blur_kernel(levels, radius, sigma, angles_deg)
    return blurred.add_(0.5).floor_().clamp_(0.0, 255.0).div_(255.0)


# --------------------------------------------------------------------------- zoom blur


def zoom_blur(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """(x + Σ_z clipped_zoom(x, z)) / (|Z| + 1): ImageNet-C zoom blur (central crop and trim)."""
    out = x.clone()
    for z in factors:
        out += x if z == 1.0 else clipped_zoom(x, float(z))
    return out.div_(len(factors) + 1)

"""Pure kernels of the ImageNet-C blur family: defocus disk, glass shuffle, motion, zoom.

- `disk_kernel` / `defocus_blur`: the anti-aliased disk (cv2.GaussianBlur on a 17×17 or (2r+1)²
  indicator, REFLECT_101) correlated with each channel like cv2.filter2D (filters.filter2d).
- `gaussian_blur`: skimage's Gaussian (`filters.gaussian_filter` semantics); on the CPU, planes of
  CV2_MIN_PIXELS or more go through cv2.sepFilter2D (same weights, BORDER_REPLICATE = scipy
  'nearest'), one sample per pool thread: twice as fast as banded matmuls at 224².
- `blur_to_uint8`: np.uint8(skimage gaussian(x) · 255) bit for bit (float64, scipy's weights and
  summation order). Glass blur truncates its first blur to uint8, so a last-ulp difference decides
  a whole grey level in flat regions; this is the only place a Gaussian is summed tap by tap.
- `glass_pass_sources` / `glass_shuffle`: the sequential, in-place pixel "swap" of glass blur
  (really a copy on RGB arrays), resolved exactly without a per-pixel loop (pointer jumping).
- `motion_blur_8bit`: ImageMagick's line kernel (kernels.motion, shared with snow) on 8-bit levels.
- `zoom_blur`: the mean of the image and its clipped zooms (kernels.warp.clipped_zoom). On the CPU
  every zoom is a pair of sparse two-tap interpolation matrices (`zoom_plan`, positions in float64
  like scipy), and up to 256² the whole blur one sparse matrix (`zoom_matrix`), applied to many
  planes at once with scipy's CSR kernel and cv2 transposes (`zoom_blur_cpu`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import scipy.sparse
import torch

from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.filters import correlate1d, filter2d, gaussian_filter, gaussian_weights, pad
from augforge.ops.image.kernels.motion import motion_blur_kernel
from augforge.ops.image.kernels.warp import clipped_zoom

CPU_BLOCK = 1 << 16  # elements per block and CPU thread of shifted-add passes (stays in cache)
GLASS_BLOCK = 1 << 17  # pixels per block and CPU thread of the glass-blur pipeline
CV2_MIN_PIXELS = 48 * 48  # plane size from which cv2.sepFilter2D beats the banded matmuls (1 thread)
ZOOM_CHUNK = 1 << 21  # input elements per chunk of the whole-matrix zoom blur (~42 planes at 224²)
ZOOM_PASS_CHUNK = 1 << 16  # the same for the separable passes (their buffers stay in the cache)
ZOOM_MATRIX_TAPS = 4  # taps per pixel and factor up to which the whole zoom blur is one matrix
ZOOM_MATRIX_MAX = 1 << 21  # and at most this many taps in all (16 MB in float32)
ZOOM_MATRIX_PIXELS = 256 * 256  # largest picture for the whole matrix (built once, ≤ 0.2 s)
ZOOM_MATRIX_MIN_PLANES = 12  # planes per thread from which the matrix beats the passes at 224²
ZOOM_FEW_PIXELS = 64 * 64  # up to this size the matrix wins even on one plane


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
    """A fresh copy of `_disk_kernel(radius, alias_sigma)` (cached: building it costs about as much
    as filtering a small batch with it)."""
    return _disk_kernel(float(radius), float(alias_sigma)).clone()


@functools.lru_cache(maxsize=64)
def _disk_kernel(radius: float, alias_sigma: float) -> torch.Tensor:
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


# --------------------------------------------------------------------------- Gaussian


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """skimage.filters.gaussian of each plane of float (B, C, H, W): `gaussian_filter(x, sigma)`.

    On the CPU, planes of CV2_MIN_PIXELS or more go through cv2.sepFilter2D with scipy's weights
    (in x's dtype) and BORDER_REPLICATE, any kernel length, one run of samples per pool thread
    (cv2 releases the GIL); results equal the matmul path up to float rounding."""
    h, w = x.shape[-2:]
    if (sigma <= 0 or not cpu_tuned(x) or h * w < CV2_MIN_PIXELS
            or x.dtype not in (torch.float32, torch.float64)):
        return gaussian_filter(x, sigma)
    src = x.detach().contiguous()
    out = torch.empty_like(src)
    k = np.asarray(gaussian_weights(sigma), dtype=np.float32 if x.dtype == torch.float32 else np.float64)
    s, d = src.numpy(), out.numpy()

    def one(i: int) -> None:
        for c in range(s.shape[1]):
            cv2.sepFilter2D(s[i, c], -1, k, k, dst=d[i, c], borderType=cv2.BORDER_REPLICATE)

    for_each_sample(one, x.shape[0], x.device, work=x.numel() * k.size)
    return out


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
        out[i:i + step] = gaussian_blur(shuffled.to(x.dtype) / 255.0, sigma)
    return out


# --------------------------------------------------------------------------- motion blur


def motion_blur_8bit(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageNet-C motion blur of x in [0, 1] with the reference's 8-bit round trip: a uint8 PNG
    goes into ImageMagick and an 8-bit PNG comes out, so levels in, rounded (half up) levels out."""
    levels = (x * 255.0).round_().clamp_(0.0, 255.0)
    blurred = motion_blur_kernel(levels, radius, sigma, angles_deg)
    return blurred.add_(0.5).floor_().clamp_(0.0, 255.0).div_(255.0)


def motion_blur_levels(x: torch.Tensor, radius: float, sigma: float,
                       angles_deg: torch.Tensor) -> torch.Tensor:
    """motion_blur_8bit on uint8 levels, uint8 out: the same float32 steps on the same levels (the
    float path's x = level/255 rounds back to them exactly), so equal to it after truncation."""
    blurred = motion_blur_kernel(x.to(torch.float32), radius, sigma, angles_deg)
    return blurred.add_(0.5).floor_().clamp_(0.0, 255.0).to(torch.uint8)


# --------------------------------------------------------------------------- zoom blur


def zoom_taps(n: int, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along a side of n pixels, clipped_zoom's two taps and the weight of the second for each of
    the n outputs: central crop c = ⌈n/z⌉ at (n−c)//2, corner-aligned zoom to m = round(c·z)
    (source position i·(c−1)/(m−1), in float64 like scipy), central trim at (m−n)//2."""
    c = math.ceil(n / factor)
    m = round(c * factor)
    start, trim = (n - c) // 2, (m - n) // 2
    scale = (c - 1) / (m - 1) if m > 1 else 0.0
    pos = (np.arange(n) + trim) * scale
    first = np.clip(np.floor(pos), 0, max(c - 2, 0)).astype(np.int64)
    second = np.minimum(first + 1, c - 1)
    return first + start, second + start, pos - first


def _zoom_matrix(n: int, factor: float, scale: float, dtype: np.dtype) -> scipy.sparse.csr_matrix:
    """CSR (output × source, n × n) of `zoom_taps(n, factor)`, weights × scale."""
    first, second, frac = zoom_taps(n, factor)
    out = np.arange(n)
    data = np.concatenate([(1.0 - frac) * scale, frac * scale])
    index = (np.concatenate([out, out]), np.concatenate([first, second]))
    return scipy.sparse.coo_matrix((data, index), (n, n)).tocsr().astype(dtype)


ZoomPlan = tuple[tuple[tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix], ...], float]


@functools.lru_cache(maxsize=64)
def zoom_plan(height: int, width: int, factors: tuple[float, ...], dtype: str) -> ZoomPlan:
    """Per factor other than 1, the sparse column zoom (W × W) and row zoom (H × H, with the
    1/(|Z|+1) of the mean); and the weight of the picture itself (factors equal to 1 and the
    picture itself)."""
    zs = [float(z) for z in factors if z != 1.0]
    norm = 1.0 / (len(factors) + 1)
    ident = (1 + len(factors) - len(zs)) * norm
    kind = np.dtype(dtype)
    mats = tuple((_zoom_matrix(width, z, 1.0, kind), _zoom_matrix(height, z, norm, kind)) for z in zs)
    return mats, ident


@functools.lru_cache(maxsize=8)
def zoom_matrix(height: int, width: int, factors: tuple[float, ...],
                dtype: str) -> scipy.sparse.csr_matrix | None:
    """The whole zoom blur of an H×W plane as one CSR ((H·W) × (H·W), row-major pixels): the
    picture's share on the diagonal plus Σ_z R_z ⊗ C_z (about 10 taps per pixel at 32², 30 at
    224² for the benchmark factors, which mostly overlap). None above ZOOM_MATRIX_PIXELS, or with
    more than ZOOM_MATRIX_TAPS·|Z| taps per pixel (large factors, where the zooms spread apart and
    the separable passes are cheaper) or ZOOM_MATRIX_MAX in all."""
    if height * width > ZOOM_MATRIX_PIXELS:
        return None
    mats, ident = zoom_plan(height, width, factors, "float64")
    total = scipy.sparse.identity(height * width, format="csr") * ident
    for cols, rows in mats:
        total = total + scipy.sparse.kron(rows, cols, format="csr")
        if total.nnz > min(ZOOM_MATRIX_TAPS * len(mats) * height * width, ZOOM_MATRIX_MAX):
            return None
    total.sum_duplicates()
    return total.astype(np.dtype(dtype))


def _accumulate_product(a: scipy.sparse.csr_matrix, x: np.ndarray, out: np.ndarray) -> None:
    """out += a @ x for C-contiguous 2-D x and out, without allocating (scipy's CSR kernel; the
    public `a @ x` allocates and zeroes a fresh result per call, which costs about as much as a
    small product)."""
    if _CSR_MATVECS is None:
        out += a @ x
        return
    _CSR_MATVECS(a.shape[0], a.shape[1], x.shape[1], a.indptr, a.indices, a.data, x.ravel(), out.ravel())


try:
    from scipy.sparse import _sparsetools

    _CSR_MATVECS = _sparsetools.csr_matvecs
except (ImportError, AttributeError):  # private scipy API: fall back to the allocating product
    _CSR_MATVECS = None


def zoom_blur_cpu(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """zoom_blur of a float CPU batch, in chunks of planes spread over the pool threads (scipy's
    sparse kernel and cv2 release the GIL), equal to the bilinear path up to float rounding.

    With `zoom_matrix`: transpose a chunk of P planes (about ZOOM_CHUNK elements; the product
    runs best on 32 or more planes side by side) to (H·W) × P, one CSR product, transpose back.
    Otherwise, per chunk (about ZOOM_PASS_CHUNK elements): transpose to W × (P·H); per factor,
    column zoom (CSR product), transpose W·P × H to H × (W·P), row zoom accumulated over the
    factors (CSR product), in cache-sized buffers reused across factors; transpose (H·W) × P back
    and add the picture's own share."""
    b, c, h, w = x.shape
    src = x.detach().contiguous()
    out = torch.empty_like(src)
    s, d = src.numpy().reshape(b * c, h * w), out.numpy().reshape(b * c, h * w)
    key = (h, w, tuple(float(z) for z in factors), str(s.dtype))
    mats, ident = zoom_plan(*key)
    threads = min(torch.get_num_threads(), b * c)
    # The matrix product runs well on many planes side by side: with few planes per thread,
    # pictures above ZOOM_FEW_PIXELS take the separable passes.
    few = b * c < ZOOM_MATRIX_MIN_PLANES * threads and h * w > ZOOM_FEW_PIXELS
    whole = zoom_matrix(*key) if mats and not few else None
    # Chunks of about ZOOM_CHUNK (ZOOM_PASS_CHUNK) elements, at least one per thread, in multiples
    # of 8 planes where possible (the product's inner loop over planes then vectorises fully).
    planes_max = max(1, (ZOOM_CHUNK if whole is not None else ZOOM_PASS_CHUNK) // (h * w))
    per = max(1, min(planes_max, -(-b * c // threads)))
    per = -(-per // 8) * 8 if per >= 8 else per
    chunks = [(i, min(b * c, i + per)) for i in range(0, b * c, per)]

    def one(k: int) -> None:
        p0, p1 = chunks[k]
        planes, p = s[p0:p1], p1 - p0
        if not mats:
            np.multiply(planes, ident, out=d[p0:p1])
            return
        if whole is not None:  # one product with the pixels of the P planes side by side
            summed_t = np.zeros((h * w, p), dtype=s.dtype)
            _accumulate_product(whole, cv2.transpose(planes), summed_t)
            cv2.transpose(summed_t, dst=d[p0:p1])
            return
        src_t = cv2.transpose(planes.reshape(p * h, w))  # (W, P·H)
        zoomed = np.empty((w, p * h), dtype=s.dtype)
        turned = np.empty((h, w * p), dtype=s.dtype)
        summed = np.zeros((h, w * p), dtype=s.dtype)
        for cols, rows in mats:
            zoomed.fill(0)
            _accumulate_product(cols, src_t, zoomed)
            cv2.transpose(zoomed.reshape(w * p, h), dst=turned)
            _accumulate_product(rows, turned, summed)
        cv2.scaleAdd(planes, ident, cv2.transpose(summed.reshape(h * w, p)), dst=d[p0:p1])

    for_each_sample(one, len(chunks), x.device, work=x.numel() * max(len(mats), 1))
    return out


def zoom_blur(x: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """(x + Σ_z clipped_zoom(x, z)) / (|Z| + 1): ImageNet-C zoom blur (central crop and trim).
    On the CPU `zoom_blur_cpu`, elsewhere one bilinear interpolation of the batch per factor."""
    if cpu_tuned(x) and x.dtype in (torch.float32, torch.float64):
        return zoom_blur_cpu(x, factors)
    out = x.clone()
    for z in factors:
        out += x if z == 1.0 else clipped_zoom(x, float(z))
    return out.div_(len(factors) + 1)

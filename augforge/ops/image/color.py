"""ImageNet-C colour corruptions: brightness, contrast, saturate (all deterministic).

Brightness and saturate edit V and S in skimage's HSV space. A 1-channel image is processed as
the RGB image with three equal channels and converted back with 0.299 R + 0.587 G + 0.114 B.
All three also take uint8 batches (Op.apply_uint8) without the float round trip: cv2 per-pixel
forms and lookup tables on the CPU, see the 8-bit section below.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from augforge.core.memory import advise_hugepages
from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.core.tensors import _TRUNCATE_SLACK
from augforge.ops.image._checks import real
from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.color import as_rgb, rgb_to_gray, scale_saturation, shift_value

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."
GRAY_NOTE = (
    "Grayscale input is processed as replicated RGB and converted back with 0.299R+0.587G+0.114B."
)


# --------------------------------------------------------------------------- kernels


def _on_rgb(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply an RGB -> RGB function; 1-channel input goes through replicated RGB and back to gray."""
    if x.shape[-3] == 3:
        return fn(x)
    return rgb_to_gray(fn(as_rgb(x)))


def brightness(x: torch.Tensor, delta: float) -> torch.Tensor:
    """RGB -> HSV, V <- clip(V + delta, 0, 1), -> RGB (in closed form: kernels.color.shift_value)."""
    return _on_rgb(x, lambda rgb: shift_value(rgb, delta))


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """(x - mean_c) · factor + mean_c with the spatial mean of each channel, clipped; formed as
    x · factor + mean_c · (1 − factor), one pass over the picture."""
    means = x.mean(dim=(-2, -1), keepdim=True)
    return torch.add(means.mul_(1.0 - factor), x, alpha=factor).clamp_(0.0, 1.0)


def saturate(x: torch.Tensor, mult: float, offset: float) -> torch.Tensor:
    """RGB -> HSV, S <- clip(S · mult + offset, 0, 1), -> RGB (in closed form:
    kernels.color.scale_saturation)."""
    return _on_rgb(x, lambda rgb: scale_saturation(rgb, mult, offset))


# --------------------------------------------------------------------------- 8-bit paths
#
# Each `*_uint8` kernel maps uint8 (B, C, H, W) levels to the levels the float path gives on x / 255
# after the reference savers' truncation floor(y·255 + slack) (Op.apply_uint8's contract).
# Brightness and saturate are per-pixel functions of 8-bit (r, g, b); their cv2 forms are checked
# against the float32 path on every input they can see (all (V, c) pairs or (V, min, c) triples)
# once per parameter set and process (~0.3 s for saturate), and a parameter set that fails the
# check takes the float route, so both equal the float32 path exactly. Contrast is a per-channel
# table of the level, evaluated in float64 from the exact integer channel sum; the float32 path
# rounds its mean and products, so a value whose exact level lies within ~1e-4 of a truncation
# boundary can land one level apart (measured: 0 of 40 M values on the test photos, 8e-6 of
# values on noisy synthetic pictures).

_LEVELS = torch.arange(256, dtype=torch.float64)
# Contrast pictures below this many pixels are mapped by a batched torch gather, not per plane.
SMALL_PIXELS = 64 * 64
# Pixels per call of a per-pixel cv2 kernel: one 224² picture, or a run of many small ones.
CHUNK_PIXELS = 1 << 16
FLOAT_BLOCK = 1 << 17
_local = threading.local()  # per-thread float32 scratch planes of the cv2 kernels


def truncate_levels(y: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 floor(y·255 + slack), the levels to_uint8(mode='truncate') gives."""
    scaled = y.clamp(0.0, 1.0).to(torch.float64).mul_(255.0).add_(_TRUNCATE_SLACK)
    return scaled.to(torch.uint8)  # truncates: floor for these non-negative values


def _via_float(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The definition of the 8-bit path: `fn` on x / 255 in float32 (as to_float), truncated to
    levels; on the CPU in blocks of about FLOAT_BLOCK elements, whose temporaries stay in cache."""
    b = x.shape[0]
    step = max(1, FLOAT_BLOCK // x[0].numel()) if x.device.type == "cpu" else b
    if step >= b:
        return truncate_levels(fn(x.float().div_(255.0)))
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    for i in range(0, b, step):
        out[i:i + step] = truncate_levels(fn(x[i:i + step].float().div_(255.0)))
    return out


def _scratch(name: str, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
    """A scratch plane owned by the calling thread, reused across images (no fresh pages); planes
    of large pictures (over 4 · CHUNK_PIXELS) are not kept."""
    if math.prod(shape) > 4 * CHUNK_PIXELS:
        return np.empty(shape, dtype=dtype)
    bufs: dict[str, np.ndarray] = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.empty(shape, dtype=dtype)
    return buf


def _planes(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(B, C, H, W) uint8 CPU tensor -> (its contiguous numpy view, an output array, the output
    as a tensor sharing that array's memory)."""
    src = x.contiguous().numpy()
    out = torch.empty(x.shape, dtype=torch.uint8)
    advise_hugepages(out)  # a large batch: fewer page faults while the kernels fill it
    return src, out.numpy(), out


def _per_chunk(x: torch.Tensor, kernel: Callable[[np.ndarray, np.ndarray], Any]
               ) -> tuple[torch.Tensor, list[tuple[int, Any]]]:
    """Run kernel(src, out) on channel-planar views (C, n, H·W) of runs of n pictures (about
    CHUNK_PIXELS pixels, at least one run per thread), several runs at once on the pool threads
    (cv2 releases the GIL). uint8 CPU (B, C, H, W) in, uint8 out, and each run's (first picture,
    kernel result)."""
    b, c, h, w = x.shape
    src, out, result = _planes(x)
    per = max(1, min(CHUNK_PIXELS // (h * w), -(-b // torch.get_num_threads())))

    def one(j: int) -> tuple[int, Any]:
        part = slice(j * per, (j + 1) * per)
        return j * per, kernel(src[part].reshape(-1, c, h * w).transpose(1, 0, 2),
                               out[part].reshape(-1, c, h * w).transpose(1, 0, 2))

    return result, for_each_sample(one, -(-b // per), work=x.numel())


def _lut_planes(x: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """out[i, c] = tables[i, c][x[i, c]] for uint8 x (B, C, H, W) and tables (B or 1, C or 1, 256)."""
    b, c, h, w = x.shape
    tables = tables.expand(b, c, 256)
    if x.device.type != "cpu" or h * w < SMALL_PIXELS:  # one batched gather
        return torch.gather(tables, 2, x.reshape(b, c, h * w).long()).view(b, c, h, w)
    src, out, result = _planes(x)
    lut = tables.contiguous().numpy()

    def one(i: int) -> None:
        for k in range(c):
            cv2.LUT(src[i, k], lut[i, k], dst=out[i, k])

    for_each_sample(one, b, work=x.numel())
    return result


# convertScaleAbs computes |k·alpha + beta| in float32 and rounds to nearest: off by at most
# about 5e-5 (levels) from the exact value for k, alpha·k, beta up to ~300. Where every level's
# exact value keeps this much more than that from a rounding boundary, it gives the exact levels.
_ROUNDING_MARGIN = 8e-5


def _contrast_table(base: float, factor: float) -> np.ndarray:
    """The 256 levels floor(clip(base + (k/255)·factor, 0, 1)·255 + slack), in float64 (one
    rounding per operation, in this order, like the batched route)."""
    y = np.clip(base + _LEVELS.numpy() / 255.0 * factor, 0.0, 1.0)
    return (y * 255.0 + _TRUNCATE_SLACK).astype(np.uint8)  # truncates


def _contrast_cv2(x: torch.Tensor, factor: float) -> torch.Tensor:
    """contrast_uint8 per picture on the pool threads (CPU, pictures of SMALL_PIXELS on): each
    plane's exact sum (cv2.sumElems), then floor(k·factor + 255·base + slack) as convertScaleAbs's
    round(k·factor + β), β = 255·base + slack − 1/2 (SIMD), for 0 <= factor <= 1 and where no
    level comes within _ROUNDING_MARGIN of a rounding boundary; else the table through cv2.LUT."""
    b, c, h, w = x.shape
    affine = 0.0 <= factor <= 1.0  # then 0 <= k·factor + 255·base <= 255: no clipping, no |·|
    fracs = sorted(math.fmod(k * factor, 1.0) for k in range(256))
    src, out, result = _planes(x)

    def clear_of_ties(beta: float) -> bool:
        t = (0.5 - beta) % 1.0  # frac(k·factor + beta) = 1/2  <=>  frac(k·factor) = t (mod 1)
        i = bisect.bisect_left(fracs, t)
        near = (fracs[i - 1], fracs[min(i, 255)], fracs[0], fracs[255])
        return min(min(abs(f - t), 1.0 - abs(f - t)) for f in near) > _ROUNDING_MARGIN

    def one(i: int) -> None:
        for k in range(c):
            # the float path's order: mean · (1 − factor) + x · factor
            base = cv2.sumElems(src[i, k])[0] / (h * w * 255.0) * (1.0 - factor)
            beta = base * 255.0 + (_TRUNCATE_SLACK - 0.5)
            if affine and clear_of_ties(beta):
                cv2.convertScaleAbs(src[i, k], dst=out[i, k], alpha=factor, beta=beta)
            else:
                cv2.LUT(src[i, k], _contrast_table(base, factor), dst=out[i, k])

    for_each_sample(one, b, work=x.numel())
    return result


def contrast_uint8(x: torch.Tensor, factor: float) -> torch.Tensor:
    """contrast() on uint8 levels: each channel's mean is an exact integer sum / (N · 255), so the
    output is a 256-entry table of the input level per channel, computed in float64 (the levels of
    the exact value truncated like to_uint8). Large CPU pictures: see _contrast_cv2; else one
    batched gather."""
    b, c, h, w = x.shape
    if x.device.type == "cpu" and h * w >= SMALL_PIXELS:
        return _contrast_cv2(x, factor)
    wide = torch.int32 if h * w < 1 << 23 else torch.int64  # exact integer sums
    means = x.reshape(b, c, h * w).sum(dim=-1, dtype=wide, keepdim=True).double().div_(h * w * 255.0)
    base = means.mul_(1.0 - factor)  # the float path's order: mean · (1 − factor) + x · factor
    # the same float64 operations as _contrast_table (so both routes give the same levels)
    return _lut_planes(x, truncate_levels(base + _LEVELS.to(x.device) / 255.0 * factor))


def _gray_uint8(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A 1-channel op that is a function of the level alone: its float path on the 256 levels,
    applied as a table (exact by construction)."""
    table = _via_float(torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256), fn)
    return _lut_planes(x, table.view(1, 1, 256).to(x.device))


def _brightness_tables(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """(ratio, black): ratio[V] ≈ clip(V + 255·delta, 0, 255) / V (float32, nudged up by 1e-6 so
    that float32 rounding never lands an exact level just below it), and black[0] the level of
    a black pixel's new value (black[V > 0] = 0)."""
    v = _LEVELS
    ratio = (v + 255.0 * delta).clamp_(0.0, 255.0).div_(v.clamp(min=1.0)).mul_(1.0 + 1e-6)
    black = torch.zeros(256, dtype=torch.uint8)
    black[0] = truncate_levels(torch.tensor(delta, dtype=torch.float64))
    return ratio.float().numpy(), black.numpy()


def _brightness_cv2(src: np.ndarray, out: np.ndarray, ratio: np.ndarray, black: np.ndarray) -> None:
    """uint8 RGB planes (3, n, P): channel c -> trunc(c · ratio[V]) with V = max(r, g, b); black
    pixels (V = 0) take black[0]."""
    v = _scratch("v", src.shape[1:], np.uint8)
    cv2.max(cv2.max(src[0], src[1], dst=v), src[2], dst=v)
    scale = cv2.LUT(v, ratio, dst=_scratch("scale", v.shape))
    buf = _scratch("product", v.shape)
    for k in range(3):
        cv2.multiply(src[k], scale, dst=buf, dtype=cv2.CV_32F)
        np.copyto(out[k], buf, casting="unsafe")  # float -> uint8 truncates
    if black[0] and cv2.minMaxLoc(v)[0] == 0:
        fill = cv2.LUT(v, black)
        for k in range(3):
            cv2.max(out[k], fill, dst=out[k])


def _brightness_fast(x: torch.Tensor, delta: float) -> torch.Tensor:
    ratio, black = _brightness_tables(delta)
    return _per_chunk(x, lambda src, out: _brightness_cv2(src, out, ratio, black))[0]


def _all_pairs() -> torch.Tensor:
    """uint8 (128, 3, 1, 257): every (V, c) with c <= V as pixels (V, c, 0), 32 896 of them (a
    batch of small pictures, so that the float route runs in cache-sized blocks)."""
    v, c = torch.tril_indices(256, 256)
    pixels = torch.stack((v, c, torch.zeros_like(v)), dim=1).to(torch.uint8)
    return pixels.view(128, 257, 3, 1).permute(0, 2, 3, 1)


_EXACT: dict[tuple[Any, ...], bool] = {}


def _fast_is_exact(key: tuple[Any, ...], probe: Callable[[], torch.Tensor],
                   fast: Callable[[torch.Tensor], torch.Tensor],
                   slow: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Whether `fast` equals `slow` on the probe batch (every input a per-pixel kernel can see);
    remembered per key."""
    if key not in _EXACT:
        pixels = probe()
        _EXACT[key] = bool(torch.equal(fast(pixels), slow(pixels)))
    return _EXACT[key]


def brightness_uint8(x: torch.Tensor, delta: float) -> torch.Tensor:
    """brightness() on uint8 levels. RGB: every channel is c · V'/V, a function of (V, c), done with
    cv2 (checked against the float path on all (V, c) first); gray: a 256-entry table."""
    if x.shape[1] == 1:
        return _gray_uint8(x, lambda f: brightness(f, delta))
    slow = lambda u: _via_float(u, lambda f: brightness(f, delta))  # noqa: E731
    if x.device.type == "cpu" and _fast_is_exact(
        ("brightness", delta), _all_pairs, lambda u: _brightness_fast(u, delta), slow
    ):
        return _brightness_fast(x, delta)
    return slow(x)


# Saturate's fast form adds this to the exact value before truncating (instead of the savers'
# 1e-4): its float32 error stays below ~1e-4 levels, and with the reference constants the exact
# values that are not whole levels stay over 3.9e-4 below the next one (denominators <= 2550).
_SATURATE_BIAS = 2e-4


def _saturate_cv2(src: np.ndarray, out: np.ndarray, mult: float, offset: float,
                  grey: np.ndarray) -> np.ndarray:
    """uint8 RGB planes (3, n, P): with V, m the max and min levels and d = V − m, every
    channel becomes V − (V − c)·k, k = S'/S = min(max(mult + offset·V/d, 0), V/d); grey pixels
    (d = 0, where V − c = 0) keep V in R and take grey[V] in G and B. Returns the V planes."""
    shape = src.shape[1:]
    v, d, gap = (_scratch(n, shape, np.uint8) for n in ("v", "d", "gap"))
    cv2.max(cv2.max(src[0], src[1], dst=v), src[2], dst=v)
    if offset == 0.0 and mult <= 1.0:  # k = mult everywhere: floor(V·(1 − mult) + c·mult + bias)
        for c in range(3):  # as round(· − 1/2), in one cv2 pass per channel
            cv2.addWeighted(v, 1.0 - mult, src[c], mult, _SATURATE_BIAS - 0.5, dst=out[c], dtype=cv2.CV_8U)
        return v
    q, k, top = (_scratch(n, shape) for n in ("q", "k", "top"))
    cv2.subtract(v, cv2.min(cv2.min(src[0], src[1], dst=d), src[2], dst=d), dst=d)
    cv2.divide(v, cv2.max(d, 1, dst=gap), dst=q, dtype=cv2.CV_32F)  # V / d (V on grey pixels)
    if offset == 0.0:
        cv2.min(q, mult, dst=k)
    else:
        cv2.addWeighted(q, offset, q, 0.0, mult, dst=k)
        if offset < 0.0:
            cv2.max(k, 0.0, dst=k)
        cv2.min(k, q, dst=k)
    cv2.add(v, _SATURATE_BIAS, dst=top, dtype=cv2.CV_32F)
    for c in range(3):
        cv2.multiply(cv2.subtract(v, src[c], dst=gap), k, dst=q, dtype=cv2.CV_32F)
        np.copyto(out[c], cv2.subtract(top, q, dst=q), casting="unsafe")  # truncates
    if grey[255] != 255 and cv2.countNonZero(d) < d.size:
        cap = cv2.max(cv2.LUT(v, grey, dst=gap), cv2.compare(d, 0, cv2.CMP_NE), dst=gap)
        for c in (1, 2):  # grey[V] on grey pixels, 255 elsewhere
            cv2.min(out[c], cap, dst=out[c])
    return v


def _saturate_fast(x: torch.Tensor, mult: float, offset: float, patch: tuple[int, int] | None = None,
                   slow: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The cv2 form on a uint8 CPU batch; with `patch` = (lo, hi) and `slow`, pixels whose max
    level lies in lo..hi are then recomputed by `slow` (the float route), all in one call."""
    # a grey pixel's G and B: floor(V·(1 − S') + slack) with S' = clip(offset, 0, 1)
    grey = truncate_levels(_LEVELS / 255.0 * (1.0 - min(max(offset, 0.0), 1.0))).numpy()

    def kernel(src: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, ...] | None:
        v = _saturate_cv2(src, out, mult, offset, grey)
        if patch is None:
            return None
        mask = cv2.inRange(v, *patch)
        if not cv2.countNonZero(mask):
            return None
        points = cv2.findNonZero(mask).reshape(-1, 2)  # (x, y) = (pixel, picture in the run)
        return points[:, 1].astype(np.int64), points[:, 0].astype(np.int64)

    out, hits = _per_chunk(x, kernel)
    found = [(first + torch.from_numpy(rc[0]), torch.from_numpy(rc[1])) for first, rc in hits if rc]
    if found and slow is not None:
        b, c, h, w = x.shape
        pictures, pixels = (torch.cat(t) for t in zip(*found, strict=True))
        chosen = x.reshape(b, c, h * w)[pictures, :, pixels]  # (N, 3)
        out.view(b, c, h * w)[pictures, :, pixels] = slow(chosen.T.reshape(1, c, 1, -1)).view(c, -1).T
    return out


def _all_triples() -> torch.Tensor:
    """uint8 (11008, 3, 1, 257): every (V, c, m) with m <= c <= V as pixels, 2 829 056 of them."""
    v, c = torch.tril_indices(256, 256)
    reps = c + 1  # m runs over 0..c
    m = torch.arange(int(reps.sum())) - torch.repeat_interleave(reps.cumsum(0) - reps, reps)
    v, c = torch.repeat_interleave(v, reps), torch.repeat_interleave(c, reps)
    return torch.stack((v, c, m), dim=1).to(torch.uint8).view(11008, 257, 3, 1).permute(0, 2, 3, 1)


# Parameter sets whose cv2 form differs from the float path on a few triples get those pixels
# recomputed by the float route, when the triples' max levels V span at most this many levels.
_MAX_PATCHED_LEVELS = 8
_SATURATE_PATCH: dict[tuple[float, float], tuple[int, int] | None] = {}


def _saturate_patch(mult: float, offset: float, slow: Callable[[torch.Tensor], torch.Tensor]
                    ) -> tuple[int, int] | None:
    """(lo, hi): the range of max levels V of the (V, c, m) triples where the cv2 form differs
    from the float path ((1, 0), an empty range, where none do), or None where the range is too
    wide to patch; checked once per parameter set and process."""
    key = (mult, offset)
    if key not in _SATURATE_PATCH:
        pixels = _all_triples()
        differs = (_saturate_fast(pixels, mult, offset) != slow(pixels)).any(dim=1)
        levels = pixels[:, 0][differs]
        if not len(levels):
            _SATURATE_PATCH[key] = (1, 0)
        else:
            lo, hi = int(levels.min()), int(levels.max())
            _SATURATE_PATCH[key] = (lo, hi) if hi - lo < _MAX_PATCHED_LEVELS else None
    return _SATURATE_PATCH[key]


def saturate_uint8(x: torch.Tensor, mult: float, offset: float) -> torch.Tensor:
    """saturate() on uint8 levels. RGB: every channel is a function of (V, min, c), done with cv2
    (checked against the float path on all such triples first; pixels of the few max levels where
    it differs, if any, are recomputed by the float route); gray: a 256-entry table."""
    if x.shape[1] == 1:
        return _gray_uint8(x, lambda f: saturate(f, mult, offset))
    slow = lambda u: _via_float(u, lambda f: saturate(f, mult, offset))  # noqa: E731
    patch = _saturate_patch(mult, offset, slow) if x.device.type == "cpu" else None
    if patch is None:
        return slow(x)
    return _saturate_fast(x, mult, offset, patch if patch[0] <= patch[1] else None, slow)


# --------------------------------------------------------------------------- registered ops


@register_op(
    "brightness",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="HSV value shift V + delta (skimage rgb2hsv/hsv2rgb semantics), clipped. "
    + GRAY_NOTE + " " + PRESET_NOTE,
    tags=("weather", "imagenet-c"),
)
class Brightness(Op):
    """Brighten by shifting the HSV value channel (ImageNet-C brightness)."""

    CPU_BLOCK = 1 << 17  # one 224² image: its many HSV temporaries then stay in the cache
    PARAMS: ClassVar[tuple[str, ...]] = ("delta",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
        "cifar": [(0.05,), (0.1,), (0.15,), (0.2,), (0.3,)],
        "tiny": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"delta": real(self.name, "delta", params["delta"], lo=-1.0, hi=1.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return brightness(x, self.params["delta"])

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return brightness_uint8(x, self.params["delta"])


@register_op(
    "contrast",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="(x - mean) · factor + mean with the per-channel spatial mean, clipped (for one channel "
    "this equals the replicated-RGB route). The 8-bit path computes in float64 from the exact "
    "integer channel sums, so it equals the float64 path; the float32 path can land one level "
    "lower or higher where a value sits within ~1e-4 of a level boundary (measured: 8e-6 of "
    "values on noise pictures, none on photos). " + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class Contrast(Op):
    """Reduce contrast towards each channel's mean (ImageNet-C contrast)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("factor",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
        "cifar": [(0.75,), (0.5,), (0.4,), (0.3,), (0.15,)],
        "tiny": [(0.4,), (0.3,), (0.2,), (0.1,), (0.05,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"factor": real(self.name, "factor", params["factor"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return contrast(x, self.params["factor"])

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return contrast_uint8(x, self.params["factor"])


@register_op(
    "saturate",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="HSV saturation S · mult + offset (skimage semantics), clipped; an ImageNet-C 'extra' "
    "corruption. " + GRAY_NOTE + " " + PRESET_NOTE,
    tags=("digital", "imagenet-c", "extra"),
)
class Saturate(Op):
    """Scale and shift HSV saturation (ImageNet-C saturate)."""

    CPU_BLOCK = 1 << 17  # one 224² image: its many HSV temporaries then stay in the cache
    PARAMS: ClassVar[tuple[str, ...]] = ("mult", "offset")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
        "cifar": [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
        "tiny": [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (30.0, 0.2)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "mult": real(self.name, "mult", params["mult"], lo=0.0),
            "offset": real(self.name, "offset", params["offset"], lo=-1.0, hi=1.0),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return saturate(x, self.params["mult"], self.params["offset"])

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return saturate_uint8(x, self.params["mult"], self.params["offset"])

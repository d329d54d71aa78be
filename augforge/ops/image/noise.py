"""ImageNet-C noise corruptions: gaussian, shot (Poisson), impulse (salt & pepper), speckle.

Every draw is i.i.d. per pixel *and* per channel, as in the reference (numpy draws of the full
H×W×C shape). Sample i draws only from gens[i], so its output does not depend on the batch.

All four ops also take uint8 (B, C, H, W) batches and return uint8 (Op.apply_uint8): the float
result on x / 255 truncated like the reference savers, computed block by block without a float
batch. Shot noise draws the counts of a sample whose values are all 8-bit levels by table
inversion (one uniform word per element; the law of torch.poisson to 2⁻³² per probability, several
times faster), in both paths, so they agree there too.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.special
import torch

from augforge.core.memory import empty_like
from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.core.tensors import _TRUNCATE_SLACK
from augforge.ops.image._checks import real
from augforge.ops.image._threads import SERIAL_CHUNK, draw, for_each_sample

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."


# --------------------------------------------------------------------------- kernels


def _per_sample(x: torch.Tensor, gens: Sequence[torch.Generator], kind: str) -> torch.Tensor:
    """One (C, H, W) draw per sample from its own generator: 'normal' N(0, 1) or 'uniform' U[0, 1)
    (the numbers torch.randn / torch.rand would give) in x's dtype, or 'bits' (int32 words of 32
    uniform bits, _threads.draw), drawn on several threads."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    return draw(tuple(x.shape[1:]), list(gens), kind, device=x.device, dtype=x.dtype)


def _gaussian(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """x + N(0, sigma²), not clipped (the registered op's base class clips)."""
    return _per_sample(x, gens, "normal").mul_(sigma).add_(x)


def _speckle(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """x + x · N(0, sigma²), not clipped."""
    return _per_sample(x, gens, "normal").mul_(sigma).mul_(x).add_(x)


def gaussian_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + N(0, sigma²))."""
    return _gaussian(x, sigma, gens).clamp_(0.0, 1.0)


def speckle_noise(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(x + x · N(0, sigma²)): multiplicative noise."""
    return _speckle(x, sigma, gens).clamp_(0.0, 1.0)


def shot_noise(x: torch.Tensor, lam: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """clip(Poisson(lam · x) / lam): photon noise, milder for larger lam.

    A sample whose values are all 8-bit levels k/255 (as to_float makes them) draws its counts by
    table inversion (_ShotTables: one uniform word per element, same law as torch.poisson up to
    2⁻³² per probability, several times faster), exactly as the 8-bit path does, so both paths
    agree; any other sample goes through torch.poisson. The choice is made per sample."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    tables = _shot_tables(float(lam), x.dtype, x.device) if lam <= _MAX_TABLE_LAM else None
    if tables is None:
        return _poisson(x, lam, gens).div_(lam).clamp_(0.0, 1.0)
    k = torch.round(x * 255.0)
    on_levels = (k.div(255.0) == x).flatten(1).all(1).tolist()
    if all(on_levels):
        counts = tables.counts.sample(_per_sample(x, gens, "bits").view(-1), k.view(-1))
        return counts.view(x.shape).to(x.dtype).div_(lam).clamp_(0.0, 1.0)
    out = torch.empty_like(x)
    for flag in (True, False):
        rows = [i for i, f in enumerate(on_levels) if f == flag]
        if rows:
            out[rows] = shot_noise(x[rows], lam, [gens[i] for i in rows]) if flag else \
                _poisson(x[rows], lam, [gens[i] for i in rows]).div_(lam).clamp_(0.0, 1.0)
    return out


def _poisson(x: torch.Tensor, lam: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """Poisson(lam · x) counts (torch.poisson) in x's dtype, sample i from gens[i]."""
    rates = x * lam
    # On the CPU, chunk by chunk in order is the same stream as one call, and chunks below torch's
    # parallel grain keep the sampler's output allocation serial on the pool thread (_threads).
    chunk = SERIAL_CHUNK if x.device.type == "cpu" else rates[0].numel()

    def one(i: int) -> list[torch.Tensor]:
        return [torch.poisson(part, generator=gens[i]) for part in rates[i].reshape(-1).split(chunk)]

    # each Poisson number costs about as much as ten uniform draws
    counts = [c for chunks in for_each_sample(one, len(gens), x.device, work=10 * x.numel()) for c in chunks]
    return torch.cat(counts).view_as(x)


def _impulse_thresholds(amount: float) -> tuple[int, int]:
    """(salt, hit) word thresholds: a uniform 32-bit word w (read as signed int32; u = (w + 2³¹)/2³²
    is uniform on [0, 1) in steps of 2⁻³²) means salt iff w < salt, hit iff w < hit, i.e.
    u < amount/2 and u < amount up to 2⁻³²: P(hit) = ceil(amount · 2³²) / 2³²."""
    return tuple(math.ceil(p * 2.0**32) - 2**31 for p in (0.5 * amount, amount))  # type: ignore[return-value]


def impulse_noise(x: torch.Tensor, amount: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """skimage `random_noise(mode='s&p', amount)`: each element is hit with probability `amount`;
    a hit becomes 1 or 0 with equal odds. One uniform 32-bit word per element (half the cost of a
    float draw): u < amount/2 salt, u < amount pepper (see _impulse_thresholds).
    Written as x·[not hit] + [salt] with float 0/1 masks: exact, and much cheaper on the CPU than
    two where()s."""
    w = _per_sample(x, gens, "bits")
    salt, hit = _impulse_thresholds(amount)
    out = _not_hit(w, hit, torch.empty_like(x)).mul_(x)
    salted = w if x.dtype == torch.float32 else torch.empty_like(x)  # reuse the words' memory
    return out.add_(torch.lt(w, salt, out=salted.view(x.dtype)))


def _not_hit(w: torch.Tensor, hit: int, out: torch.Tensor) -> torch.Tensor:
    """out = [w ≥ hit] (hit = 2³¹, amount 1, is past every int32 word: nothing is kept)."""
    return out.zero_() if hit > torch.iinfo(torch.int32).max else torch.ge(w, hit, out=out)


# --------------------------------------------------------------------------- 8-bit paths
# uint8 (B, C, H, W) levels in, uint8 out: the float kernel on x / 255 (to_float), clipped and
# truncated as the reference savers do (to_uint8 'truncate': floor(255·y + 1e-4)), without the
# float batch in memory, from the same draws as the float path (shot noise: the same words, whose
# output levels it looks up directly, _ShotTables).

# Elements per block (Op.CPU_BLOCK for the float path): at 224² one picture per thread, so each
# temporary (about 0.6 MB) stays in the L2 cache and is recycled by malloc instead of being
# page-faulted in afresh; 4x larger blocks measured 2-3x slower per pass on the noise kernels.
BLOCK = 1 << 17


def _levels(x: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 k / 255, exactly as to_float computes them."""
    return x.float().div_(255.0)


def _truncate(y: torch.Tensor, out: torch.Tensor, wide: torch.Tensor) -> torch.Tensor:
    """out = floor(255·clip(y, 0, 1) + 1e-4), exactly as to_uint8: in float64 (the buffer `wide`,
    y's shape; reused, as a fresh one costs twice the arithmetic), where 255·y is exact for float32
    y (in float32 arithmetic 139 of the 1.07e9 floats in [0, 1] would land one level off)."""
    wide.copy_(y.clamp_(0.0, 1.0))
    return out.copy_(wide.mul_(255.0).add_(_TRUNCATE_SLACK))


Block = Callable[[torch.Tensor, Sequence[torch.Generator], torch.Tensor, torch.Tensor], object]


def _by_blocks(x: torch.Tensor, gens: Sequence[torch.Generator], fn: Block) -> torch.Tensor:
    """out[i:j] filled by fn(x[i:j], gens[i:j], out[i:j], wide), about BLOCK elements per block on
    the CPU (rounded to the thread count, which the draws are split over), the whole batch
    elsewhere; `wide` is a float64 buffer of the block's shape, the same memory for every block."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    b = x.shape[0]
    threads = torch.get_num_threads()
    step = b if x.device.type != "cpu" else -(-max(1, BLOCK // x[0].numel()) // threads) * threads
    out = empty_like(x)
    wide = torch.empty((min(step, b), *x.shape[1:]), dtype=torch.float64, device=x.device)
    for i in range(0, b, step):
        fn(x[i:i + step], gens[i:i + step], out[i:i + step], wide[:min(step, b - i)])
    return out


def _via_float(kernel: Callable[[torch.Tensor, Sequence[torch.Generator]], torch.Tensor]) -> Block:
    """The block function of an 8-bit path that runs the float kernel on the levels, then truncates."""
    return lambda xb, g, out, wide: _truncate(kernel(_levels(xb), g), out, wide)


def gaussian_noise_uint8(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """gaussian_noise on uint8 levels (same draws), truncated to uint8."""
    if _per_picture(x):
        return _normal_noise_per_picture(x, sigma, gens, speckle=False)
    return _by_blocks(x, gens, _via_float(lambda v, g: _gaussian(v, sigma, g)))


def speckle_noise_uint8(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """speckle_noise on uint8 levels (same draws), truncated to uint8."""
    if _per_picture(x):
        return _normal_noise_per_picture(x, sigma, gens, speckle=True)
    return _by_blocks(x, gens, _via_float(lambda v, g: _speckle(v, sigma, g)))


# From this many values a picture, with several torch threads, the CPU 8-bit Gaussian/speckle paths
# run picture by picture on the pool threads (draw + numpy arithmetic, all serial): the blocked
# torch path's short parallel passes barely used the second core (1.1x at 224², now 1.35-1.9x).
PER_PICTURE_MIN = 1 << 14


def _per_picture(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x[0].numel() >= PER_PICTURE_MIN and x.shape[0] > 1
            and torch.get_num_threads() > 1)  # on one thread the blocked torch path is cheaper


@functools.cache
def _level_table() -> np.ndarray:
    """float32 k / 255 for k = 0..255, computed by torch exactly as _levels / to_float do."""
    return _levels(torch.arange(256, dtype=torch.uint8)).numpy()


def _normal_noise_per_picture(x: torch.Tensor, sigma: float, gens: Sequence[torch.Generator], *,
                              speckle: bool) -> torch.Tensor:
    """The 8-bit Gaussian / speckle path one picture per task: the same torch draw (one normal_
    on the picture's (C, H, W), as _per_sample), then the float path's float32 steps and the
    float64 truncation of _truncate in numpy (same IEEE operations in the same order, so the same
    bits; a test compares the paths), each picture on one thread."""
    if len(gens) != x.shape[0]:
        raise ValueError(f"need one generator per sample: {len(gens)} for a batch of {x.shape[0]}")
    src = x.detach().contiguous().numpy()
    out = np.empty_like(src)
    levels_of = _level_table()
    s32 = np.float32(sigma)
    shape = tuple(x.shape[1:])

    def one(i: int) -> None:
        noise = torch.empty(shape, dtype=torch.float32)
        noise.normal_(generator=gens[i])
        n = noise.numpy()
        v = levels_of[src[i]]
        np.multiply(n, s32, out=n)
        if speckle:
            np.multiply(n, v, out=n)
        np.add(n, v, out=n)
        np.clip(n, np.float32(0.0), np.float32(1.0), out=n)
        wide = n.astype(np.float64)
        np.multiply(wide, 255.0, out=wide)
        np.add(wide, _TRUNCATE_SLACK, out=wide)
        np.copyto(out[i], wide, casting="unsafe")

    for_each_sample(one, len(gens), x.device)
    return torch.from_numpy(out)


def impulse_noise_uint8(x: torch.Tensor, amount: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """impulse_noise on uint8 levels (same draws): kept levels unchanged, salt 255, pepper 0."""
    salt, hit = _impulse_thresholds(amount)

    def block(xb: torch.Tensor, g: Sequence[torch.Generator], out: torch.Tensor, _: torch.Tensor) -> None:
        # 0/1 uint8 masks and uint8 arithmetic: several times cheaper on the CPU than bool masks,
        # masked_fill_ or where (salt ⊂ hit, so the salted elements are 0 before the OR)
        w = _per_sample(xb, g, "bits")
        mask = _not_hit(w, hit, torch.empty_like(xb))
        torch.mul(xb, mask, out=out)
        out.bitwise_or_(torch.lt(w, salt, out=mask).neg_())  # 1 -> 255

    return _by_blocks(x, gens, block)


_BUCKET_SHIFT = 20  # the top 32 - 20 = 12 bits of a word pick one of 4096 buckets per input level
_BUCKETS = 1 << (32 - _BUCKET_SHIFT)
_MAX_TABLE_LAM = 1024  # beyond this the tables grow large: both paths use torch.poisson


class _Inverter:
    """Inverse-CDF sampling of a value V in 0..J for each input level k from a uniform word w (int32,
    read as u = (w + 2³¹)/2³²): V = #{j < J : w ≥ thr[k, j]}, thr nondecreasing in j.

    entry[k·4096 + b] = V at the start of word bucket b (top 12 bits), or V − 32768 (negative)
    where a threshold falls inside the bucket; top[k·4096 + b] = V at the bucket's end. A lookup
    decides most words; the others are finished by a binary search over their bucket's values."""

    def __init__(self, thr: torch.Tensor, device: torch.device) -> None:
        starts = (torch.arange(_BUCKETS, dtype=torch.int64) << _BUCKET_SHIFT) - 2**31
        lo = torch.searchsorted(thr, starts.expand(256, -1).contiguous(), right=True)
        hi = torch.searchsorted(thr, (starts + (1 << _BUCKET_SHIFT) - 1).expand(256, -1).contiguous(),
                                right=True)
        self.width = thr.shape[1] + 1
        self.entry = torch.where(lo == hi, lo, lo - 32768).to(torch.int16).view(-1).to(device)
        self.top = hi.to(torch.int16).view(-1).to(device)
        never = torch.full((256, 1), 2**31, dtype=torch.int64)  # thr[k, J]: past every word
        self.thr = torch.cat([thr, never], dim=1).view(-1).to(device)

    def sample(self, w: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """V (int16) for flat words w (int32) at flat levels k (any integer dtype)."""
        bucket = torch.add(w >> _BUCKET_SHIFT, k.int(), alpha=_BUCKETS).add_(_BUCKETS // 2)
        v = self.entry.index_select(0, bucket)
        pos = torch.nonzero(v < 0).squeeze(1)
        if pos.numel() == 0:
            return v
        ww, base = w[pos].long(), k[pos].long() * self.width - 1
        lo = v[pos].long() + 32768
        hi = self.top.index_select(0, bucket[pos]).long()
        while True:  # invariant: lo ≤ V ≤ hi; V ≥ m iff w ≥ thr[k, m − 1]; at most 11 rounds
            undecided = lo < hi
            if not bool(undecided.any()):
                break
            mid = (lo + hi + 1) >> 1
            up = ww >= self.thr.index_select(0, (base + mid).clamp_(min=0))
            lo = torch.where(undecided & up, mid, lo)
            hi = torch.where(undecided & ~up, mid - 1, hi)
        v[pos] = lo.to(torch.int16)
        return v


class _ShotTables:
    """Shot noise by table inversion for inputs on the 8-bit levels k/255, at one lam and dtype.

    The float path computes rate_k = (k/255)·lam in the input dtype, count ~ Poisson(rate_k),
    y = clip(count / lam) and the savers' level L = trunc(255·y); every count ≥ C = ceil(lam) gives
    y = 1, so counts are drawn capped at C: thr[k, c] = ceil(P(count ≤ c)·2³²) − 2³¹ for c < C,
    from the regularised upper incomplete gamma Q(c + 1, rate_k) (scipy, float64). That is the law
    of the capped count up to 2⁻³² per probability. L is nondecreasing in the count, so the 8-bit
    path inverts L directly with the thresholds at c_j, the largest count of level ≤ j: for any
    word it gives exactly the level of the count the float path gets from that word. Each
    inverter is built on first use (about 4 MB of tables)."""

    def __init__(self, lam: float, dtype: torch.dtype, device: torch.device) -> None:
        cap = max(1, math.ceil(lam))
        levels = torch.arange(256, dtype=torch.uint8).to(dtype).div_(255.0)  # as to_float (float32)
        rates = (levels * lam).double()  # as _poisson computes them
        c = torch.arange(cap, dtype=torch.float64)
        # scipy's Q is accurate to float64 rounding here (torch.special.gammaincc was 4e-10 off)
        cdf = torch.from_numpy(scipy.special.gammaincc((c + 1).numpy()[None, :], rates.numpy()[:, None]))
        thr = torch.cummax(torch.ceil(cdf * 2.0**32).long() - 2**31, dim=1).values
        count_level = torch.arange(cap + 1, dtype=dtype).div(lam).clamp_(0.0, 1.0).double()
        count_level = count_level.mul_(255.0).add_(_TRUNCATE_SLACK).floor_()
        self.last = torch.searchsorted(count_level, torch.arange(255, dtype=torch.float64), right=True) - 1
        self.thr, self.device = thr, device

    @functools.cached_property
    def counts(self) -> _Inverter:
        """The capped count C' = min(count, C) (the float path)."""
        return _Inverter(self.thr, self.device)

    @functools.cached_property
    def levels(self) -> _Inverter:
        """The output level L (the 8-bit path)."""
        return _Inverter(self.thr[:, self.last].contiguous(), self.device)


@functools.lru_cache(maxsize=8)
def _shot_tables(lam: float, dtype: torch.dtype, device: torch.device) -> _ShotTables:
    return _ShotTables(lam, dtype, device)


def shot_noise_uint8(x: torch.Tensor, lam: float, gens: Sequence[torch.Generator]) -> torch.Tensor:
    """shot_noise on uint8 levels, truncated to uint8: the same words as the float path give the
    same levels (_ShotTables), without the counts."""
    if lam > _MAX_TABLE_LAM:
        return _by_blocks(x, gens, _via_float(lambda v, g: shot_noise(v, lam, g)))
    tables = _shot_tables(float(lam), torch.float32, x.device)

    def block(xb: torch.Tensor, g: Sequence[torch.Generator], out: torch.Tensor, _: torch.Tensor) -> None:
        w = _per_sample(xb, g, "bits").view(-1)
        out.view(-1).copy_(tables.levels.sample(w, xb.reshape(-1)))

    return _by_blocks(x, gens, block)


# --------------------------------------------------------------------------- registered ops


@register_op(
    "gaussian_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="x + N(0, sigma²) i.i.d. per pixel and channel, clipped to [0, 1]. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class GaussianNoise(Op):
    """Additive Gaussian noise (ImageNet-C gaussian_noise)."""

    CPU_BLOCK = BLOCK
    PARAMS: ClassVar[tuple[str, ...]] = ("sigma",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.08,), (0.12,), (0.18,), (0.26,), (0.38,)],
        "cifar": [(0.04,), (0.06,), (0.08,), (0.09,), (0.10,)],
        "tiny": [(0.04,), (0.08,), (0.12,), (0.15,), (0.18,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": real(self.name, "sigma", params["sigma"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return _gaussian(x, self.params["sigma"], gens)  # the base class clips

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return gaussian_noise_uint8(x, self.params["sigma"], gens)


@register_op(
    "shot_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="Poisson(lam·x)/lam i.i.d. per pixel and channel (torch.poisson), clipped; larger lam = "
    "milder. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class ShotNoise(Op):
    """Poisson photon noise (ImageNet-C shot_noise)."""

    CPU_BLOCK = BLOCK
    PARAMS: ClassVar[tuple[str, ...]] = ("lam",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(60,), (25,), (12,), (5,), (3,)],
        "cifar": [(500,), (250,), (100,), (75,), (50,)],
        "tiny": [(250,), (100,), (50,), (30,), (15,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"lam": real(self.name, "lam", params["lam"], lo=0.0, lo_open=True)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return shot_noise(x, self.params["lam"], gens)

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return shot_noise_uint8(x, self.params["lam"], gens)


@register_op(
    "impulse_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="Salt & pepper as skimage random_noise(mode='s&p'): each pixel and channel is hit with "
    "probability `amount`, a hit is 0 or 1 with equal odds. " + PRESET_NOTE,
    tags=("noise", "imagenet-c"),
)
class ImpulseNoise(Op):
    """Salt-and-pepper noise (ImageNet-C impulse_noise)."""

    CPU_BLOCK = BLOCK
    PARAMS: ClassVar[tuple[str, ...]] = ("amount",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.03,), (0.06,), (0.09,), (0.17,), (0.27,)],
        "cifar": [(0.01,), (0.02,), (0.03,), (0.05,), (0.07,)],
        "tiny": [(0.01,), (0.02,), (0.05,), (0.08,), (0.14,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"amount": real(self.name, "amount", params["amount"], lo=0.0, hi=1.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return impulse_noise(x, self.params["amount"], gens)

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return impulse_noise_uint8(x, self.params["amount"], gens)


@register_op(
    "speckle_noise",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes="x + x·N(0, sigma²) i.i.d. per pixel and channel, clipped (an ImageNet-C 'extra' "
    "corruption). " + PRESET_NOTE,
    tags=("noise", "imagenet-c", "extra"),
)
class SpeckleNoise(Op):
    """Multiplicative speckle noise (ImageNet-C speckle_noise)."""

    CPU_BLOCK = BLOCK
    PARAMS: ClassVar[tuple[str, ...]] = ("sigma",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.15,), (0.20,), (0.35,), (0.45,), (0.60,)],
        "cifar": [(0.06,), (0.10,), (0.12,), (0.16,), (0.20,)],
        "tiny": [(0.15,), (0.20,), (0.25,), (0.30,), (0.35,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sigma": real(self.name, "sigma", params["sigma"], lo=0.0)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return _speckle(x, self.params["sigma"], gens)  # the base class clips

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return speckle_noise_uint8(x, self.params["sigma"], gens)

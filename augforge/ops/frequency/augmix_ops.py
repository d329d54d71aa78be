"""AugMix's image operations, batched on tensors with PIL's 8-bit semantics.

The reference (google-research/augmix `augmentations.py`) applies PIL operations to uint8 images,
so every op here reads the 8-bit levels round(255·x) of a float (N, C, H, W) batch in [0, 1] and
returns values on the 1/255 grid, computed the way PIL computes them:

* autocontrast, equalize, posterize, solarize: PIL's lookup tables, per channel (bit-exact);
* rotate, shear, translate: PIL's bilinear affine resampling in double precision — a pixel whose
  source point falls outside the image is 0 (PIL's default fill), neighbours are clamped at the
  edges, the result is truncated (bit-exact);
* color, contrast, brightness, sharpness: PIL's `Image.blend` in float32 with truncation, with
  the same degenerate images as `ImageEnhance` (ITU-R 601 luma with PIL's integer rounding, the
  rounded mean luma, black, PIL's SMOOTH filter with copied borders).

Levels follow the reference: level ℓ ~ U(0.1, severity) per call, int_param(ℓ, m) = ⌊ℓ·m/10⌋,
float_param(ℓ, m) = ℓ·m/10, and a sign flipped with probability 0.5 for rotate/shear/translate.
The reference builds shear/translate outputs at IMAGE_SIZE × IMAGE_SIZE (32 or 224) and scales
translations by IMAGE_SIZE/3; here outputs keep the input size and translations use `image_size`
or, when it is None, the image's own width (x) and height (y) — the same for the square images
the reference assumes.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

OPS: tuple[str, ...] = (
    "autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y",
    "translate_x", "translate_y", "color", "contrast", "brightness", "sharpness",
)
N_BASE_OPS = 9  # the first nine: AugMix's default list (`augmentations`); all 13 with all_ops
IDENTITY = -1  # op index meaning "leave this image as it is" (a chain shorter than the step)
OP_INDEX = {name: i for i, name in enumerate(OPS)}
_GEOMETRIC = frozenset(OP_INDEX[n] for n in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"))
_AFFINE_CHUNK = 1 << 17  # elements per resampling chunk: float64 temporaries stay cache-sized
_CACHE_PIXELS = 64 * 64  # sampling tables are cached up to this image size (≤ 196 KB an entry, 256 entries)


# ---------------------------------------------------------------------------------------------
# level semantics (vectorised; float64 like the reference's Python floats)


def sample_ops(u: torch.Tensor, n_ops: int,
               severity: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Turn uniforms u[..., 0:3] into (op index, level, negate) per call.

    op ~ U{0..n_ops-1} (drawn with replacement), level = np.random.uniform(0.1, severity)
    computed as 0.1 + (severity − 0.1)·u, negate when u > 0.5 as the reference's sign coin.
    """
    ops = (u[..., 0] * n_ops).floor().long().clamp(max=n_ops - 1)
    levels = 0.1 + (severity - 0.1) * u[..., 1].to(torch.float64)
    return ops, levels, u[..., 2] > 0.5


def _true_div(a: torch.Tensor, b: float) -> torch.Tensor:
    """a / b rounded like Python's division (torch turns `tensor / scalar` into a multiplication
    by the reciprocal on CUDA, which can move int() across an integer boundary)."""
    return a / torch.full_like(a, b)


def int_param(level: torch.Tensor, maxval: float) -> torch.Tensor:
    """The reference's int_parameter: int(level * maxval / 10) (levels are positive: floor)."""
    return _true_div(level * maxval, 10.0).floor()


def float_param(level: torch.Tensor, maxval: float) -> torch.Tensor:
    """The reference's float_parameter: level * maxval / 10."""
    return _true_div(level * maxval, 10.0)


def op_parameters(ops: torch.Tensor, levels: torch.Tensor, negate: torch.Tensor, height: int, width: int,
                  image_size: int | None = None) -> torch.Tensor:
    """The PIL-facing parameter of each call (float64; NaN for ops without one).

    posterize: bits kept; rotate: degrees; solarize: threshold; shear: coefficient;
    translate: pixels; color/contrast/brightness/sharpness: enhance factor.
    """
    lv = levels.to(torch.float64)
    sign = torch.where(negate, -1.0, 1.0).to(lv)
    size_x = float(image_size or width)
    size_y = float(image_size or height)
    out = torch.full_like(lv, math.nan)
    table = {
        "posterize": 4 - int_param(lv, 4),
        "rotate": sign * int_param(lv, 30),
        "solarize": 256 - int_param(lv, 256),
        "shear_x": sign * float_param(lv, 0.3),
        "shear_y": sign * float_param(lv, 0.3),
        "translate_x": sign * int_param(lv, size_x / 3),
        "translate_y": sign * int_param(lv, size_y / 3),
    }
    for name in ("color", "contrast", "brightness", "sharpness"):
        table[name] = float_param(lv, 1.8) + 0.1
    for name, value in table.items():
        out = torch.where(ops == OP_INDEX[name], value, out)
    return out


# ---------------------------------------------------------------------------------------------
# kernels on 8-bit levels (tensors holding the integers 0..255: uint8, or a float dtype)
#
# The point ops (autocontrast, equalize, posterize, solarize, brightness, contrast) map each level
# through a per-(image, channel) table of 256 entries, computed with PIL's arithmetic on the levels
# 0..255 themselves, so a table lookup gives the same bytes as computing every pixel.
# `apply_ops_levels` applies the tables of all point-op images of a call with one gather.

POINT_OPS = frozenset(OP_INDEX[n] for n in ("autocontrast", "equalize", "posterize", "solarize",
                                           "brightness", "contrast"))


def to_levels(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """8-bit levels round(255·x), clamped, in `dtype` (None: x's dtype; uint8 holds them exactly)."""
    v = x.mul(255).round_().clamp_(0, 255)
    return v if dtype is None else v.to(dtype)


def from_levels(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Levels back to [0, 1] exactly as a uint8 picture converts (k / 255 in `dtype`); a new tensor."""
    return v.to(dtype, copy=True).div_(255)


def _level_axis(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 256 levels 0..255 as a (1, 1, 256) tensor."""
    return torch.arange(256, dtype=dtype, device=device).view(1, 1, 256)


def apply_lut(v: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """out[i, c, p] = lut[i, c, v[i, c, p]]: per-image, per-channel tables (N, C, 256), v's dtype."""
    n, c, h, w = v.shape
    index = v.reshape(n, c, h * w).long()
    return lut.to(v.dtype).expand(n, c, 256).gather(2, index).view(n, c, h, w)


def autocontrast_lut(v: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.autocontrast (cutoff 0) per channel: int(i·255/(hi−lo) − lo·255/(hi−lo)),
    the identity for a one-level channel. (N, C, 256) float64."""
    flat = v.reshape(*v.shape[:2], -1)
    lo, hi = flat.amin(dim=-1), flat.amax(dim=-1)  # two reductions: faster than aminmax on uint8
    lo, hi = lo.to(torch.float64).unsqueeze(-1), hi.to(torch.float64).unsqueeze(-1)
    scale = torch.full_like(lo, 255.0) / (hi - lo).clamp_min(1)  # not 255.0 / t: that is 255·(1/t)
    offset = -lo * scale
    levels = _level_axis(torch.float64, v.device)
    out = (levels * scale + offset).floor().clamp(0, 255)
    return torch.where(hi > lo, out, levels)


def equalize_lut(v: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.equalize per channel: step = (count − count of the last used level) // 255,
    lut[i] = (step // 2 + #pixels below i) // step; identity when step is 0 (one level used gives
    step 0 too). (N, C, 256) float64 holding integers.

    Speed: the histogram index is int32 (uint8 + int32 in one pass); the integer divisions run as
    float64 divisions, floored: exact, since numerator and divisor are integers below 2^24, so a
    quotient just below an integer k is at least 1/divisor < k away, far above float64 rounding."""
    n, c, h, w = v.shape
    levels = v.to(torch.int32) if v.dtype.is_floating_point else v
    rows = torch.arange(n * c, dtype=torch.int32, device=v.device).view(-1, 1) * 256
    hist = torch.bincount((levels.reshape(n * c, h * w) + rows).flatten(), minlength=n * c * 256)
    hist = hist.view(n * c, 256).to(torch.float64)
    bins = torch.arange(256, dtype=torch.float64, device=v.device)
    last = ((hist > 0) * bins).amax(dim=1, keepdim=True).long()  # the last used level
    step = (float(h * w) - hist.gather(1, last)).div_(255).floor_()
    below = hist.cumsum(dim=1).sub_(hist)
    lut = below.add_((step / 2).floor_()).div_(step.clamp_min(1)).floor_().clamp_(max=255)
    return torch.where(step == 0, bins.expand_as(lut), lut).view(n, c, 256)


def posterize_lut(bits: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.posterize: keep the top `bits[i]` bits of every level of image i. (N, 1, 256)."""
    shift = (8 - bits.long()).clamp(0, 8).view(-1, 1, 1)
    return (_level_axis(torch.int64, bits.device) >> shift) << shift


def solarize_lut(threshold: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.solarize: levels >= threshold[i] become 255 − level. (N, 1, 256) float64."""
    levels = _level_axis(torch.float64, threshold.device)
    return torch.where(levels >= threshold.to(torch.float64).view(-1, 1, 1), 255 - levels, levels)


def blend_lut(degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image.blend(constant image `degenerate[i]`, image, factor[i]) as tables (N, 1, 256): float32
    d + f·(i − d), clipped and truncated, like `blend_levels` pixel by pixel."""
    f = factor.to(dtype=torch.float32).view(-1, 1, 1)
    d = degenerate.to(torch.float32).reshape(-1, 1, 1)
    out = d + f * (_level_axis(torch.float32, factor.device) - d)
    return out.clamp(0, 255).floor()


def point_lut(op: int, v: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The (N, C or 1, 256) tables of point op `op` on levels `v` with PIL-facing `params`."""
    name = OPS[op]
    if name == "autocontrast":
        return autocontrast_lut(v)
    if name == "equalize":
        return equalize_lut(v)
    if name == "posterize":
        return posterize_lut(params)
    if name == "solarize":
        return solarize_lut(params)
    if name == "brightness":
        return blend_lut(torch.zeros_like(params), params)
    if name == "contrast":
        return blend_lut(contrast_degenerate(v), params)
    raise ValueError(f"{name!r} is not a point op")


def autocontrast_levels(v: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.autocontrast on levels (see `autocontrast_lut`)."""
    return apply_lut(v, autocontrast_lut(v))


def equalize_levels(v: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.equalize on levels (see `equalize_lut`)."""
    return apply_lut(v, equalize_lut(v))


def posterize_levels(v: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.posterize on levels (see `posterize_lut`)."""
    return apply_lut(v, posterize_lut(bits))


def solarize_levels(v: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.solarize on levels (see `solarize_lut`)."""
    return apply_lut(v, solarize_lut(threshold))


def affine_levels(v: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """PIL Image.transform(AFFINE, BILINEAR) with the output the input's size.

    matrices: (N, 6) = (a, b, c, d, e, f); output pixel (x, y) samples the input at
    (a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f) in PIL's pixel-edge coordinates. Arithmetic
    is float64 in PIL's order, so results are bit-identical to PIL's for 8-bit images.

    Speed: where a row of the matrix is (0, 1, integer) or (1, 0, integer) — translations, shears,
    rotation by 0° — that axis samples whole pixels (weight exactly 0 on the second tap), so the
    interpolation along it is skipped; the skipped terms are exact zeros, the output is the same.
    The sampling tables of rotations and translations (a few distinct matrices: integer degrees
    and pixels) are cached across calls; shears (a continuous parameter) are built per call.
    """
    order, outs = _affine_sorted(v, list(range(v.shape[0])), matrices)
    return _unsort(outs, order)


def _unsort(pieces: list[torch.Tensor], order: list[int]) -> torch.Tensor:
    """Rows concatenated from `pieces`, where row k holds image order[k], put back in image order
    (one copy and one row gather: cheaper than scattering every piece into place)."""
    done = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
    return done.index_select(0, torch.argsort(torch.tensor(order, device=done.device)))


def _affine_sorted(v: torch.Tensor, positions: list[int],
                   matrices: torch.Tensor) -> tuple[list[int], list[torch.Tensor]]:
    """v[positions[i]] resampled with matrices[i]: images grouped by kind (0 general, 1 x whole,
    2 y whole, 3 both: a shift), in chunks of about _AFFINE_CHUNK elements so the float64
    temporaries stay cache-sized (shifts need none: one chunk). Returns the positions in the order
    of the outputs and the chunk outputs."""
    _, c, h, w = v.shape
    mats = matrices.detach().to(device="cpu", dtype=torch.float64)
    x_whole = (mats[:, 0] == 1) & (mats[:, 1] == 0) & (mats[:, 2] == mats[:, 2].floor())
    y_whole = (mats[:, 3] == 0) & (mats[:, 4] == 1) & (mats[:, 5] == mats[:, 5].floor())
    groups: dict[int, list[tuple[int, tuple[float, ...]]]] = {}
    kinds = (x_whole.long() + 2 * y_whole.long()).tolist()  # 0 general, 1 x whole, 2 y whole, 3 a shift
    for i, kind, r in zip(positions, kinds, mats.tolist(), strict=True):
        groups.setdefault(kind, []).append((i, tuple(r)))
    per = max(1, _AFFINE_CHUNK // (c * h * w))
    order: list[int] = []
    outs: list[torch.Tensor] = []
    for kind, members in sorted(groups.items()):
        step = len(members) if kind == 3 else per
        for at in range(0, len(members), step):
            chunk = members[at:at + step]
            rows = [i for i, _ in chunk]
            tables = _tables([m for _, m in chunk], h, w, kind, v.device)
            outs.append(_resample(v.index_select(0, torch.tensor(rows, device=v.device)), tables, kind))
            order += rows
    return order, outs


def _tables(mats: list[tuple[float, ...]], h: int, w: int, kind: int,
            device: torch.device) -> dict[str, torch.Tensor]:
    """Sampling tables (one row per matrix of `mats`, see `_sampling`). Shears (kinds 1, 2: a
    continuous parameter, rarely repeated) are built here; rotations and shifts of images up to
    _CACHE_PIXELS pixels come from a cache of one-row tables per distinct matrix, larger ones are
    built once per distinct matrix of the call."""
    if kind in (1, 2):
        return _sampling(torch.tensor(mats, dtype=torch.float64, device=device), h, w, kind)
    unique = {m: j for j, m in enumerate(dict.fromkeys(mats))}
    if h * w <= _CACHE_PIXELS:
        rows = [_cached_sampling(m, h, w, kind, device) for m in unique]
        tables = {name: torch.cat([r[name] for r in rows]) for name in rows[0]}
    else:  # large images: tables are cheap next to the resampling, and too big to keep many
        tables = _sampling(torch.tensor(list(unique), dtype=torch.float64, device=device), h, w, kind)
    if len(unique) < len(mats):
        index = torch.tensor([unique[m] for m in mats], device=device)
        tables = {name: t.index_select(0, index) for name, t in tables.items()}
    return tables


@lru_cache(maxsize=256)
def _cached_sampling(matrix: tuple[float, ...], h: int, w: int, kind: int,
                     device: torch.device) -> dict[str, torch.Tensor]:
    """`_sampling` of one matrix, kept (integer rotation angles and shifts repeat every batch)."""
    return _sampling(torch.tensor([matrix], dtype=torch.float64, device=device), h, w, kind)


def _sampling(m: torch.Tensor, h: int, w: int, kind: int) -> dict[str, torch.Tensor]:
    """Per-matrix sampling tables (M, h·w): tap indices and weights dx / dy (float64).

    Coordinates are float64 in PIL's order: x_in = a·(x+½) + b·(y+½) + c, y_in likewise. Taps
    index a flattened image with one extra element h·w that holds 0: a pixel whose source point
    lies outside the image reads it from every tap, so its output is 0 (PIL's fill) without a mask."""
    n, dev = m.shape[0], m.device
    a, b, c, d, e, f = m.view(n, 6, 1, 1).unbind(1)
    xs = (torch.arange(w, device=dev, dtype=torch.float64) + 0.5).view(1, 1, w)
    ys = (torch.arange(h, device=dev, dtype=torch.float64) + 0.5).view(1, h, 1)
    # a whole-pixel axis has coefficients (1, ±0, integer) (or (±0, 1, integer)): its coordinate is
    # the same on every row (column), so it is computed once, (n, 1, w) or (n, h, 1) (the ±0 term
    # is evaluated at the first row / column: the same ±0 as anywhere), and broadcast at the end
    xin = (a * xs + b * (ys[:, :1] if kind in (1, 3) else ys)).add_(c)
    yin = (d * (xs[..., :1] if kind in (2, 3) else xs) + e * ys).add_(f)
    outside = ((xin >= 0).logical_and_(xin < w) & (yin >= 0).logical_and_(yin < h)).logical_not_()
    xf, yf = xin.sub_(0.5), yin.sub_(0.5)
    x0, y0 = xf.floor(), yf.floor()
    rows = [y0.clamp(0, h - 1).mul_(w)]
    cols = [x0.clamp(0, w - 1)]
    if kind in (0, 1):
        rows.append((y0 + 1).clamp_(0, h - 1).mul_(w))
    if kind in (0, 2):
        cols.append((x0 + 1).clamp_(0, w - 1))
    out = {}
    for name in {3: ("00",), 1: ("00", "10"), 2: ("00", "01"), 0: ("00", "01", "10", "11")}[kind]:
        # tap indices as exact float64 integers, the outside element for outside points
        index = (rows[int(name[0])] + cols[int(name[1])]).masked_fill_(outside, float(h * w))
        out[name] = index.long().view(n, h * w)
    if kind in (0, 2):
        out["dx"] = xf.sub_(x0).expand(n, h, w).reshape(n, h * w)
    if kind in (0, 1):
        out["dy"] = yf.sub_(y0).expand(n, h, w).reshape(n, h * w)
    return out


def _resample(v: torch.Tensor, tables: dict[str, torch.Tensor], kind: int) -> torch.Tensor:
    """`affine_levels` for images v whose matrices are all of one kind, with their `_tables`."""
    n, c, h, w = v.shape
    flat = torch.cat([v.reshape(n, c, h * w), v.new_zeros(n, c, 1)], dim=2)  # + the outside level 0

    def tap(name: str, into: torch.Tensor | None = None) -> torch.Tensor:
        """The tap's levels as float64 (exact), gathered in v's dtype (uint8: an eighth of the
        bytes), written into `into` when given (fewer fresh float64 buffers)."""
        taps = flat.gather(2, tables[name].view(n, 1, h * w).expand(n, c, h * w))
        if kind == 3:
            return taps
        return taps.to(torch.float64) if into is None else into.copy_(taps)

    def lerp_(a: torch.Tensor, b: torch.Tensor, weight: str) -> torch.Tensor:
        """a + (b − a)·t in PIL's order, computed in b's storage."""
        return b.sub_(a).mul_(tables[weight].view(n, 1, h * w)).add_(a)

    if kind == 3:  # both axes on whole pixels: one tap, exact in any dtype
        return tap("00").view(n, c, h, w)
    if kind == 1:  # x on whole pixels: interpolate along y only
        out = lerp_(tap("00"), tap("10"), "dy")
    elif kind == 2:  # y on whole pixels: interpolate along x only
        out = lerp_(tap("00"), tap("01"), "dx")
    else:
        first = tap("00")
        top = lerp_(first, tap("01"), "dx")
        bottom = lerp_(tap("10", into=first), tap("11"), "dx")  # tap 00 is no longer needed
        out = lerp_(top, bottom, "dy")
    # the lerps lie between their (non-negative) taps, so a cast to an integer dtype truncates
    # exactly like PIL's (UINT8) cast; a float dtype is floored
    out = out.view(n, c, h, w)
    return out.to(v.dtype) if not v.dtype.is_floating_point else out.floor_().to(v.dtype)


@lru_cache(maxsize=1024)
def _rotation(degrees: float) -> tuple[float, float, float, float]:
    """PIL Image.rotate's linear part for `degrees` (counter-clockwise), rounded as PIL does."""
    angle = -math.radians(degrees % 360.0)
    return (round(math.cos(angle), 15), round(math.sin(angle), 15),
            round(-math.sin(angle), 15), round(math.cos(angle), 15))


def affine_matrices(ops: torch.Tensor, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 6) PIL affine coefficients of rotate/shear/translate calls with PIL-facing `params`.

    Rotation is about PIL's centre (width/2, height/2); the rotation coefficients come from a
    per-angle table computed with Python's math exactly as Image.rotate does (cheap: integer
    degrees only).
    """
    ops_cpu, par_cpu = ops.cpu(), params.cpu().to(torch.float64)
    mats = torch.zeros(ops.shape[0], 6, dtype=torch.float64)
    mats[:, 0] = 1
    mats[:, 4] = 1
    rot = ops_cpu == OP_INDEX["rotate"]
    if bool(rot.any()):
        coef = torch.tensor([_rotation(float(d)) for d in par_cpu[rot].tolist()], dtype=torch.float64)
        a, b, d, e = coef.unbind(1)
        cx, cy = width / 2, height / 2
        c = (a * -cx + b * -cy + 0.0) + cx
        f = (d * -cx + e * -cy + 0.0) + cy
        mats[rot] = torch.stack([a, b, c, d, e, f], 1)
    for name, col in (("shear_x", 1), ("shear_y", 3), ("translate_x", 2), ("translate_y", 5)):
        sel = ops_cpu == OP_INDEX[name]
        mats[sel, col] = par_cpu[sel]
    return mats.to(ops.device)


_K1 = 1.0 / 13.0
_K5 = 5.0 / 13.0


def smooth_levels(v32: torch.Tensor) -> torch.Tensor:
    """PIL ImageFilter.SMOOTH (3x3 [1 1 1; 1 5 1; 1 1 1]/13, float32, +0.5, truncated), border copied."""
    f32 = dict(dtype=torch.float32, device=v32.device)
    k1, k5, half = torch.tensor(_K1, **f32), torch.tensor(_K5, **f32), torch.tensor(0.5, **f32)

    def row(r: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        return (r[..., :-2] * k1 + r[..., 1:-1] * centre) + r[..., 2:] * k1

    ss = half + row(v32[..., 2:, :], k1)  # PIL accumulates the row below first
    ss = ss + row(v32[..., 1:-1, :], k5)
    ss = ss + row(v32[..., :-2, :], k1)
    out = v32.clone()
    out[..., 1:-1, 1:-1] = ss.clamp(0, 255).floor()
    return out


def luma_levels(v: torch.Tensor) -> torch.Tensor:
    """PIL's RGB -> L conversion: (R·19595 + G·38470 + B·7471 + 2^15) >> 16 (L input is returned)."""
    if v.shape[1] == 1:
        return v
    r, g, b = v.long().unbind(1)
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).unsqueeze(1).to(v.dtype)


def blend_levels(degenerate: torch.Tensor, image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL Image.blend(degenerate, image, factor): float32 d + f·(i − d), clipped and truncated."""
    f = factor.to(device=image.device, dtype=torch.float32).view(-1, 1, 1, 1)
    d = degenerate.to(torch.float32).expand_as(image)
    out = d + f * (image.to(torch.float32) - d)
    return out.clamp(0, 255).floor().to(image.dtype)


def contrast_degenerate(v: torch.Tensor) -> torch.Tensor:
    """ImageEnhance.Contrast's degenerate level per image: the luma mean rounded, int(mean + 0.5). (N,)"""
    luma = luma_levels(v).to(torch.float64)
    return (_true_div(luma.sum(dim=(1, 2, 3)), float(luma.shape[-1] * luma.shape[-2])) + 0.5).floor()


def enhance_levels(v: torch.Tensor, kind: str, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance.Color / Contrast / Brightness / Sharpness(...).enhance(factor)."""
    if kind == "color":
        degenerate = luma_levels(v)
    elif kind == "contrast":
        degenerate = contrast_degenerate(v).view(-1, 1, 1, 1)
    elif kind == "brightness":
        degenerate = torch.zeros((), dtype=v.dtype, device=v.device).expand_as(v)
    elif kind == "sharpness":
        degenerate = smooth_levels(v.to(torch.float32))
    else:
        raise ValueError(f"unknown enhance kind {kind!r}")
    return blend_levels(degenerate, v, factor)


# ---------------------------------------------------------------------------------------------
# batched dispatch


def _run(op: int, v: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Op `op` on levels `v` with per-image PIL-facing `params`."""
    if op in _GEOMETRIC:
        ops = torch.full((v.shape[0],), op, device=v.device)
        return affine_levels(v, affine_matrices(ops, params, v.shape[-2], v.shape[-1]))
    if op in POINT_OPS:
        return apply_lut(v, point_lut(op, v, params))
    return enhance_levels(v, OPS[op], params)


def apply_ops_levels(v: torch.Tensor, ops: torch.Tensor, levels: torch.Tensor, negate: torch.Tensor,
                     image_size: int | None = None) -> torch.Tensor:
    """Apply op ops[i] at level levels[i] to the 8-bit levels of image i (IDENTITY: unchanged).

    Images are grouped by op, so the number of kernel calls does not grow with the batch: one
    table lookup for all point ops together (each image through its own op's table), one
    resampling call for all geometric ops, one call per other op. Levels may be uint8 (fastest)
    or float; the result has v's dtype.
    """
    _, c, h, w = v.shape
    params = op_parameters(ops, levels, negate, h, w, image_size)
    groups: dict[int, list[int]] = {}
    for i, op in enumerate(ops.tolist()):
        groups.setdefault(op, []).append(i)
    order: list[int] = []
    pieces: list[torch.Tensor] = []
    if IDENTITY in groups:
        order += groups[IDENTITY]
        pieces.append(v.index_select(0, torch.tensor(groups[IDENTITY], device=v.device)))
    point = [op for op in sorted(groups) if op in POINT_OPS]
    if point:
        rows = [i for op in point for i in groups[op]]
        images = v.index_select(0, torch.tensor(rows, device=v.device))
        lut = torch.empty((len(rows), c, 256), dtype=v.dtype, device=v.device)
        at = 0
        for op in point:
            k = len(groups[op])
            idx = torch.tensor(groups[op], device=v.device)
            # the tables of posterize, solarize and brightness do not read the images
            reads = OPS[op] in ("autocontrast", "equalize", "contrast")
            lut[at:at + k] = point_lut(op, images[at:at + k] if reads else v[:0], params[idx]).to(v.dtype)
            at += k
        order += rows
        pieces.append(apply_lut(images, lut))
    geometric = [i for op in sorted(set(groups) & _GEOMETRIC) for i in groups[op]]
    if geometric:
        idx = torch.tensor(geometric, device=ops.device)
        done, outs = _affine_sorted(v, geometric, affine_matrices(ops[idx], params[idx], h, w))
        order += done
        pieces += outs
    for op in sorted(set(groups) - _GEOMETRIC - POINT_OPS - {IDENTITY}):
        idx = torch.tensor(groups[op], device=v.device)
        order += groups[op]
        pieces.append(enhance_levels(v.index_select(0, idx), OPS[op], params[idx]))
    return _unsort(pieces, order)


def apply_ops(x: torch.Tensor, ops: torch.Tensor, levels: torch.Tensor, negate: torch.Tensor,
              image_size: int | None = None) -> torch.Tensor:
    """`apply_ops_levels` on a float [0, 1] batch: rounds to 8-bit levels, returns k/255 values."""
    v = apply_ops_levels(to_levels(x, torch.uint8), ops, levels, negate, image_size)
    return from_levels(v, x.dtype)


def apply_op(x: torch.Tensor, name: str, param: float | None = None) -> torch.Tensor:
    """One op with a fixed PIL-facing parameter on every image (tests, previews).

    param: bits (posterize), degrees (rotate), threshold (solarize), coefficient (shear),
    pixels (translate), factor (enhance ops); None for autocontrast and equalize.
    """
    if name not in OP_INDEX:
        raise ValueError(f"unknown AugMix op {name!r}; expected one of {OPS}")
    n = x.shape[0]
    par = torch.full((n,), math.nan if param is None else float(param), dtype=torch.float64, device=x.device)
    return from_levels(_run(OP_INDEX[name], to_levels(x), par), x.dtype)

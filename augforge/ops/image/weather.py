"""ImageNet-C weather corruptions: snow, frost, fog, and the extra corruption spatter.

Faithful to hendrycks/robustness (make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py),
not to `imagecorruptions` where the two differ (frost ×1.1 rescale, snow rounding). Sizes the
reference hard-codes (224 / 32 / 64) are generalised to any H×W ≥ 8 as each op's notes say.
Sample i draws only from gens[i]; everything runs batched in torch except spatter's integer
edge/distance/equalisation chain, which runs in OpenCV on the CPU exactly as the reference does
(on the CPU, for pictures from SPATTER_CV_PIXELS up, spatter's liquid blurs run there too).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from augforge.core.errors import AugforgeError
from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import integer, real
from augforge.ops.image._threads import draw, for_each_sample
from augforge.ops.image.kernels.color import GRAY_WEIGHTS, as_rgb, rgb_to_gray
from augforge.ops.image.kernels.filters import gaussian_filter, gaussian_weights
from augforge.ops.image.kernels.motion import motion_blur_kernel
from augforge.ops.image.kernels.plasma import next_power_of_two, plasma_fractal, plasma_range
from augforge.ops.image.kernels.warp import clipped_zoom

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."
GRAY_NOTE = ("1-channel input is processed as replicated RGB (as imagecorruptions does) and converted "
             "back with 0.299R + 0.587G + 0.114B.")


FROST_DIR = Path(__file__).resolve().parent / "assets" / "frost"
FROST_MD5: dict[str, str] = {
    "frost1.png": "6ead634ace1f366d77e87078b465863c",
    "frost2.png": "98f0d2b1d74a048d3bc9c7ecfd886939",
    "frost3.png": "b3ed8eb147824261888e730f916c0d8b",
    "frost4.jpg": "d70b9d6aa0b1fe7bd8133b113787e078",
    "frost5.jpg": "50984ae2c871b7df2c28f1d71ca460a0",
}
# Frost photo rescale before cropping, per preset (cv2.resize, bilinear).
FROST_RESCALE = {"imagenet": 1.0, "cifar": 0.2, "tiny": 0.3}

WATER_RGB = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
MUD_RGB = (63 / 255, 42 / 255, 20 / 255)  # brown
EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))


def _colour(rgb: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    """(1, 3, 1, 1) colour tensor on like's device and dtype."""
    return torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


# --------------------------------------------------------------------------- snow


def snow(x: torch.Tensor, p: dict[str, float], gens: list[torch.Generator]) -> torch.Tensor:
    """ImageNet-C snow on (B, C, H, W).

    Layer L ~ N(mean, std²) (H×W), clipped-zoomed, zeroed below `threshold`, clipped and truncated
    to 8 bits, ImageMagick motion-blurred (radius, sigma, angle ~ U(−135°, −45°)) and rounded to
    8 bits (the PNG round trip); scene whitened to blend·x + (1−blend)·max(x, 1.5·gray + 0.5);
    output = clip(x' + L + rot180(L)).
    """
    noise, angles = snow_draws(x.shape[-2], x.shape[-1], gens, x.device, x.dtype)
    return snow_from_draws(x, p, noise, angles)


def snow_draws(h: int, w: int, gens: list[torch.Generator], device: torch.device,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: standard-normal layer noise (B, 1, H, W), then the blur angle ~ U(−135°, −45°) (B,)."""
    noise = torch.empty(len(gens), 1, h, w, device=device, dtype=dtype)
    angles = torch.empty(len(gens), device=device, dtype=torch.float64)

    def one(i: int) -> None:
        noise[i].normal_(generator=gens[i])
        angles[i:i + 1].uniform_(-135.0, -45.0, generator=gens[i])

    for_each_sample(one, len(gens), device, work=noise.numel())
    return noise, angles


def snow_from_draws(x: torch.Tensor, p: dict[str, float], noise: torch.Tensor,
                    angles: torch.Tensor) -> torch.Tensor:
    """Snow given the draws: standard-normal `noise` (B, 1, H, W) and blur `angles` (B,) in degrees."""
    c = x.shape[1]
    layer = clipped_zoom(noise * p["std"] + p["mean"], p["zoom"])
    layer = keep_at_least(layer, p["threshold"])
    layer = layer.clamp_(0.0, 1.0).mul_(255.0).floor_().div_(255.0)
    layer = motion_blur_kernel(layer, p["radius"], p["sigma"], angles)
    layer = layer.mul_(255.0).round_().div_(255.0)
    # blend·x + (1 − blend)·max(x, 1.5·gray + 0.5) as one lerp; the layer and its 180° turn are
    # summed at one channel before they are broadcast over the image (same values up to rounding)
    whitened = torch.maximum(x, _lifted_gray(x) if c == 3 else x * 1.5 + 0.5).lerp_(x, p["blend"])
    return whitened.add_(layer.add(layer.flip(-2, -1))).clamp_(0.0, 1.0)


def _lifted_gray(rgb: torch.Tensor) -> torch.Tensor:
    """1.5·gray + 0.5 of (B, 3, H, W), gray with OpenCV's RGB2GRAY weights (0.299, 0.587, 0.114),
    as three fused passes over one channel-sized plane."""
    wr, wg, wb = (1.5 * w for w in GRAY_WEIGHTS)
    out = torch.mul(rgb[:, 0:1], wr).add_(0.5)
    return out.add_(rgb[:, 1:2], alpha=wg).add_(rgb[:, 2:3], alpha=wb)


def keep_at_least(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """x where x ≥ threshold, else 0 (a product with a float 0/1 mask: exact, and much cheaper
    than torch.where on the CPU; below-threshold negatives become −0, which compares as 0)."""
    return torch.ge(x, threshold, out=torch.empty_like(x)).mul_(x)


@register_op(
    "snow",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes=(
        "Snow layer N(mean, std²) -> clipped zoom -> threshold -> uint8 truncation -> ImageMagick "
        "motion blur (one-sided half-Gaussian line, 2⌈R⌉+1 taps, edge replication, angle "
        "U(−135°, −45°)) -> rounded to 8 bits (PNG round trip) -> added as is and rotated by 180°; "
        "scene whitened with OpenCV gray (0.299, 0.587, 0.114). Any H×W: the reference's (224, 224) "
        "reshape becomes (H, W); the clipped zoom crops ⌈H/z⌉×⌈W/z⌉ centrally and trims centrally; "
        "pixel constants (zoom, radius, sigma) are not rescaled. " + GRAY_NOTE + " "
        "Differs from imagecorruptions, which blurs the unquantised layer (no 8-bit truncation "
        "before the blur; it only rounds after it). "
        + PRESET_NOTE
    ),
    tags=("weather", "imagenet-c"),
)
class Snow(Op):
    """Falling snow: thresholded noise streaked by a motion blur, over a whitened scene."""

    PARAMS: ClassVar[tuple[str, ...]] = ("mean", "std", "zoom", "threshold", "radius", "sigma", "blend")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ],
        "cifar": [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
        "tiny": [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        n = self.name
        return {
            "mean": real(n, "mean", params["mean"]),
            "std": real(n, "std", params["std"], lo=0.0),
            "zoom": real(n, "zoom", params["zoom"], lo=1.0),
            "threshold": real(n, "threshold", params["threshold"]),
            "radius": real(n, "radius", params["radius"], lo=0.0, lo_open=True, hi=256.0),
            "sigma": real(n, "sigma", params["sigma"], lo=0.0, lo_open=True),
            "blend": real(n, "blend", params["blend"], lo=0.0, hi=1.0),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return snow(x, self.params, gens)


# --------------------------------------------------------------------------- frost


def verify_frost_assets(directory: Path = FROST_DIR) -> list[Path]:
    """Paths of frost1..frost5 after checking their md5 sums; raises AugforgeError otherwise."""
    paths = []
    for name, expected in FROST_MD5.items():
        path = directory / name
        if not path.is_file():
            raise AugforgeError(f"frost asset {path} is missing; reinstall augforge")
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != expected:
            raise AugforgeError(
                f"frost asset {path} is corrupted: md5 {digest}, expected {expected} "
                "(the ImageNet-C frost photo); reinstall augforge"
            )
        paths.append(path)
    return paths


@functools.lru_cache(maxsize=1)
def frost_photos() -> tuple[np.ndarray, ...]:
    """frost1..frost5 as RGB uint8 HWC arrays, decoded with OpenCV like the reference (verified)."""
    import cv2

    photos = []
    for path in verify_frost_assets():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise AugforgeError(f"OpenCV could not decode the frost asset {path}")
        photos.append(np.ascontiguousarray(bgr[..., ::-1]))
    return tuple(photos)


@functools.lru_cache(maxsize=32)
def frost_layers(h: int, w: int, rescale: float) -> tuple[np.ndarray, ...]:
    """The five photos ready for H×W crops: scaled by the preset's factor (cv2.resize fx=fy,
    bilinear; skipped at 1), then enlarged further (bilinear) only if smaller than (H+1)×(W+1),
    so the reference's offset range [0, size − H − 1] is never empty."""
    import cv2

    out = []
    for photo in frost_photos():
        img = photo
        if rescale != 1.0:
            img = cv2.resize(img, (0, 0), fx=rescale, fy=rescale, interpolation=cv2.INTER_LINEAR)
        ph, pw = img.shape[:2]
        if ph < h + 1 or pw < w + 1:
            f = max((h + 1) / ph, (w + 1) / pw)
            size = (max(w + 1, round(pw * f)), max(h + 1, round(ph * f)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        out.append(np.ascontiguousarray(img))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def _frost_tensors(h: int, w: int, rescale: float, device: str) -> tuple[torch.Tensor, ...]:
    """frost_layers as uint8 (3, h', w') tensors on `device` (cached per device)."""
    layers = frost_layers(h, w, rescale)
    return tuple(torch.from_numpy(a).permute(2, 0, 1).contiguous().to(device) for a in layers)


def frost_crops(h: int, w: int, rescale: float, gens: list[torch.Generator],
                device: torch.device) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """Per sample: photo k ~ U{0..4}, top ~ U{0..h'−h−1}, left ~ U{0..w'−w−1} (numpy
    randint(0, size − h) semantics); returns uint8 (B, 3, h, w) crops and the draws."""
    layers = _frost_tensors(h, w, rescale, str(device))
    crops, draws = [], []
    for g in gens:
        k = int(torch.randint(0, len(layers), (1,), generator=g, device=device).item())
        ph, pw = layers[k].shape[-2:]
        top = int(torch.randint(0, ph - h, (1,), generator=g, device=device).item())
        left = int(torch.randint(0, pw - w, (1,), generator=g, device=device).item())
        crops.append(layers[k][:, top:top + h, left:left + w])
        draws.append((k, top, left))
    return torch.stack(crops), draws


def frost(x: torch.Tensor, p: dict[str, float], rescale: float, gens: list[torch.Generator]) -> torch.Tensor:
    """clip(a·x + b·frost) with a random crop of a frost photo (in [0, 1] units)."""
    _, _, h, w = x.shape
    crops, _ = frost_crops(h, w, rescale, gens, x.device)
    return frost_from_crops(x, p, crops)


def frost_from_crops(x: torch.Tensor, p: dict[str, float], crops: torch.Tensor) -> torch.Tensor:
    """Frost given the uint8 RGB crops (B, 3, H, W)."""
    if x.shape[1] == 1:  # as replicated RGB, then back to gray
        return rgb_to_gray(frost_from_crops(as_rgb(x), p, crops))
    # b·crop/255 + a·x over the freshly cast crops: two passes besides the cast (same up to rounding)
    layer = crops.to(x.dtype).mul_(p["frost_weight"] / 255.0)
    return layer.add_(x, alpha=p["image_weight"]).clamp_(0.0, 1.0)


@register_op(
    "frost",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes=(
        "Blend with a random crop of one of the five ImageNet-C frost photos (frost1–5, frost6 is "
        "never used; md5-checked at load): clip(a·x + b·frost). The photo is decoded with OpenCV, "
        "scaled by the preset's factor (imagenet 1, cifar 0.2, tiny 0.3; cv2.resize bilinear) and "
        "cropped at top ~ U{0..h'−H−1}, left ~ U{0..w'−W−1}. Any H×W: the crop is H×W (the "
        "reference's 224/32/64); a photo smaller than (H+1)×(W+1) after the preset scaling is "
        "enlarged bilinearly just enough (e.g. imagenet beyond 314 px). Unlike imagecorruptions "
        "there is no extra ×1.1 bicubic enlargement. " + GRAY_NOTE + " " + PRESET_NOTE
    ),
    tags=("weather", "imagenet-c"),
)
class Frost(Op):
    """Frost on a window pane: a real frost photo blended over the image."""

    PARAMS: ClassVar[tuple[str, ...]] = ("image_weight", "frost_weight")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
        "cifar": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        "tiny": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "image_weight": real(self.name, "image_weight", params["image_weight"], lo=0.0),
            "frost_weight": real(self.name, "frost_weight", params["frost_weight"], lo=0.0),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return frost(x, self.params, FROST_RESCALE[self.preset], gens)


# --------------------------------------------------------------------------- fog


def fog(x: torch.Tensor, strength: float, decay: float, gens: list[torch.Generator]) -> torch.Tensor:
    """clip((x + s·F)·m/(m + s)), F = plasma fractal cropped to H×W, m = max of each image."""
    _, _, h, w = x.shape
    size = next_power_of_two(max(h, w))
    raw = plasma_fractal(size, decay, gens, device=x.device, dtype=x.dtype, normalise=False)
    lo, hi = plasma_range(raw)  # the padded map's repeats leave both unchanged
    return _fog_blend(x, strength, raw[:, None, :h, :w], lo, hi)


def fog_from_fractal(x: torch.Tensor, strength: float, field: torch.Tensor) -> torch.Tensor:
    """Fog given fractals (B, N, N), N ≥ H, W; the top-left H×W part is used."""
    h, w = x.shape[-2:]
    field = field[:, None, :h, :w].to(x.dtype)
    lo = torch.zeros(1, 1, 1, dtype=x.dtype, device=x.device)
    return _fog_blend(x, strength, field, lo, lo + 1)


def _fog_blend(x: torch.Tensor, strength: float, field: torch.Tensor, lo: torch.Tensor,
               hi: torch.Tensor) -> torch.Tensor:
    """clip((x + s·(F − lo)/(hi − lo))·k), k = m/(m + s), as x·k + (F·c − lo·c) with c = s·k/(hi − lo):
    the fractal's normalisation folds into one pass over the (B, 1, H, W) field and one over x
    (equal up to float rounding). `field` (B, 1, H, W); `lo`, `hi` (B, 1, 1) or (1, 1, 1)."""
    m = x.amax(dim=(1, 2, 3), keepdim=True)
    k = m / (m + strength)
    c = (k * strength).div_((hi - lo).reshape(-1, 1, 1, 1))
    shade = torch.addcmul((lo.reshape(-1, 1, 1, 1) * c).neg_(), field, c)
    return torch.addcmul(shade, x, k).clamp_(0.0, 1.0)


@register_op(
    "fog",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes=(
        "Plasma fractal F (diamond-square, wibble = 100 divided by `decay` per level, increments of "
        "amplitude wibble² as in the reference, min–max normalised) added with strength s and "
        "rescaled: clip((x + s·F)·m/(m + s)), m = max over the whole image. Any H×W: mapsize = "
        "next power of two ≥ max(H, W), cropped to the top-left H×W — this gives the reference's "
        "256 at 224 (imagenet), 32 at 32 (cifar) and 64 at 64 (tiny). " + GRAY_NOTE + " " + PRESET_NOTE
    ),
    tags=("weather", "imagenet-c"),
)
class Fog(Op):
    """Fog: a plasma-fractal haze over a contrast-reduced image."""

    CPU_BLOCK = 1 << 20  # the fractal's many small per-level steps favour larger blocks
    PARAMS: ClassVar[tuple[str, ...]] = ("strength", "decay")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
        "cifar": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "tiny": [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "strength": real(self.name, "strength", params["strength"], lo=0.0, lo_open=True),
            "decay": real(self.name, "decay", params["decay"], lo=0.0, lo_open=True),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return fog(x, self.params["strength"], self.params["decay"], gens)


# --------------------------------------------------------------------------- spatter


def water_texture(levels: np.ndarray) -> np.ndarray:
    """The reference's integer chain on one uint8 liquid layer (H, W): 255 − Canny(50, 150),
    L2 distance transform (5×5 mask), truncated at 20, 3×3 box blur, uint8 truncation,
    histogram equalisation, emboss kernel with uint8 saturation, 3×3 box blur (rounded to
    uint8 by OpenCV). Returns uint8 (H, W)."""
    import cv2

    edges = cv2.Canny(levels, 50, 150)
    dist = cv2.distanceTransform(255 - edges, cv2.DIST_L2, 5)
    _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
    dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
    dist = cv2.equalizeHist(dist)
    dist = cv2.filter2D(dist, cv2.CV_8U, np.array(EMBOSS, dtype=np.float64))
    return cv2.blur(dist, (3, 3))


def spatter(x: torch.Tensor, p: dict[str, Any], gens: list[torch.Generator]) -> torch.Tensor:
    """ImageNet-C spatter: mode 0 adds embossed pale-turquoise water, mode 1 paints brown mud."""
    return spatter_from_draws(x, p, spatter_draws(x.shape[-2], x.shape[-1], gens, x.device))


def spatter_draws(h: int, w: int, gens: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """Per sample: the standard-normal liquid noise (B, 1, H, W), returned as float64 like the
    reference's, drawn in float32: torch's float64 normal_ costs about six times as much on the CPU,
    and the layer is cut to 8 bits after a blur, far above float32's resolution."""
    return draw((1, h, w), gens, "normal", device=device, dtype=torch.float32).double()


def spatter_from_draws(x: torch.Tensor, p: dict[str, Any], noise: torch.Tensor) -> torch.Tensor:
    """Spatter given the standard-normal liquid `noise` (B, 1, H, W)."""
    if x.shape[1] == 1:  # as replicated RGB, then back to gray
        return rgb_to_gray(spatter_from_draws(as_rgb(x), p, noise))
    if x.device.type == "cpu" and x.shape[-2] * x.shape[-1] >= SPATTER_CV_PIXELS[p["mode"]]:
        return _spatter_cpu(x, p, noise)
    b = x.shape[0]
    dev, dt = x.device, x.dtype
    liquid = gaussian_filter(noise.to(dt) * p["std"] + p["mean"], p["sigma"])
    liquid = keep_at_least(liquid, p["threshold"])
    if p["mode"] == 0:
        # np.uint8(float) truncates and wraps modulo 256 (liquid >= 0 here); v − 256·⌊v/256⌋ is
        # exact on these integers and much cheaper than remainder().
        levels = liquid.mul_(255.0).floor_()
        levels.sub_(torch.floor(levels * (1 / 256)).mul_(256.0))
        host = levels.to("cpu", torch.uint8).numpy()
        tex = np.empty_like(host)

        def one(i: int) -> None:
            tex[i, 0] = water_texture(host[i, 0])

        for_each_sample(one, b)
        m = levels.mul_(torch.from_numpy(tex).to(dev, dt))
        peak = m.amax(dim=(1, 2, 3), keepdim=True)  # 0 only where m is all zeros: 0 / tiny = 0
        tint = _colour(WATER_RGB, x) * (p["intensity"] / peak.clamp_min(1e-30))  # (B, 3, 1, 1)
        return torch.addcmul(x, m, tint).clamp_(0.0, 1.0)
    mask = torch.gt(liquid, p["threshold"], out=torch.empty(liquid.shape, dtype=dt, device=dev))
    mask = keep_at_least(gaussian_filter(mask, p["intensity"]), 0.8)
    return torch.lerp(x, _colour(MUD_RGB, x), mask).clamp_(0.0, 1.0)  # x·(1 − M) + M·mud, one pass


# Picture size (pixels) from which the CPU runs spatter per picture in OpenCV rather than batched in
# torch (water, mud): below it the per-picture calls cost more than they save (measured, 1 thread).
SPATTER_CV_PIXELS = {0: 48 * 48, 1: 128 * 128}


def _spatter_cpu(x: torch.Tensor, p: dict[str, Any], noise: torch.Tensor) -> torch.Tensor:
    """spatter_from_draws on the CPU: each sample's liquid layer, its blur and (water) the integer
    texture chain or (mud) the mask blur run per picture in float32 numpy/OpenCV on the pool
    threads (OpenCV's separable filter is several times cheaper than the batched torch one here;
    same kernel weights and 'nearest' borders, equal up to float rounding); the blend stays batched."""
    import cv2

    b = x.shape[0]
    z = noise.to(torch.float32).numpy()
    plane = np.empty(z.shape, dtype=np.float32)
    std, mean, thr = np.float32(p["std"]), np.float32(p["mean"]), p["threshold"]

    def blur(img: np.ndarray, sigma: float) -> np.ndarray:
        k = np.asarray(gaussian_weights(sigma), dtype=np.float32)
        return cv2.sepFilter2D(img, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE)

    def one(i: int) -> None:
        liquid = blur(z[i, 0] * std + mean, p["sigma"])
        liquid[liquid < thr] = 0
        if p["mode"] == 0:  # uint8 truncation wrapping modulo 256, as np.uint8(float) does
            levels = (np.floor(liquid * np.float32(255)).astype(np.int32) & 255).astype(np.uint8)
            np.multiply(levels, water_texture(levels), out=plane[i, 0], dtype=np.float32)
        else:
            mask = blur((liquid > thr).astype(np.float32), p["intensity"])
            mask[mask < 0.8] = 0
            plane[i, 0] = mask

    for_each_sample(one, b)
    m = torch.from_numpy(plane).to(x.dtype)
    if p["mode"] == 0:
        peak = m.amax(dim=(1, 2, 3), keepdim=True)  # 0 only where m is all zeros: 0 / tiny = 0
        tint = _colour(WATER_RGB, x) * (p["intensity"] / peak.clamp_min(1e-30))
        return torch.addcmul(x, m, tint).clamp_(0.0, 1.0)
    return torch.lerp(x, _colour(MUD_RGB, x), m).clamp_(0.0, 1.0)


@register_op(
    "spatter",
    family="image",
    reference=REFERENCE,
    deterministic=False,
    notes=(
        "An ImageNet-C 'extra' corruption. Liquid layer N(mean, std²) blurred (skimage gaussian, "
        "nearest, truncate 4) and zeroed below `threshold`. mode 0 (water): uint8 layer -> Canny, "
        "distance transform, equalisation, emboss, 3×3 box blur (OpenCV on CPU, as the "
        "reference); m = layer·texture / max · intensity; x + m·(175, 238, 238)/255. mode 1 (mud): mask "
        "layer > threshold blurred with σ = intensity, values < 0.8 zeroed; x·(1−M) + M·(63, 42, "
        "20)/255. Works at any H×W without change (the reference has no size constant). An "
        "all-zero water layer adds nothing (the reference divides 0 by 0). " + GRAY_NOTE + " " + PRESET_NOTE
    ),
    tags=("weather", "imagenet-c", "extra"),
)
class Spatter(Op):
    """Water or mud spatter (ImageNet-C extra corruption)."""

    PARAMS: ClassVar[tuple[str, ...]] = ("mean", "std", "sigma", "threshold", "intensity", "mode")
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ],
        "cifar": [
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ],
        "tiny": [
            (0.62, 0.1, 0.7, 0.7, 0.6, 0),
            (0.65, 0.1, 0.8, 0.7, 0.6, 0),
            (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1),
            (0.65, 0.1, 0.5, 0.67, 0.6, 1),
        ],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        n = self.name
        return {
            "mean": real(n, "mean", params["mean"]),
            "std": real(n, "std", params["std"], lo=0.0),
            "sigma": real(n, "sigma", params["sigma"], lo=0.0),
            "threshold": real(n, "threshold", params["threshold"], lo=0.0),
            "intensity": real(n, "intensity", params["intensity"], lo=0.0),
            "mode": integer(n, "mode", params["mode"], lo=0, hi=1),
        }

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        assert gens is not None
        return spatter(x, self.params, gens)

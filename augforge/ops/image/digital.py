"""ImageNet-C digital corruptions: JPEG compression (a real codec) and pixelate (PIL BOX twice).

Both quantise to 8 bits like the reference, which hands PIL uint8 images: the input is rounded
with round(x · 255) (this inverts k / 255 exactly) and the output is k / 255.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from PIL import Image

from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import integer, real
from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.resample import copy_index, resize_box, resize_box_levels, to_levels

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
UINT8_NOTE = (
    "Fast path: a uint8 (B, C, H, W) batch of levels is also accepted and returned as uint8 (the "
    "reference hands PIL uint8 pictures too), with the same levels as the float path and no float "
    "round trip."
)
# Pictures from this size on are pixelated by PIL per image on the CPU; below it the batched
# matrix products are faster (measured crossover: about 64² for uint8 and 96² for float input).
PIL_MIN_PIXELS = 80 * 80
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."


# --------------------------------------------------------------------------- kernels


def _levels(x: np.ndarray) -> np.ndarray:
    """float [0, 1] array -> uint8 round(x·255) (half to even, as torch.round), clipped to 0..255,
    equal to the float64 computation. A float32 product rounds to the right level unless it
    lands exactly on k + ½ (monotone rounding cannot cross k + ½ otherwise); 128 float32 inputs do,
    and then the image is redone in float64, where x·255 is exact."""
    if x.dtype == np.float32:
        product = np.multiply(x, np.float32(255.0))
        levels = np.rint(product)
        offset = np.subtract(product, levels, out=product)
        if offset.max(initial=0.0) < 0.5 and offset.min(initial=0.0) > -0.5:
            return np.clip(levels, 0.0, 255.0, out=levels).astype(np.uint8)
    levels = np.multiply(x, 255.0, dtype=np.float64)
    np.rint(levels, out=levels)
    return np.clip(levels, 0.0, 255.0, out=levels).astype(np.uint8)


def _per_image(fn: Callable[[np.ndarray, np.ndarray], None], x: torch.Tensor) -> torch.Tensor:
    """Run `fn(src, out)` (uint8 (C, H, W) picture -> out, same shape) on every image of a batch
    on the CPU, several at once (PIL, OpenCV and numpy release the GIL; no torch kernel runs on the pool
    threads). uint8 input gives uint8 out. Float input is rounded to levels round(x·255) first
    and the result is k / 255 in its dtype (the value float64 k / 255 rounds to), each image's
    conversions on its own thread. Returns on x's device."""
    if x.dtype == torch.uint8:
        src = x.detach().cpu().contiguous().numpy()
        done = np.empty(src.shape, dtype=np.uint8)
        for_each_sample(lambda i: fn(src[i], done[i]), len(src))
        return torch.from_numpy(done).to(x.device)
    work = x.detach().cpu()
    if work.dtype not in (torch.float32, torch.float64):
        work = work.float()
    floats = work.contiguous().numpy()
    result = np.empty(floats.shape, dtype=floats.dtype)
    if floats[0, 0].size < PIL_MIN_PIXELS:  # small pictures: convert the batch in one go
        levels = _levels(floats)
        for_each_sample(lambda i: fn(levels[i], levels[i]), len(floats))
        np.divide(levels, 255.0, out=result, dtype=result.dtype)
        return torch.from_numpy(result).to(x.device, x.dtype)

    def one(i: int) -> None:
        levels = _levels(floats[i])
        fn(levels, levels)  # in place: fn reads src fully before it writes out
        np.divide(levels, 255.0, out=result[i], dtype=result.dtype)

    for_each_sample(one, len(floats))
    return torch.from_numpy(result).to(x.device, x.dtype)


def _pil(chw: np.ndarray) -> Image.Image:
    """uint8 (C, H, W), C = 1 or 3 -> PIL image, mode 'L' or 'RGB'. Large pictures' planes are
    merged by PIL, which is much cheaper than a numpy transpose; small ones are transposed (fewer
    calls)."""
    c, h, w = chw.shape
    if c == 3 and h * w < PIL_MIN_PIXELS:
        return Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
    planes = [Image.frombuffer("L", (w, h), np.ascontiguousarray(p), "raw", "L", 0, 1) for p in chw]
    return planes[0] if c == 1 else Image.merge("RGB", planes)


def _into_chw(pil: Image.Image, out: np.ndarray) -> None:
    """Copy a PIL 'L' or 'RGB' image into a uint8 (C, H, W) array (large ones band by band)."""
    if pil.mode == "L" or out[0].size < PIL_MIN_PIXELS:
        array = np.asarray(pil)
        out[...] = array if array.ndim == 2 else array.transpose(2, 0, 1)
        return
    for c, band in enumerate(pil.split()):
        out[c] = np.asarray(band)


def _cv2_split_writes_in_place() -> bool:
    """Whether cv2.split fills the arrays it is given (this binding does; checked once)."""
    hwc = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    planes = [np.zeros((2, 2), np.uint8) for _ in range(3)]
    cv2.split(hwc, planes)
    return all(np.array_equal(plane, hwc[..., c]) for c, plane in enumerate(planes))


_SPLIT_IN_PLACE = _cv2_split_writes_in_place()


def _split_into(hwc: np.ndarray, planes: list[np.ndarray]) -> None:
    """Copy the channels of a uint8 (H, W, C) array into C (H, W) arrays by cv2.split, which
    writes into the given arrays (copied over where a binding returns new ones instead)."""
    got = cv2.split(hwc, planes)
    if not _SPLIT_IN_PLACE:
        for plane, channel in zip(planes, got, strict=True):
            plane[...] = channel


def _jpeg_pil(src: np.ndarray, out: np.ndarray, quality: int) -> None:
    """Encode one uint8 (C, H, W) picture (C = 1 or 3) with PIL at `quality`, decode it into out."""
    pil = _pil(src)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        _into_chw(decoded if decoded.mode == pil.mode else decoded.convert(pil.mode), out)


def _jpeg_cv2(src: np.ndarray, out: np.ndarray, quality: int) -> None:
    """`_jpeg_pil` through OpenCV's libjpeg: grey planes as 1-channel JPEGs, colour as BGR with
    OpenCV's default 4:2:0 chroma; one C call per step (each releases the GIL), and the colour
    planes go to and from BGR by cv2.merge / cv2.split (cheaper than numpy transposes)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if src.shape[0] == 1:
        ok, data = cv2.imencode(".jpg", src[0], params)
        if not ok:
            raise RuntimeError("cv2.imencode failed")
        out[0] = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        return
    ok, data = cv2.imencode(".jpg", cv2.merge([src[2], src[1], src[0]]), params)
    if not ok:
        raise RuntimeError("cv2.imencode failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    _split_into(decoded, [out[2], out[1], out[0]])


def _jpeg_bytes_pil(src: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    _pil(src).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _jpeg_bytes_cv2(src: np.ndarray, quality: int) -> bytes:
    pixels = src[0] if src.shape[0] == 1 else cv2.merge([src[2], src[1], src[0]])
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _probe_pictures() -> list[np.ndarray]:
    """Small uint8 (C, H, W) probe pictures, grey and colour, odd sizes (partial 16×16 blocks),
    smooth ramps with edges and saturated corners (colour conversion clips)."""
    y, x = np.mgrid[0:27, 0:37].astype(np.int64)
    r = (x * 7 + y * 3) % 256
    g = (x * y * 5 + (x // 6) * 90) % 256
    b = np.where((x + y) % 11 < 5, 255, (y * 13) % 256)
    b[:4, :4] = 0
    rgb = np.stack([r, g, b]).astype(np.uint8)
    grey = ((x * x + 3 * y * y + (y // 5) * 70) % 256).astype(np.uint8)[None]
    return [grey, rgb, np.ascontiguousarray(rgb[:, :9, :14])]


def probe_cv2_jpeg(quality: int) -> bool:
    """Whether OpenCV writes PIL's JPEG bytes at `quality` here and decodes them to the same
    pixels (both bundle libjpeg-turbo; a release of either may change that)."""
    try:
        for pic in _probe_pictures():
            if _jpeg_bytes_cv2(pic, quality) != _jpeg_bytes_pil(pic, quality):
                return False
            via_cv2, via_pil = np.empty_like(pic), np.empty_like(pic)
            _jpeg_cv2(pic, via_cv2, quality)
            _jpeg_pil(pic, via_pil, quality)
            if not np.array_equal(via_cv2, via_pil):
                return False
    except Exception:  # an OpenCV without JPEG support, or a failed call
        return False
    return True


_cv2_jpeg_ok: dict[int, bool] = {}  # quality -> probe_cv2_jpeg(quality), once per process


def jpeg_codec(quality: int) -> Callable[[np.ndarray, np.ndarray, int], None]:
    """The per-picture JPEG round trip to use at `quality`: OpenCV's where the probe shows it
    equals PIL's (about twice as fast, and it releases the GIL), else PIL's."""
    ok = _cv2_jpeg_ok.get(quality)
    if ok is None:
        ok = _cv2_jpeg_ok[quality] = probe_cv2_jpeg(quality)
    return _jpeg_cv2 if ok else _jpeg_pil


def jpeg_compression(x: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL JPEG encode/decode of each image (libjpeg, PIL defaults: 4:2:0 chroma subsampling for
    RGB, mode 'L' for one channel), run by OpenCV where a probe shows it gives PIL's bytes and
    pixels (jpeg_codec). The codec runs on the CPU, several images at once; the result returns to
    x's device and dtype. x: float in [0, 1] (rounded to levels first) or uint8 levels."""
    codec = jpeg_codec(quality)
    return _per_image(lambda src, out: codec(src, out, quality), x)


def pixelate_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The intermediate size (H', W') = (int(H·scale), int(W·scale)), at least 1 pixel."""
    return max(1, int(height * scale)), max(1, int(width * scale))


def _pixelate_pil(src: np.ndarray, out: np.ndarray, small_size: tuple[int, int],
                  rows: np.ndarray, cols: np.ndarray) -> None:
    """One uint8 (C, H, W) picture: PIL BOX down to small_size, horizontal pass then vertical (as
    `resize_box_levels` and Pillow <= 12 order them), then BOX up, which copies source pixel
    rows[i], cols[j] (floor((i + ½)·in/out)): two np.take gathers straight into out."""
    _, h, w = src.shape
    small_h, small_w = small_size
    pil = _pil(src)
    if small_w != w:
        pil = pil.resize((small_w, h), Image.Resampling.BOX)
    if small_h != h:
        pil = pil.resize((small_w, small_h), Image.Resampling.BOX)
    small = np.asarray(pil)
    small = small[None] if small.ndim == 2 else small.transpose(2, 0, 1)
    np.take(np.take(small, cols, axis=2), rows, axis=1, out=out)


def pixelate(x: torch.Tensor, scale: float) -> torch.Tensor:
    """PIL BOX down to pixelate_size(H, W, scale), then BOX back up to H×W, 8-bit like PIL.

    On the CPU, pictures of PIL_MIN_PIXELS or more go through PIL itself (several at once);
    smaller ones, and all on other devices, go through separable matrix products over the whole
    batch (kernels.resample), bit-exact to PIL's 8-bit resampler, so both give the same result.
    x: float in [0, 1] (rounded to levels first) or uint8 levels; the result has x's dtype.
    """
    h, w = x.shape[-2:]
    small_size = pixelate_size(h, w, scale)
    if x.device.type == "cpu" and h * w >= PIL_MIN_PIXELS:
        # index tables on this thread (pool threads run no torch kernels); upsampling is a copy
        rows, cols = copy_index(small_size[0], h), copy_index(small_size[1], w)
        assert rows is not None and cols is not None
        r, c = rows.numpy(), cols.numpy()
        return _per_image(lambda src, out: _pixelate_pil(src, out, small_size, r, c), x)
    levels = x.to(torch.float64) if x.dtype == torch.uint8 else to_levels(x)
    small = resize_box_levels(levels, small_size)
    if x.dtype == torch.uint8:  # the upsampling copy is exact in float32 too, and cheaper
        return resize_box(small.to(torch.float32), (h, w)).to(torch.uint8)
    # BOX upsampling copies pixels, so it can run on the small image's values in x's dtype.
    return resize_box((small / 255.0).to(x.dtype), (h, w))


# --------------------------------------------------------------------------- registered ops


@register_op(
    "jpeg_compression",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="Real PIL/libjpeg encode+decode at `quality` (PIL defaults, 4:2:0 chroma), per image on the "
    "CPU; input rounded to uint8, output k/255; CUDA inputs are copied to the CPU and back. "
    "1-channel images are encoded as PIL mode 'L' (imagecorruptions goes via RGB). " + UINT8_NOTE + " "
    + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class JpegCompression(Op):
    """JPEG compression artefacts (ImageNet-C jpeg_compression)."""

    CPU_BLOCK = 0  # the kernel works image by image on its own threads

    PARAMS: ClassVar[tuple[str, ...]] = ("quality",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(25,), (18,), (15,), (10,), (7,)],
        "cifar": [(80,), (65,), (58,), (50,), (40,)],
        "tiny": [(65,), (58,), (50,), (40,), (25,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"quality": integer(self.name, "quality", params["quality"], lo=1, hi=95)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return jpeg_compression(x, self.params["quality"])

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return jpeg_compression(x, self.params["quality"])


@register_op(
    "pixelate",
    family="image",
    reference=REFERENCE,
    deterministic=True,
    notes="PIL BOX resize to (int(W·scale), int(H·scale)) and BOX back to W×H, 8-bit as PIL. The "
    "reference hard-codes 224 (CIFAR 32, Tiny 64) for both sides; we use each image's own H and W, "
    "which is identical at those sizes and works for any (non-square) size. PIL's BOX upsampling "
    "copies the source pixel floor((i + 0.5)·in/out), so it equals PIL NEAREST (imagecorruptions' "
    "choice). Passes run horizontal then vertical (Pillow <= 12 and the reference's Pillow 5); "
    "Pillow 13 goes vertical first when the height shrinks by over twice as many pixels as the "
    "width, which moves a few pixels by one level on such very tall images. " + UINT8_NOTE + " "
    + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class Pixelate(Op):
    """Pixelation by BOX down- and up-sampling (ImageNet-C pixelate)."""

    CPU_BLOCK = 0  # the kernel works image by image on its own threads

    PARAMS: ClassVar[tuple[str, ...]] = ("scale",)
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "imagenet": [(0.6,), (0.5,), (0.4,), (0.3,), (0.25,)],
        "cifar": [(0.95,), (0.9,), (0.85,), (0.75,), (0.65,)],
        "tiny": [(0.9,), (0.8,), (0.7,), (0.6,), (0.5,)],
    }

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"scale": real(self.name, "scale", params["scale"], lo=0.0, hi=1.0, lo_open=True)}

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return pixelate(x, self.params["scale"])

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        return pixelate(x, self.params["scale"])

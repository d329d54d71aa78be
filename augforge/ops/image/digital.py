"""ImageNet-C digital corruptions: JPEG compression (a real codec) and pixelate (PIL BOX twice).

Both quantise to 8 bits like the reference, which hands PIL uint8 images: the input is rounded
with round(x · 255) (this inverts k / 255 exactly) and the output is k / 255.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from augforge.core.op import Op
from augforge.core.registry import register_op
from augforge.ops.image._checks import integer, real
from augforge.ops.image._threads import for_each_sample
from augforge.ops.image.kernels.resample import resize_box, resize_box_levels, to_levels

REFERENCE = (
    "Hendrycks & Dietterich, ICLR 2019: ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C "
    "(hendrycks/robustness make_imagenet_c.py, make_cifar_c.py, make_tinyimagenet_c.py)"
)
PRESET_NOTE = "Presets: imagenet (224 px), cifar (CIFAR-10-C, 32 px), tiny (Tiny-ImageNet-C, 64 px)."


# --------------------------------------------------------------------------- kernels


def _jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one uint8 HWC (C = 1 or 3) picture with PIL at `quality` and decode it."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded if decoded.mode == pil.mode else decoded.convert(pil.mode))
    return out[..., None] if out.ndim == 2 else out


def jpeg_compression(x: torch.Tensor, quality: int) -> torch.Tensor:
    """PIL JPEG encode/decode of each image (libjpeg, PIL defaults: 4:2:0 chroma subsampling for
    RGB, mode 'L' for one channel). The codec runs on the CPU, several images at once (PIL
    releases the GIL); the result returns to x's device and dtype."""
    b, c, h, w = x.shape
    hwc = torch.empty((b, h, w, c), dtype=torch.uint8)
    hwc.copy_(to_levels(x.detach()).permute(0, 2, 3, 1))  # round(x·255) in float64, as uint8 HWC
    src = hwc.numpy()
    decoded = np.empty_like(src)

    def one(i: int) -> None:
        decoded[i] = _jpeg_roundtrip(src[i], quality)

    for_each_sample(one, b)
    return torch.from_numpy(decoded).to(x.device).permute(0, 3, 1, 2).to(x.dtype).div_(255.0)


def pixelate_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The intermediate size (H', W') = (int(H·scale), int(W·scale)), at least 1 pixel."""
    return max(1, int(height * scale)), max(1, int(width * scale))


def pixelate(x: torch.Tensor, scale: float) -> torch.Tensor:
    """PIL BOX down to pixelate_size(H, W, scale), then BOX back up to H×W, 8-bit like PIL.

    The vertical and horizontal passes are separable matrix products (kernels.resample), so this
    runs on any device and is bit-exact to PIL's 8-bit resampler.
    """
    h, w = x.shape[-2:]
    small = resize_box_levels(to_levels(x), pixelate_size(h, w, scale))
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
    "1-channel images are encoded as PIL mode 'L' (imagecorruptions goes via RGB). " + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class JpegCompression(Op):
    """JPEG compression artefacts (ImageNet-C jpeg_compression)."""

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
    "width, which moves a few pixels by one level on such very tall images. " + PRESET_NOTE,
    tags=("digital", "imagenet-c"),
)
class Pixelate(Op):
    """Pixelation by BOX down- and up-sampling (ImageNet-C pixelate)."""

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

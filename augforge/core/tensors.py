"""Conversions between stored uint8 pictures and the (B, C, H, W) tensors ops take.

They run once per batch in the shard writer, so each is a few passes over memory: a list of
pictures is cast straight into the float batch (no stacked uint8 copy), and `to_uint8` makes its
float64 working copy in NHWC order, so the uint8 result and every picture in it are contiguous
(encoders take them without another copy). Values are exactly those of the plain formulas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from augforge.core.errors import InvalidInputError

# float32 cannot hold k/255 exactly; without this slack, truncation would turn 183 into 182.
_TRUNCATE_SLACK = 1e-4


def _same_hwc(images: Sequence[np.ndarray]) -> bool:
    """Whether `images` are uint8 (H, W, 1|3) numpy arrays of one shape (the shard writer's batches)."""
    first = images[0]
    return all(
        isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.shape == first.shape for a in images
    ) and first.ndim == 3 and first.shape[-1] in (1, 3)


def _nhwc(images: np.ndarray | torch.Tensor | Sequence[np.ndarray], what: str) -> torch.Tensor:
    """uint8 HW / HWC / NHWC / list of HWC -> uint8 NHWC tensor (sharing a single input's memory)."""
    if isinstance(images, (list, tuple)):
        images = np.stack([np.asarray(a) for a in images])
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # torch warns on read-only arrays (mmap, PIL buffers)
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise InvalidInputError(f"{what} expects uint8 pictures, got {t.dtype}")
    if t.ndim == 2:
        t = t[None, :, :, None]
    elif t.ndim == 3:
        t = t[None] if t.shape[-1] in (1, 3) else t[..., None]
    if t.ndim != 4 or t.shape[-1] not in (1, 3):
        raise InvalidInputError(f"{what} expects HWC / NHWC with C in (1, 3), got {tuple(t.shape)}")
    return t


def to_float(images: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HWC (or NHWC, or a list of HWC) -> float32 (B, C, H, W) in [0, 1] (contiguous)."""
    if isinstance(images, (list, tuple)) and images and _same_hwc(images):
        h, w, c = images[0].shape
        out = torch.empty((len(images), c, h, w), dtype=torch.float32)
        view = out.numpy().transpose(0, 2, 3, 1)
        for i, image in enumerate(images):
            view[i] = image  # the uint8 -> float32 cast, written in CHW order
        return out.div_(255.0)
    t = _nhwc(images, "to_float")
    b, h, w, c = t.shape
    out = torch.empty((b, c, h, w), dtype=torch.float32, device=t.device)
    out.copy_(t.permute(0, 3, 1, 2))
    return out.div_(255.0)


def to_uint8_batch(images: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HWC (or NHWC, or a list of HWC) -> contiguous uint8 (B, C, H, W): the input of the
    ops' 8-bit path (`Op.takes_uint8`), which skips the float round trip."""
    return _nhwc(images, "to_uint8_batch").permute(0, 3, 1, 2).contiguous()


def uint8_to_numpy(x: torch.Tensor) -> np.ndarray:
    """uint8 (B, C, H, W) -> contiguous uint8 NHWC numpy on the CPU (what the encoders take)."""
    if x.ndim != 4 or x.dtype != torch.uint8:
        raise InvalidInputError(f"uint8_to_numpy expects uint8 (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    return x.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()


def to_uint8(x: torch.Tensor, *, mode: str = "truncate") -> np.ndarray:
    """float (B, C, H, W) in [0, 1] -> contiguous uint8 NHWC numpy.

    mode="truncate" mimics the reference savers (`np.uint8(clip(x * 255))` truncates);
    mode="round" rounds to nearest.
    """
    if x.ndim != 4:
        raise InvalidInputError(f"to_uint8 expects (B, C, H, W), got {tuple(x.shape)}")
    if mode not in ("truncate", "round"):
        raise ValueError(f"mode must be 'truncate' or 'round', got {mode!r}")
    # In place on a float64 copy laid out channels-last (NHWC in memory), so the uint8 cast below
    # keeps that layout and the permute to NHWC is free. Values end in [0, 255] by construction,
    # so the cast's truncation toward zero is the floor.
    scaled = x.detach().to(torch.float64, memory_format=torch.channels_last, copy=True)
    scaled = scaled.clamp_(0, 1).mul_(255.0)
    scaled = scaled.add_(_TRUNCATE_SLACK) if mode == "truncate" else scaled.round_()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

"""Preview pictures: one input image under a grid of ops × severities, labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from augforge.core.registry import build_op, get_op
from augforge.core.tensors import to_float, to_uint8

_LABEL_W = 150
_HEADER_H = 22


def load_picture(path: str | Path, size: int) -> np.ndarray:
    """An RGB uint8 picture, resized (shorter side) and centre-cropped to size × size."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        scale = size / min(im.size)
        im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                       Image.BILINEAR)
        left, top = (im.width - size) // 2, (im.height - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)))


def preview_grid(
    picture: np.ndarray,
    ops: Sequence[str],
    severities: Sequence[int] | None = None,
    *,
    preset: str | None = None,
    seed: int = 0,
    key: str = "preview",
) -> Image.Image:
    """Rows = ops, columns = clean + each severity; returns a labelled PIL image."""
    if not ops:
        raise ValueError("preview needs at least one op")
    specs = [get_op(name) for name in ops]
    levels = list(severities) if severities else list(specs[0].severities)
    h, w = picture.shape[:2]
    canvas = Image.new("RGB", (_LABEL_W + w * (len(levels) + 1), _HEADER_H + h * len(specs)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(["clean", *[f"severity {s}" for s in levels]]):
        draw.text((_LABEL_W + col * w + 4, 4), title, fill="black")
    x = to_float(picture)
    for row, spec in enumerate(specs):
        top = _HEADER_H + row * h
        draw.text((4, top + h // 2 - 6), spec.name, fill="black")
        canvas.paste(Image.fromarray(picture), (_LABEL_W, top))
        for col, level in enumerate(levels, start=1):
            if level not in spec.severities:
                continue
            out = build_op(spec.name, level, preset=preset)(x, seed, keys=[key])
            canvas.paste(Image.fromarray(to_uint8(out)[0].squeeze()), (_LABEL_W + col * w, top))
    return canvas

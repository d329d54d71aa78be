"""PNG bytes of a uint8 picture: exactly what Pillow's `Image.save(format="PNG")` writes, faster.

For a 32 x 32 picture Pillow spends about a fifth of `save` in Python around its zlib encoder
(Image object, plugin dispatch, encoder settings, chunk writer). This module drives the same
C decoder and encoder directly and writes the chunks Pillow writes for a plain L or RGB picture
(signature, IHDR, one IDAT per encoder output block, IEND), so the bytes are identical.
A probe compares both ways once per process (and tests/pipelines/test_pngenc.py across sizes,
modes and levels); if a Pillow release ever writes something else, Pillow's own save is used.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

_MAGIC = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 3: 2}  # channels -> PNG colour type (grey, truecolour), 8 bits each
_MAXBLOCK = 65536  # PIL.ImageFile.MAXBLOCK: the encoder output block, one IDAT chunk each
_fast_ok: bool | None = None  # None until the probe ran


def _chunk(cid: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(cid)) & 0xFFFFFFFF
    return b"".join((struct.pack(">I", len(data)), cid, data, struct.pack(">I", crc)))


def png_pillow(pixels: np.ndarray, level: int) -> bytes:
    """uint8 (H, W, 1|3) -> PNG through `Image.save` (zlib `level`, no optimize pass)."""
    from PIL import Image

    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=level, optimize=False)
    return buf.getvalue()


def png_direct(pixels: np.ndarray, level: int) -> bytes:
    """The same bytes as `png_pillow`, from Pillow's C codecs without its Python layers."""
    from PIL import Image

    h, w, c = pixels.shape
    mode = "L" if c == 1 else "RGB"
    core = Image.core.new(mode, (w, h))
    decoder = Image._getdecoder(mode, "raw", (mode, 0, 1))
    decoder.setimage(core, (0, 0, w, h))
    decoder.decode(np.ascontiguousarray(pixels).data)
    encoder = Image._getencoder(mode, "zip", mode, (False, level, -1, b""))
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[c], 0, 0, 0)
    parts = [_MAGIC, _chunk(b"IHDR", header)]
    try:
        encoder.setimage(core, (0, 0, w, h))
        while True:
            status, data = encoder.encode(max(_MAXBLOCK, w * 4))[1:]
            parts.append(_chunk(b"IDAT", data))
            if status:
                break
    finally:
        encoder.cleanup()
    if status < 0:
        raise OSError(f"PNG encoder error {status}")
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def _probe() -> bool:
    """Whether png_direct writes png_pillow's bytes here (grey and RGB, two levels)."""
    ramp = np.arange(24 * 40, dtype=np.uint32).reshape(24, 40, 1)
    rgb = np.concatenate([ramp, ramp * 3, ramp * 5], -1) % 256
    pics = [(ramp * 7 % 251).astype(np.uint8), rgb.astype(np.uint8)]
    try:
        return all(png_direct(p, lv) == png_pillow(p, lv) for p in pics for lv in (1, 6))
    except Exception:  # a Pillow without these internals
        return False


def encode_png(pixels: np.ndarray, level: int = 3) -> bytes:
    """uint8 (H, W, 1|3) -> PNG bytes identical to Pillow's `save(compress_level=level, optimize=False)`."""
    global _fast_ok
    if _fast_ok is None:
        _fast_ok = _probe()
    if _fast_ok and pixels.ndim == 3 and pixels.shape[-1] in _COLOR_TYPE and pixels.dtype == np.uint8:
        return png_direct(pixels, level)
    return png_pillow(pixels, level)

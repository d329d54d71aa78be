"""Decoding stored pictures into uint8 HWC arrays, and the preprocessing every reader shares.

Every failure to decode becomes `BadInputError` with a reason (zero-byte file, not an image,
truncated data, unsupported mode, too many pixels), so a pipeline quarantines the record instead
of failing. Decoding is deterministic: the same bytes give the same array on every machine.

Mode rules (documented because they change pixels):
- palette, RGBA/LA (alpha dropped, like torchvision's `pil_loader`), CMYK, YCbCr -> PIL's RGB;
- 16-bit and 32-bit integer images keep the high byte of a 16-bit value (`v >> 8`), which is what
  PIL itself does for 16-bit RGB PNGs (PIL's own 'I;16' -> 'L' conversion clips at 255 instead);
- 'L' output uses PIL's ITU-R 601-2 luma conversion of the RGB picture.
EXIF orientation is not applied: pixels come out as stored, like torchvision's `pil_loader` and
the ImageNet-C / CIFAR-10-C generators (none calls `ImageOps.exif_transpose`), so a benchmark
built from camera JPEGs matches the released one. Animated GIF/WebP/TIFF give their first frame.
`max_pixels` is checked on the header before decoding (PIL's warning between its limit and twice
it is silenced: `max_pixels` decides); PIL's hard limit (2 x `Image.MAX_IMAGE_PIXELS`) still
refuses larger pictures whatever `max_pixels` says. Only regular files are read: a FIFO, socket
or device named like a picture is refused without opening it for a blocking read.
Truncation: a file cut short is refused, never half-decoded; a PNG whose (complete) zlib stream
holds fewer rows than its header declares is refused too (PIL alone would fill them with black).
A JPEG cut short but ending with an EOI marker still decodes with its missing blocks gray: libjpeg
only warns about it, and PIL does not expose the warning.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from augforge.core.errors import AugforgeError, BadInputError, InvalidParameterError

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default MAX_IMAGE_PIXELS (1024 * 1024 * 1024 // 4 // 3)
OUTPUT_MODES = ("RGB", "L")
# Formats PIL may open. Others (EPS runs Ghostscript, ...) are refused as "not an image".
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "PPM", "TIFF", "GIF")
_GRAY_MODES = ("1", "L", "LA")
_COLOR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
_PALETTE_MODES = ("P", "PA")
_WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
SUPPORTED_MODES = _GRAY_MODES + _COLOR_MODES + _PALETTE_MODES + _WIDE_MODES

Source = bytes | bytearray | memoryview | str | os.PathLike[str]
_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"))


def _read(source: Source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise BadInputError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _SPECIAL if test(mode)), "special file")
            raise BadInputError(f"not a regular file ({kind})")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BadInputError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header, check size and mode, then force a full decode."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise AugforgeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by other code): truncated files would "
            "decode silently; set it back to False"
        )
    if not data:
        raise BadInputError("zero-byte file")
    if not Image.OPEN.keys() >= set(ALLOWED_FORMATS):
        Image.init()  # registers the plugins PIL does not preload (WEBP, TIFF)
    try:
        with warnings.catch_warnings():  # max_pixels below decides, not PIL's warning threshold
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"too many pixels (decompression-bomb guard): {exc}") from None
    except UnidentifiedImageError:
        raise BadInputError(
            f"not an image (or not one of {', '.join(ALLOWED_FORMATS)}); first bytes {data[:8]!r}"
        ) from None
    except Exception as exc:  # PIL raises many types on malformed headers
        raise BadInputError(f"unreadable image header: {type(exc).__name__}: {exc}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise BadInputError(
            f"too many pixels: {width}x{height} = {width * height} > max_pixels={max_pixels} "
            "(decompression-bomb guard)"
        )
    if img.mode not in SUPPORTED_MODES:
        raise BadInputError(f"unsupported image mode {img.mode!r} ({img.format}); supported: "
                            f"{', '.join(SUPPORTED_MODES)}")
    short = _png_short_data(data) if img.format == "PNG" else None
    if short:  # before decoding: a huge header over a few bytes of data costs nothing
        raise BadInputError(f"truncated file: {short}")
    try:
        img.load()
    except OSError as exc:
        reason = "truncated file" if "truncated" in str(exc).lower() else "corrupt image data"
        raise BadInputError(f"{reason}: {exc}") from None
    except Exception as exc:
        raise BadInputError(f"corrupt image data: {type(exc).__name__}: {exc}") from None
    return img


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_short_data(data: bytes) -> str | None:
    """Why a PNG's image data holds fewer bytes than its header needs, or None.

    PIL fills the rows a complete-but-short zlib stream lacks with zeros instead of failing, so
    the inflated size of the IDAT chunks is counted here (in 1 MiB steps, not kept; about a
    fifth of PIL's own decoding time)."""
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR" and length >= 13:
            header = payload
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat or header[9] not in _PNG_CHANNELS:
        return None
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    bits = header[8] * _PNG_CHANNELS[header[9]]
    passes = _ADAM7 if header[12] == 1 else ((0, 0, 1, 1),)
    need = 0
    for x0, y0, dx, dy in passes:
        cols, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if cols > 0 and rows > 0:
            need += rows * (1 + (cols * bits + 7) // 8)
    inflate, got = zlib.decompressobj(), 0
    try:
        for chunk in idat:
            while chunk and got < need:
                got += len(inflate.decompress(chunk, 1 << 20))
                chunk = inflate.unconsumed_tail
    except zlib.error:
        return None  # PIL decoded it: leave damaged-but-accepted streams to PIL's judgement
    return None if got >= need else f"PNG image data holds {got} of the {need} bytes its header declares"


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert a loaded picture of any supported mode to 'RGB' or 'L' by the module's rules."""
    src = img.mode
    if src in _WIDE_MODES:
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise BadInputError(f"integer image ({src}) has values outside 0..65535")
        img = Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8))
    elif src in _GRAY_MODES:
        img = img.convert("L")
    elif src in _PALETTE_MODES:
        # Through RGBA when there is transparency: same colours, no PIL warning.
        transparent = src == "PA" or "transparency" in img.info
        img = img.convert("RGBA").convert("RGB") if transparent else img.convert("RGB")
    elif src != "RGB":
        img = img.convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def load_image(source: Source, *, mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decoded PIL picture in `mode` ('RGB' or 'L') from bytes or a path."""
    if mode not in OUTPUT_MODES:
        raise InvalidParameterError(f"mode must be one of {OUTPUT_MODES}, got {mode!r}")
    img = _open(_read(source), max_pixels)
    try:
        return _to_mode(img, mode)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"cannot convert mode {img.mode!r} to {mode!r}: {exc}") from None


def decode_image(source: Source, *, mode: str = "RGB", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """uint8 (H, W, 3) for mode 'RGB' or (H, W, 1) for mode 'L', from bytes or a path."""
    return _as_array(load_image(source, mode=mode, max_pixels=max_pixels))


def _as_array(img: Image.Image) -> np.ndarray:
    arr = np.array(img, dtype=np.uint8)  # np.asarray would give a read-only view
    return arr[..., None] if arr.ndim == 2 else arr


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """torchvision `Resize(size)` on a PIL picture: shorter side -> size, longer side truncated."""
    width, height = img.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) == (width, height):
        return img
    return img.resize((new_w, new_h), Image.Resampling.BILINEAR)


def center_crop(img: Image.Image, height: int, width: int) -> Image.Image:
    """torchvision `CenterCrop((height, width))`: offsets round half to even; zero-pads small pictures."""
    w, h = img.size
    if width > w or height > h:
        left, top = max(width - w, 0) // 2, max(height - h, 0) // 2
        padded = Image.new(img.mode, (max(w, width), max(h, height)), 0)
        padded.paste(img, (left, top))
        img, (w, h) = padded, padded.size
    top = round((h - height) / 2.0)  # Python rounds half to even, as torchvision does
    left = round((w - width) / 2.0)
    return img.crop((left, top, left + width, top + height))


def _size_option(name: str, value: Any) -> tuple[int, ...] | None:
    """None, an int, or an (height, width) pair of positive ints."""
    if value is None:
        return None
    items = [value] if isinstance(value, int) else value
    if (
        not isinstance(items, (list, tuple))
        or len(items) not in (1, 2)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
    ):
        raise InvalidParameterError(f"{name} must be a positive int or a [height, width] pair, got {value!r}")
    return tuple(items)


@dataclass(frozen=True)
class Preprocess:
    """Decode options every reader shares: output mode, resize and centre crop (torchvision semantics).

    `resize=256` scales the shorter side to 256 (PIL bilinear, like `Resize(256)`); `resize=[h, w]`
    resizes to exactly h x w (like `Resize((h, w))`). `center_crop=224` or `[h, w]` then crops the
    centre (like `CenterCrop`). Order: decode -> mode -> resize -> crop.
    """

    mode: str = "RGB"
    resize: tuple[int, ...] | None = None
    center_crop: tuple[int, ...] | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_options(
        cls,
        mode: str = "RGB",
        resize: Any = None,
        center_crop: Any = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Preprocess:
        """Validate user options (from a recipe or keyword arguments)."""
        if mode not in OUTPUT_MODES:
            raise InvalidParameterError(f"mode must be one of {OUTPUT_MODES}, got {mode!r}")
        if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels <= 0:
            raise InvalidParameterError(f"max_pixels must be a positive int, got {max_pixels!r}")
        return cls(mode, _size_option("resize", resize), _size_option("center_crop", center_crop), max_pixels)

    def decode(self, source: Source) -> tuple[np.ndarray, dict[str, Any]]:
        """Bytes or a path -> (uint8 HWC, meta with the original (height, width))."""
        img = load_image(source, mode=self.mode, max_pixels=self.max_pixels)
        return self._finish(img), {"original_size": [img.height, img.width]}

    def from_array(self, array: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """A uint8 (H, W), (H, W, 1) or (H, W, 3) array -> (uint8 HWC, meta), same rules as files."""
        arr = array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array
        if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
            raise BadInputError(f"expected a uint8 (H, W[, 1 or 3]) array, got {array.dtype} {array.shape}")
        meta: dict[str, Any] = {"original_size": [int(arr.shape[0]), int(arr.shape[1])]}
        is_gray = arr.ndim == 2
        if self.resize is None and self.center_crop is None and (self.mode == "L") == is_gray:
            return np.array(arr[..., None] if is_gray else arr, dtype=np.uint8, order="C"), meta  # a copy
        img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))  # 2-D -> 'L', HxWx3 -> 'RGB'
        return self._finish(img if img.mode == self.mode else img.convert(self.mode)), meta

    def _finish(self, img: Image.Image) -> np.ndarray:
        if self.resize is not None:
            if len(self.resize) == 1:
                img = resize_shorter(img, self.resize[0])
            elif (img.height, img.width) != self.resize:
                img = img.resize((self.resize[1], self.resize[0]), Image.Resampling.BILINEAR)
        if self.center_crop is not None:
            height, width = self.center_crop * 2 if len(self.center_crop) == 1 else self.center_crop
            img = center_crop(img, height, width)
        return _as_array(img)

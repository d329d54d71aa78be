"""decode_image: every failure is a BadInputError with a reason; every mode converts by fixed rules."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from augforge.core.errors import AugforgeError, BadInputError
from augforge.datasets.decode import DEFAULT_MAX_PIXELS, decode_image

RNG = np.random.default_rng(1234)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def random_rgb(h: int = 40, w: int = 56) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_rgb_png_round_trip_from_bytes_and_path(tmp_path):
    arr = random_rgb()
    data = encode(Image.fromarray(arr), "PNG")
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (data, path, str(path)):
        out = decode_image(source)
        assert out.dtype == np.uint8 and out.shape == (40, 56, 3)
        assert out.flags.c_contiguous and out.flags.writeable
        np.testing.assert_array_equal(out, arr)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(BadInputError, match="zero-byte"):
        decode_image(path)


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="cannot read"):
        decode_image(tmp_path / "nope.png")


def test_text_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(BadInputError, match="not an image"):
        decode_image(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg_is_refused(keep):
    data = encode(Image.fromarray(random_rgb(64, 64)), "JPEG", quality=90)
    assert decode_image(data).shape == (64, 64, 3)  # the intact file decodes
    with pytest.raises(BadInputError, match="truncated"):
        decode_image(data[: int(len(data) * keep)])


def test_jpeg_missing_only_its_end_marker_is_refused():
    data = encode(Image.fromarray(random_rgb(64, 64)), "JPEG", quality=90)
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(BadInputError, match="truncated"):
        decode_image(data[:-2])


def test_truncated_png_is_refused():
    data = encode(Image.fromarray(random_rgb(64, 64)), "PNG")
    with pytest.raises(BadInputError, match="truncated"):
        decode_image(data[: len(data) // 2])


def test_load_truncated_images_stays_false_and_is_enforced(monkeypatch):
    import augforge.datasets  # noqa: F401  (importing must not flip the flag)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(AugforgeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_image(encode(Image.fromarray(random_rgb()), "PNG"))


def test_format_outside_the_allow_list_is_refused():
    # TGA is a picture PIL can read, but not one of the formats readers accept.
    data = encode(Image.fromarray(random_rgb()), "TGA")
    assert Image.open(io.BytesIO(data)).format == "TGA"
    with pytest.raises(BadInputError, match="not an image"):
        decode_image(data)


def test_cmyk_converts_with_pil_rules():
    # (C, M, Y, K) -> RGB for pure inks: exact under any CMYK formula that keeps white and black.
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255],
                      [100, 0, 0, 0]]], dtype=np.uint8)
    img = Image.frombytes("CMYK", (6, 1), cmyk.tobytes())
    out = decode_image(encode(img, "TIFF"))
    expected = [[255, 255, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0], [155, 255, 255]]
    np.testing.assert_array_equal(out[0], np.array(expected, dtype=np.uint8))


def test_cmyk_jpeg_decodes_to_rgb():
    img = Image.new("CMYK", (32, 32), (0, 255, 0, 0))  # magenta
    out = decode_image(encode(img, "JPEG", quality=95))
    assert out.shape == (32, 32, 3)
    assert np.abs(out.astype(int) - [255, 0, 255]).max() <= 3


def test_palette_with_transparency_keeps_palette_colours_without_warnings():
    idx = RNG.integers(0, 4, (20, 30), dtype=np.uint8)
    palette = [[200, 10, 10], [10, 200, 10], [10, 10, 200], [90, 90, 90]]
    img = Image.frombytes("P", (30, 20), idx.tobytes())
    img.putpalette([c for rgb in palette for c in rgb] + [0] * (768 - 12))
    data = encode(img, "PNG", transparency=bytes([0, 255, 128, 255]))  # tRNS with per-entry alpha
    assert Image.open(io.BytesIO(data)).info.get("transparency") is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = decode_image(data)
    np.testing.assert_array_equal(out, np.array(palette, dtype=np.uint8)[idx])


def test_rgba_drops_alpha_and_keeps_colour():
    rgba = RNG.integers(0, 256, (16, 24, 4), dtype=np.uint8)
    out = decode_image(encode(Image.fromarray(rgba), "PNG"))
    np.testing.assert_array_equal(out, rgba[..., :3])


def test_grayscale_to_rgb_and_l():
    gray = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
    data = encode(Image.fromarray(gray), "PNG")
    np.testing.assert_array_equal(decode_image(data), np.repeat(gray[..., None], 3, axis=2))
    out = decode_image(data, mode="L")
    assert out.shape == (20, 30, 1)
    np.testing.assert_array_equal(out[..., 0], gray)
    la = np.stack([gray, np.full_like(gray, 7)], axis=-1)
    np.testing.assert_array_equal(decode_image(encode(Image.fromarray(la), "PNG"), mode="L")[..., 0], gray)


def test_one_bit_becomes_0_or_255():
    bits = RNG.integers(0, 2, (16, 16)).astype(bool)
    out = decode_image(encode(Image.fromarray(bits), "PNG"), mode="L")[..., 0]
    np.testing.assert_array_equal(out, np.where(bits, 255, 0))


def test_rgb_to_l_uses_itu_601_luma():
    arr = random_rgb(32, 32)
    out = decode_image(encode(Image.fromarray(arr), "PNG"), mode="L")[..., 0]
    r, g, b = (arr[..., i].astype(np.int64) for i in range(3))
    expected = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16  # L = 0.299 R + 0.587 G + 0.114 B
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_sixteen_bit_gray_and_rgb_keep_the_high_byte():
    values = RNG.integers(0, 65536, (12, 20), dtype=np.uint16)
    values[0, :4] = [0, 255, 256, 65535]
    gray_png = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(gray_png)).mode.startswith("I")
    high = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(decode_image(gray_png, mode="L")[..., 0], high)
    np.testing.assert_array_equal(decode_image(gray_png), np.repeat(high[..., None], 3, axis=2))
    # A 16-bit RGB PNG (written by OpenCV, BGR order): PIL keeps the high byte too -> same rule.
    rgb16 = np.stack([values, values[::-1], 65535 - values], axis=-1)
    ok, buf = cv2.imencode(".png", rgb16[..., ::-1])
    assert ok
    np.testing.assert_array_equal(decode_image(buf.tobytes()), (rgb16 >> 8).astype(np.uint8))


def test_float_image_is_an_unsupported_mode():
    img = Image.fromarray(RNG.random((8, 8)).astype(np.float32))
    assert img.mode == "F"
    with pytest.raises(BadInputError, match="unsupported image mode 'F'"):
        decode_image(encode(img, "TIFF"))


def test_max_pixels_limit():
    data = encode(Image.fromarray(random_rgb(50, 60)), "PNG")
    assert decode_image(data, max_pixels=3000).shape == (50, 60, 3)
    with pytest.raises(BadInputError, match="too many pixels: 60x50 = 3000 > max_pixels=2999"):
        decode_image(data, max_pixels=2999)


@pytest.mark.parametrize("max_pixels", [DEFAULT_MAX_PIXELS, 10**6])
def test_decompression_bomb_header_is_refused_before_decoding(max_pixels):
    # A 60 000 x 60 000 PNG header with a few bytes of data: must fail on the header alone.
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))
    with pytest.raises(BadInputError, match="too many pixels"):
        decode_image(data, max_pixels=max_pixels)


def test_first_frame_of_a_gif():
    frames = [Image.fromarray(np.full((10, 10), v, np.uint8)) for v in (40, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue())
    assert out.shape == (10, 10, 3) and (out == 40).all()


def adam7_gray_png(pixels: np.ndarray, keep_passes: int = 7) -> bytes:
    """An interlaced (Adam7) 8-bit gray PNG, written by hand (PIL only writes non-interlaced ones)."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2))
    raw = b"".join(b"\0" + row.tobytes() for x0, y0, dx, dy in passes[:keep_passes]
                   for row in pixels[y0::dy, x0::dx] if row.size)
    height, width = pixels.shape
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def test_png_row_count_check_accepts_every_complete_layout():
    gray = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(adam7_gray_png(gray), mode="L")[..., 0], gray)
    rgb = random_rgb(37, 53)
    for img in (Image.fromarray(rgb), Image.fromarray(rgb).convert("1"), Image.fromarray(rgb).convert("P"),
                Image.fromarray(rgb).convert("RGBA"), Image.fromarray(rgb).convert("LA"),
                Image.fromarray(gray.astype(np.uint16) * 257), Image.fromarray(rgb[:1, :1])):
        assert decode_image(encode(img, "PNG")).shape == (img.height, img.width, 3), img.mode


def test_png_whose_complete_stream_is_short_is_truncated():
    gray = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
    with pytest.raises(BadInputError, match="truncated file: PNG image data holds"):
        decode_image(adam7_gray_png(gray, keep_passes=6))  # the last pass (every odd row) missing
    rows = zlib.compress(b"".join(b"\0" + gray[r].tobytes() for r in range(36)))  # 36 of 37 rows
    header = struct.pack(">IIBBBBB", 53, 37, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))
    with pytest.raises(BadInputError, match="holds 1944 of the 1998 bytes"):
        decode_image(data)

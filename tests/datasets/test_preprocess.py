"""Preprocess: mode, resize and centre crop with torchvision Resize / CenterCrop semantics on PIL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from augforge.core.errors import InvalidParameterError
from augforge.datasets.decode import Preprocess, center_crop, resize_shorter

RNG = np.random.default_rng(7)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("height", "width", "resized", "offset"),
    [
        # Resize(256): shorter side 256, longer side int(256 * long / short) (truncated, not rounded).
        # CenterCrop(224): offset round((side - 224) / 2) with round-half-to-even: 58.5 -> 58.
        (375, 500, (256, 341), (16, 58)),
        (500, 375, (341, 256), (58, 16)),
        (300, 451, (256, 384), (16, 80)),  # 384.85 truncates to 384
    ],
)
def test_imagenet_resize_256_center_crop_224(height, width, resized, offset):
    arr = RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out, meta = Preprocess.from_options(resize=256, center_crop=224).decode(png(arr))
    scaled = np.asarray(Image.fromarray(arr).resize((resized[1], resized[0]), Image.BILINEAR))
    top, left = offset
    np.testing.assert_array_equal(out, scaled[top : top + 224, left : left + 224])
    assert meta["original_size"] == [height, width]


def test_resize_to_exact_pair_like_resize_64_64():
    arr = RNG.integers(0, 256, (80, 100, 3), dtype=np.uint8)
    out, _ = Preprocess.from_options(resize=[64, 48]).decode(png(arr))
    np.testing.assert_array_equal(out, np.asarray(Image.fromarray(arr).resize((48, 64), Image.BILINEAR)))


def test_resize_keeps_a_picture_whose_shorter_side_already_matches():
    img = Image.fromarray(RNG.integers(0, 256, (256, 300, 3), dtype=np.uint8))
    assert resize_shorter(img, 256) is img


def test_center_crop_larger_than_picture_zero_pads_like_torchvision():
    arr = RNG.integers(1, 256, (20, 30, 3), dtype=np.uint8)
    out = np.asarray(center_crop(Image.fromarray(arr), 32, 32))
    # torchvision pads left/top by (crop - size) // 2: (32 - 30) // 2 = 1 and (32 - 20) // 2 = 6.
    assert out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out[6:26, 1:31], arr)
    mask = np.ones((32, 32), bool)
    mask[6:26, 1:31] = False
    assert (out[mask] == 0).all()


def test_center_crop_rectangular():
    arr = RNG.integers(0, 256, (9, 12), dtype=np.uint8)
    out = np.asarray(center_crop(Image.fromarray(arr), 4, 7))
    np.testing.assert_array_equal(out, arr[2:6, 2:9])  # round(2.5) = 2, round(2.5) = 2


def test_grayscale_mode_with_resize():
    arr = RNG.integers(0, 256, (40, 60), dtype=np.uint8)
    out, _ = Preprocess.from_options(mode="L", resize=20).decode(png(arr))
    assert out.shape == (20, 30, 1)
    expected = np.asarray(Image.fromarray(arr).resize((30, 20), Image.BILINEAR))
    np.testing.assert_array_equal(out[..., 0], expected)


def test_arrays_and_files_give_the_same_pixels():
    arr = RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    for options in ({}, {"resize": 32, "center_crop": 24}, {"mode": "L"}, {"mode": "L", "resize": [16, 16]}):
        pre = Preprocess.from_options(**options)
        from_file, meta_file = pre.decode(png(arr))
        from_array, meta_array = pre.from_array(arr)
        np.testing.assert_array_equal(from_file, from_array)
        assert meta_file == meta_array


def test_from_array_without_work_is_a_copy_in_hwc():
    gray = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    out, _ = Preprocess().from_array(gray)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    out_l, _ = Preprocess(mode="L").from_array(gray)
    assert out_l.shape == (10, 12, 1)
    assert not np.shares_memory(out_l, gray)


@pytest.mark.parametrize(
    "options",
    [{"mode": "RGBA"}, {"resize": 0}, {"resize": [1, 2, 3]}, {"resize": 2.5}, {"center_crop": "224"},
     {"center_crop": True}, {"max_pixels": 0}],
)
def test_bad_options_are_refused(options):
    with pytest.raises(InvalidParameterError):
        Preprocess.from_options(**options)

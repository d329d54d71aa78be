"""Digital ops: JPEG (PIL codec) and pixelate (PIL BOX down + BOX up), checked against PIL and
imagecorruptions at 224² and against PIL with typed-in constants for the CIFAR and Tiny presets."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import augforge
from augforge.core.errors import InvalidInputError, InvalidParameterError
from augforge.core.registry import build_op, get_op, list_ops
from augforge.ops.image import digital

from .metrics import psnr
from .reference import reference_corrupt

LEVELS = (1, 2, 3, 4, 5)
MIN_PSNR_DB = 40.0
CUDA = torch.cuda.is_available()

# Independent copy of the constants (reference doc §1.6 and §2.1).
QUALITY = {"imagenet": [25, 18, 15, 10, 7], "cifar": [80, 65, 58, 50, 40], "tiny": [65, 58, 50, 40, 25]}
SCALE = {
    "imagenet": [0.6, 0.5, 0.4, 0.3, 0.25],
    "cifar": [0.95, 0.9, 0.85, 0.75, 0.65],
    "tiny": [0.9, 0.8, 0.7, 0.6, 0.5],
}


def pil_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """The reference: PIL encode at `quality`, decode (uint8 HWC or HW in, same out)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def pil_pixelate(image: np.ndarray, c: float) -> np.ndarray:
    """ImageNet-C pixelate generalised to H×W: BOX to (int(W·c), int(H·c)), BOX back to W×H."""
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((int(w * c), int(h * c)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


def ours(images: np.ndarray, name: str, severity: int, preset: str = "imagenet") -> np.ndarray:
    out = augforge.corrupt(augforge.to_float(images), name, severity, preset=preset)
    return augforge.to_uint8(out, mode="truncate")


def worst_psnr(got: np.ndarray, want: list[np.ndarray] | np.ndarray) -> float:
    return min(psnr(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("severity", LEVELS)
def test_imagenet_jpeg_matches_imagecorruptions(images224, severity):
    got = ours(images224, "jpeg_compression", severity)
    want = [reference_corrupt(im, "jpeg_compression", severity) for im in images224]
    assert worst_psnr(got, want) >= MIN_PSNR_DB


@pytest.mark.parametrize("severity", LEVELS)
def test_imagenet_pixelate_is_pil_box_box(images224, severity):
    """Against PIL directly (BOX down, BOX up), and against imagecorruptions, whose NEAREST
    upsampling PIL computes exactly like BOX upsampling (test_pil_box_upsampling_is_nearest)."""
    got = ours(images224, "pixelate", severity)
    want = [pil_pixelate(im, SCALE["imagenet"][severity - 1]) for im in images224]
    assert worst_psnr(got, want) >= MIN_PSNR_DB
    np.testing.assert_array_equal(got, np.stack(want))  # in fact bit-exact
    reference = [reference_corrupt(im, "pixelate", severity) for im in images224]
    assert worst_psnr(got, reference) >= MIN_PSNR_DB


@pytest.mark.parametrize("severity", [1, 3, 4])  # non-integer factors: 134, 89, 67 px -> 224 px
def test_pixelate_is_not_the_floor_index_nearest_variant(images224, severity):
    """A port with torch/OpenCV nearest upsampling (source floor(i·in/out)) must not pass."""
    x = augforge.to_float(images224[:4])
    c = SCALE["imagenet"][severity - 1]
    small = (int(224 * c), int(224 * c))
    down = torch.from_numpy(np.stack([np.asarray(Image.fromarray(im).resize(small, Image.BOX))
                                      for im in images224[:4]])).permute(0, 3, 1, 2).float() / 255
    floor_nearest = augforge.to_uint8(F.interpolate(down, size=(224, 224), mode="nearest"))
    bilinear = augforge.to_uint8(F.interpolate(down, size=(224, 224), mode="bilinear"))
    got = augforge.to_uint8(build_op("pixelate", severity)(x))
    for other in (floor_nearest, bilinear):
        assert (got != other).mean() > 0.05
        assert worst_psnr(got, other) < MIN_PSNR_DB


def test_pil_box_upsampling_is_nearest(images224):
    """Library fact the op's notes rely on: PIL BOX upsampling copies pixel floor((i+0.5)·in/out),
    i.e. equals PIL NEAREST, so ImageNet-C's and imagecorruptions' pixelate agree."""
    for c in SCALE["imagenet"]:
        small = Image.fromarray(images224[0]).resize((int(224 * c), int(224 * c)), Image.BOX)
        box = np.asarray(small.resize((224, 224), Image.BOX))
        nearest = np.asarray(small.resize((224, 224), Image.NEAREST))
        np.testing.assert_array_equal(box, nearest)


@pytest.mark.parametrize("preset, fixture", [("cifar", "images32"), ("tiny", "images64")])
def test_small_presets_jpeg_match_pil(request, preset, fixture):
    images = request.getfixturevalue(fixture)
    for level in LEVELS:
        want = [pil_jpeg(im, QUALITY[preset][level - 1]) for im in images]
        assert worst_psnr(ours(images, "jpeg_compression", level, preset), want) >= MIN_PSNR_DB, f"s{level}"


@pytest.mark.parametrize("preset, fixture", [("cifar", "images32"), ("tiny", "images64")])
def test_small_presets_pixelate_match_pil(request, preset, fixture):
    images = request.getfixturevalue(fixture)
    for level in LEVELS:
        want = [pil_pixelate(im, SCALE[preset][level - 1]) for im in images]
        assert worst_psnr(ours(images, "pixelate", level, preset), want) >= MIN_PSNR_DB, f"s{level}"


@pytest.mark.parametrize("preset", ["imagenet", "cifar", "tiny"])
def test_tables_equal_the_reference_constants(preset):
    jpeg, pix = get_op("jpeg_compression"), get_op("pixelate")
    assert jpeg.presets == pix.presets == ("imagenet", "cifar", "tiny")
    assert [jpeg.params(s, preset)["quality"] for s in LEVELS] == QUALITY[preset]
    assert [pix.params(s, preset)["scale"] for s in LEVELS] == SCALE[preset]


@pytest.mark.parametrize("shape", [(37, 53), (53, 37), (8, 13), (100, 60)])
def test_non_square_sizes_match_pil(images224, shape):
    h, w = shape
    images = np.ascontiguousarray(images224[:3, :h, :w])
    for level in (1, 5):
        want = [pil_pixelate(im, SCALE["imagenet"][level - 1]) for im in images]
        np.testing.assert_array_equal(ours(images, "pixelate", level), np.stack(want))
        want = [pil_jpeg(im, QUALITY["imagenet"][level - 1]) for im in images]
        np.testing.assert_array_equal(ours(images, "jpeg_compression", level), np.stack(want))


def test_grayscale_uses_pil_mode_l(images64):
    gray = np.ascontiguousarray(images64[:4, :, :, 1])
    x = augforge.to_float(gray[..., None])
    for level in (2, 5):
        jpeg = augforge.to_uint8(build_op("jpeg_compression", level)(x))[..., 0]
        np.testing.assert_array_equal(jpeg, np.stack([pil_jpeg(im, QUALITY["imagenet"][level - 1])
                                                      for im in gray]))
        pix = augforge.to_uint8(build_op("pixelate", level)(x))[..., 0]
        np.testing.assert_array_equal(pix, np.stack([pil_pixelate(im, SCALE["imagenet"][level - 1])
                                                     for im in gray]))


def test_float64_and_float32_inputs_agree(images64):
    x = augforge.to_float(images64[:2])
    for name in ("jpeg_compression", "pixelate"):
        a = build_op(name, 3)(x)
        b = build_op(name, 3)(x.double())
        assert b.dtype == torch.float64
        torch.testing.assert_close(a.double(), b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["jpeg_compression", "pixelate"])
@pytest.mark.parametrize("shape", [(224, 224), (96, 80), (64, 64), (32, 32), (37, 53)])
def test_uint8_path_equals_the_float_path(images224, name, shape):
    """uint8 (B, C, H, W) in -> uint8 out, equal to the float path's levels (PIL and batched
    pixelate branches, 3 and 1 channels), and equal to PIL on the same pictures."""
    h, w = shape
    images = np.ascontiguousarray(images224[:3, :h, :w])
    op = build_op(name, 4)
    for pics in (images, images[..., 1:2]):
        chw = torch.from_numpy(pics).permute(0, 3, 1, 2).contiguous()
        got = op(chw)
        assert got.dtype == torch.uint8 and got.shape == chw.shape and got.is_contiguous()
        want = augforge.to_uint8(op(augforge.to_float(pics)), mode="truncate")
        np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)
        reference = pil_jpeg if name == "jpeg_compression" else pil_pixelate
        level = QUALITY["imagenet"][3] if name == "jpeg_compression" else SCALE["imagenet"][3]
        pil = np.stack([reference(np.ascontiguousarray(im if im.shape[-1] == 3 else im[..., 0]), level)
                        for im in pics])
        np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), pil.reshape(want.shape))
    # a channels-last (non-contiguous) uint8 batch gives the same
    chw = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert torch.equal(op(chw), op(chw.contiguous()))


def test_uint8_input_checks():
    op = build_op("pixelate", 1)
    with pytest.raises(InvalidInputError, match="channels"):
        op(torch.zeros(1, 2, 16, 16, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="at least"):
        op(torch.zeros(1, 3, 4, 16, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="shape"):
        op(torch.zeros(3, 16, 16, dtype=torch.uint8))
    assert get_op("pixelate").cls.takes_uint8()
    # ops without the 8-bit path (more ops gain one over time, so they come from the registry)
    float_only = [s.name for s in list_ops("image") if not s.cls.takes_uint8()]
    assert float_only
    for name in float_only[:3]:
        with pytest.raises(InvalidInputError, match="float"):
            build_op(name, 1)(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_float_inputs_round_like_float64_near_half_levels():
    """Levels are round(x·255) formed in float64. The float32 product lands exactly on k + ½ for
    128 float32 inputs near (k + ½)/255, and rounding it there would give the wrong level."""
    k = np.arange(255, dtype=np.float64)
    centre = ((k + 0.5) / 255).astype(np.float32)
    near = [centre]
    for direction in (np.float32(2), np.float32(-1)):
        step = centre
        for _ in range(3):
            step = np.nextafter(step, direction)
            near.append(step)
    values = np.concatenate(near)
    want = np.rint(values.astype(np.float64) * 255.0)
    assert (np.rint(values * np.float32(255)) != want).any()  # the float32 pitfall is in this set
    side = 32
    x = np.resize(values, (1, 3, side, side)).astype(np.float32)
    got = augforge.to_uint8(build_op("pixelate", 1, scale=1.0)(torch.from_numpy(x)), mode="round")
    np.testing.assert_array_equal(got[0].transpose(2, 0, 1), np.resize(want, (3, side, side)))
    big = np.resize(values, (1, 3, 96, 96)).astype(np.float32)  # the per-image PIL branch
    got = augforge.to_uint8(build_op("pixelate", 1, scale=1.0)(torch.from_numpy(big)), mode="round")
    np.testing.assert_array_equal(got[0].transpose(2, 0, 1), np.resize(want, (3, 96, 96)))


def _via(monkeypatch, use_cv2: bool, x: torch.Tensor, quality: int) -> torch.Tensor:
    """The op's output with the OpenCV (or PIL) codec forced, whatever the probe says."""
    monkeypatch.setattr(digital, "_cv2_jpeg_ok", {quality: use_cv2})
    return digital.jpeg_compression(x, quality)


@pytest.mark.parametrize("shape", [(224, 224), (37, 53), (96, 81), (8, 13)])
def test_jpeg_cv2_codec_equals_the_pil_codec(monkeypatch, images224, shape):
    """The OpenCV path gives the PIL path's output bit for bit: uint8 and float input (the float
    pictures round to levels per picture from 80² on and per batch below), 1 and 3 channels."""
    h, w = shape
    pics = torch.from_numpy(np.ascontiguousarray(images224[:3, :h, :w])).permute(0, 3, 1, 2).contiguous()
    for quality in (7, 40, 95):
        for x in (pics, pics[:, 1:2].contiguous(), pics.float() / 255, (pics[:, :1] / 255.0).double()):
            via_pil, via_cv2 = _via(monkeypatch, False, x, quality), _via(monkeypatch, True, x, quality)
            assert via_cv2.dtype == via_pil.dtype == x.dtype and via_cv2.shape == x.shape
            assert torch.equal(via_cv2, via_pil), (quality, x.dtype, x.shape)
            assert not torch.equal(via_pil, x)  # the codec did run


def test_jpeg_cv2_kernel_equals_pil_on_noise_and_tiny_sizes():
    """Kernel level, worst cases for chroma subsampling and clipping: random noise, 1-pixel sides."""
    rng = np.random.default_rng(7)
    for h, w in [(1, 1), (1, 17), (15, 2), (16, 16), (17, 33)]:
        for c in (1, 3):
            src = rng.integers(0, 256, (c, h, w), dtype=np.uint8)
            for quality in (1, 25, 80):
                a, b = np.empty_like(src), np.empty_like(src)
                digital._jpeg_cv2(src, a, quality)
                digital._jpeg_pil(src, b, quality)
                np.testing.assert_array_equal(a, b, err_msg=f"{c}x{h}x{w} q{quality}")
                assert digital._jpeg_bytes_cv2(src, quality) == digital._jpeg_bytes_pil(src, quality)


def test_jpeg_probe_selects_opencv_here(monkeypatch):
    """This environment's OpenCV and Pillow (both libjpeg-turbo 3) agree, so the fast path is used;
    if this fails, a library update made them differ: results stay right (PIL), only slower."""
    monkeypatch.setattr(digital, "_cv2_jpeg_ok", {})
    assert all(digital.probe_cv2_jpeg(q) for q in (1, 7, 25, 50, 80, 95))
    assert digital.jpeg_codec(25) is digital._jpeg_cv2 and digital._cv2_jpeg_ok == {25: True}


@pytest.mark.parametrize("fault", ["bytes", "pixels", "raises"])
def test_jpeg_falls_back_to_pil_when_the_probe_fails(monkeypatch, images64, fault):
    """If OpenCV ever writes other bytes, decodes other pixels or fails, the probe says so and the
    op uses PIL (and still equals PIL); the probe runs once per quality."""
    real_cv2, real_bytes = digital._jpeg_cv2, digital._jpeg_bytes_cv2
    calls = {"cv2": 0, "probe": 0}

    def cv2_codec(src, out, quality):
        calls["cv2"] += 1
        if fault == "raises":
            raise RuntimeError("no JPEG codec")
        real_cv2(src, out, quality)
        if fault == "pixels":
            out[..., 0, 0] ^= 1

    def cv2_bytes(src, quality):
        data = real_bytes(src, quality)
        return data[:-3] + b"\x00" + data[-2:] if fault == "bytes" else data

    real_probe = digital.probe_cv2_jpeg

    def probe(quality):
        calls["probe"] += 1
        return real_probe(quality)

    monkeypatch.setattr(digital, "_cv2_jpeg_ok", {})
    monkeypatch.setattr(digital, "_jpeg_cv2", cv2_codec)
    monkeypatch.setattr(digital, "_jpeg_bytes_cv2", cv2_bytes)
    monkeypatch.setattr(digital, "probe_cv2_jpeg", probe)
    pics = np.ascontiguousarray(images64[:3, :, :45])
    chw = torch.from_numpy(pics).permute(0, 3, 1, 2).contiguous()
    for _ in range(2):
        got = build_op("jpeg_compression", 2)(chw)
        want = np.stack([pil_jpeg(im, QUALITY["imagenet"][1]) for im in pics])
        np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), want)
    assert digital._cv2_jpeg_ok == {QUALITY["imagenet"][1]: False} and calls["probe"] == 1
    assert calls["cv2"] <= len(digital._probe_pictures())  # only the probe's pictures went to cv2
    assert digital.jpeg_codec(QUALITY["imagenet"][1]) is digital._jpeg_pil


def test_split_into_copies_when_cv2_returns_new_planes(monkeypatch, images224):
    """The planes come out right whether cv2.split writes into the given arrays (as it does here)
    or returns fresh ones (a binding change): pixelate and JPEG still equal PIL."""
    real_split = digital.cv2.split
    hwc = np.ascontiguousarray(images224[0, :5, :7])
    planes = [np.zeros((5, 7), np.uint8) for _ in range(3)]
    digital._split_into(hwc, planes)
    np.testing.assert_array_equal(np.stack(planes, -1), hwc)
    assert digital._SPLIT_IN_PLACE
    monkeypatch.setattr(digital.cv2, "split", lambda m, mv=None: real_split(m))
    assert not digital._cv2_split_writes_in_place()
    monkeypatch.setattr(digital, "_SPLIT_IN_PLACE", False)
    planes = [np.zeros((5, 7), np.uint8) for _ in range(3)]
    digital._split_into(hwc, planes)
    np.testing.assert_array_equal(np.stack(planes, -1), hwc)
    pics = np.ascontiguousarray(images224[:2, :90, :97])
    chw = torch.from_numpy(pics).permute(0, 3, 1, 2).contiguous()
    got = build_op("pixelate", 3)(chw).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, np.stack([pil_pixelate(im, SCALE["imagenet"][2]) for im in pics]))
    got = _via(monkeypatch, True, chw, 15).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got, np.stack([pil_jpeg(im, 15) for im in pics]))


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("name", ["jpeg_compression", "pixelate"])
def test_cuda_uint8_path(images64, name):
    chw = torch.from_numpy(images64[:4]).permute(0, 3, 1, 2).contiguous()
    gpu = build_op(name, 4)(chw.cuda())
    assert gpu.is_cuda and gpu.dtype == torch.uint8
    assert torch.equal(gpu.cpu(), build_op(name, 4)(chw))


@pytest.mark.skipif(not CUDA, reason="no CUDA device")
@pytest.mark.parametrize("name", ["jpeg_compression", "pixelate"])
def test_cuda_is_bit_exact(images64, name):
    x = augforge.to_float(images64[:4])
    cpu = augforge.to_uint8(build_op(name, 4)(x))
    gpu = build_op(name, 4)(x.cuda())
    assert gpu.is_cuda
    np.testing.assert_array_equal(augforge.to_uint8(gpu), cpu)


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("jpeg_compression", {"quality": 0}, "quality must be in 1..95"),
        ("jpeg_compression", {"quality": 96}, "quality must be in 1..95"),
        ("jpeg_compression", {"quality": 25.5}, "quality must be an integer"),
        ("jpeg_compression", {"quality": True}, "quality must be an integer"),
        ("pixelate", {"scale": 0}, "scale must be > 0"),
        ("pixelate", {"scale": 1.5}, "scale must be <= 1"),
    ],
)
def test_bad_overrides(name, params, message):
    with pytest.raises(InvalidParameterError, match=message):
        build_op(name, 1, **params)

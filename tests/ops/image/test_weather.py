"""Weather ops (snow, frost, fog, spatter) against ImageNet-C / CIFAR-10-C / Tiny-ImageNet-C.

Two kinds of fidelity checks:
- matched draws: the op and an independent numpy/scipy/cv2 version of the reference definition
  (or imagecorruptions, where it equals ImageNet-C: fog at 224, spatter) consume the *same*
  random numbers, so mean PSNR/SSIM must agree tightly and pixels nearly everywhere;
- independent draws: each side uses its own RNG; mean PSNR within 0.5 dB, mean SSIM within 0.02
  (enough draws per image that sampling noise stays well below the tolerance).
Constants below are typed again from the reference doc (§1.5, §2.1), not imported from the ops.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from pathlib import Path

import cv2
import imagecorruptions
import numpy as np
import pytest
import torch
from scipy.ndimage import zoom as scipy_zoom
from skimage.filters import gaussian as sk_gaussian

import augforge
from augforge.core.errors import AugforgeError
from augforge.core.registry import build_op, get_op
from augforge.ops.image import weather as W
from augforge.ops.image.kernels.filters import pad
from augforge.ops.image.kernels.motion import motion_blur_kernel, motion_offsets, motion_weights
from augforge.ops.image.kernels.plasma import (
    PREFIX_SIDE,
    noise_count,
    plasma_fractal,
    plasma_from_uniforms,
    plasma_padded,
    plasma_uniforms,
)

from .metrics import assert_close_stats, assert_nearly_equal, psnr, ssim
from .reference import _ic, reference_corrupt

LEVELS = (1, 2, 3, 4, 5)
PSNR_DB, SSIM_TOL = 0.5, 0.02
SIZES = {"imagenet": 224, "cifar": 32, "tiny": 64}
IC_FROST = Path(imagecorruptions.__file__).parent / "frost"
FROST_NAMES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")

SNOW = {  # (mean, std, zoom, threshold, radius, sigma, blend)
    "imagenet": [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
                 (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
                 (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)],
    "cifar": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
              (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
              (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
    "tiny": [(0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
             (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
             (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6)],
}
FROST = {  # (image weight, frost weight); photo rescale per preset
    "imagenet": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "cifar": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
    "tiny": [(1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)],
}
FROST_SCALE = {"imagenet": None, "cifar": 0.2, "tiny": 0.3}
FOG = {  # (strength, decay); fractal mapsize per preset
    "imagenet": [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
    "cifar": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
    "tiny": [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
}
FOG_MAPSIZE = {"imagenet": 256, "cifar": 32, "tiny": 64}
SPATTER = {  # (mean, std, blur sigma, threshold, intensity, mode)
    "imagenet": [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                 (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)],
    "cifar": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
              (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
    "tiny": [(0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
             (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1)],
}


# --------------------------------------------------------------------------- numpy references


class _Scripted:
    """Stands in for numpy.random inside imagecorruptions: returns the numbers we give it."""

    def __init__(self, normal: np.ndarray | None = None, uniform: np.ndarray | None = None) -> None:
        self._normal, self._uniform, self._used = normal, uniform, 0

    def normal(self, loc: float = 0.0, scale: float = 1.0, size: tuple[int, ...] | None = None) -> np.ndarray:
        assert self._normal is not None and self._normal.shape == tuple(size)
        return loc + scale * self._normal

    def uniform(self, low: float, high: float, size: tuple[int, ...]) -> np.ndarray:
        k = int(np.prod(size))
        u = self._uniform[self._used:self._used + k].reshape(size)
        self._used += k
        return low + (high - low) * u


@contextlib.contextmanager
def scripted_numpy(**draws: np.ndarray) -> Iterator[_Scripted]:
    """Temporarily route imagecorruptions' np.random calls to fixed numbers."""
    original = _ic.np
    script = _Scripted(**draws)
    fake = types.ModuleType("numpy")
    fake.__getattr__ = lambda name: getattr(original, name)  # type: ignore[method-assign]
    fake.random = script  # type: ignore[attr-defined]
    _ic.np = fake
    try:
        yield script
    finally:
        _ic.np = original


def ref_clipped_zoom(layer: np.ndarray, z: float) -> np.ndarray:
    """ImageNet-C's clipped_zoom on a square (H, W, 1) array: central crop, scipy zoom, central trim."""
    h = layer.shape[0]
    ch = int(np.ceil(h / z))
    top = (h - ch) // 2
    out = scipy_zoom(layer[top:top + ch, top:top + ch], (z, z, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim:trim + h, trim:trim + h]


def ref_snow(img: np.ndarray, c: tuple, normal: np.ndarray, angle: float) -> np.ndarray:
    """ImageNet-C snow; ImageMagick's blur via imagecorruptions' numpy port of the same formula,
    its 8-bit PNG output rounded, the layer truncated to uint8 before the blur."""
    x = img.astype(np.float32) / 255.0
    layer = ref_clipped_zoom((c[0] + c[1] * normal)[..., None], c[2])
    layer[layer < c[3]] = 0
    levels = (np.clip(layer.squeeze(), 0, 1) * 255).astype(np.uint8)
    blurred = _ic._motion_blur(levels / 255.0, radius=c[4], sigma=c[5], angle=angle)
    layer = (np.round(blurred * 255) / 255.0)[..., None]
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.uint8(np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255)


def ref_frost_photos(preset: str) -> list[np.ndarray]:
    """imagecorruptions' copies of frost1..5 (BGR, cv2), rescaled like the preset's generator."""
    photos = [cv2.imread(str(IC_FROST / n)) for n in FROST_NAMES]
    scale = FROST_SCALE[preset]
    return [cv2.resize(p, (0, 0), fx=scale, fy=scale) if scale else p for p in photos]


def ref_frost(img: np.ndarray, c: tuple, photo: np.ndarray, top: int, left: int) -> np.ndarray:
    size = img.shape[0]
    crop = photo[top:top + size, left:left + size][..., [2, 1, 0]]
    return np.uint8(np.clip(c[0] * img.astype(np.float64) + c[1] * crop, 0, 255))


def ref_fog(img: np.ndarray, c: tuple, mapsize: int, uniforms: np.ndarray) -> np.ndarray:
    """ImageNet-C fog with imagecorruptions' plasma_fractal fed the given uniforms."""
    x = img / 255.0
    peak = x.max()
    with scripted_numpy(uniform=uniforms):
        fractal = _ic.plasma_fractal(mapsize=mapsize, wibbledecay=c[1])
    x = x + c[0] * fractal[:img.shape[0], :img.shape[1]][..., None]
    return np.uint8(np.clip(x * peak / (peak + c[0]), 0, 1) * 255)


def ref_spatter(img: np.ndarray, c: tuple, normal: np.ndarray) -> np.ndarray:
    """ImageNet-C spatter with numpy/skimage/cv2 (the integer chain as in the reference)."""
    x = img.astype(np.float32) / 255.0
    liquid = sk_gaussian(c[0] + c[1] * normal, sigma=c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        levels = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(levels, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32))
        m = levels * cv2.blur(dist, (3, 3)).astype(np.float32)
        m = (m / m.max() * c[4])[..., None]
        return np.uint8(np.clip(x + m * np.array([175, 238, 238]) / 255.0, 0, 1) * 255)
    mask = sk_gaussian((liquid > c[3]).astype(np.float32), sigma=c[4])
    mask[mask < 0.8] = 0
    mask = mask[..., None]
    return np.uint8(np.clip(x * (1 - mask) + mask * np.array([63, 42, 20]) / 255.0, 0, 1) * 255)


# --------------------------------------------------------------------------- helpers


def gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 * seed + i) for i in range(n)]


def run(images: np.ndarray, name: str, severity: int, preset: str, generators) -> np.ndarray:
    out = build_op(name, severity, preset=preset)(augforge.to_float(images), generators)
    return augforge.to_uint8(out)


def matched_reference(images: np.ndarray, name: str, severity: int, preset: str, seed: int) -> np.ndarray:
    """The reference fed with exactly the numbers the op draws from gens(len(images), seed)."""
    n, size = len(images), images.shape[1]
    cpu = torch.device("cpu")
    if name == "snow":
        noise, angles = W.snow_draws(size, size, gens(n, seed), cpu, torch.float32)
        c = SNOW[preset][severity - 1]
        return np.stack([ref_snow(im, c, noise[i, 0].double().numpy(), float(angles[i]))
                         for i, im in enumerate(images)])
    if name == "frost":
        _, draws = W.frost_crops(size, size, W.FROST_RESCALE[preset], gens(n, seed), cpu)
        photos = ref_frost_photos(preset)
        c = FROST[preset][severity - 1]
        return np.stack([ref_frost(im, c, photos[k], top, left)
                         for im, (k, top, left) in zip(images, draws, strict=True)])
    if name == "fog":
        mapsize = FOG_MAPSIZE[preset]
        uniforms = plasma_uniforms(mapsize, gens(n, seed)).double().numpy()
        if preset == "imagenet":  # imagecorruptions' fog is ImageNet-C's at 224 (mapsize 256)
            out = []
            for im, u in zip(images, uniforms, strict=True):
                with scripted_numpy(uniform=u):
                    out.append(reference_corrupt(im, "fog", severity))
            return np.stack(out)
        c = FOG[preset][severity - 1]
        return np.stack([ref_fog(im, c, mapsize, u) for im, u in zip(images, uniforms, strict=True)])
    noise = W.spatter_draws(size, size, gens(n, seed), cpu).numpy()[:, 0]
    if preset == "imagenet":  # imagecorruptions' spatter is ImageNet-C's
        out = []
        for im, z in zip(images, noise, strict=True):
            with scripted_numpy(normal=z):
                out.append(reference_corrupt(im, "spatter", severity))
        return np.stack(out)
    c = SPATTER[preset][severity - 1]
    return np.stack([ref_spatter(im, c, z) for im, z in zip(images, noise, strict=True)])


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("severity", LEVELS)
@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter"])
def test_imagenet_matched_draws(images224, name, severity):
    """224², same random numbers on both sides: statistics within the tolerances, and pixels equal
    up to one 8-bit level almost everywhere (snow, frost: ImageNet-C numpy version; fog, spatter:
    imagecorruptions)."""
    got = run(images224, name, severity, "imagenet", gens(16, severity))
    want = matched_reference(images224, name, severity, "imagenet", severity)
    assert_close_stats(images224, got, want, f"{name} s{severity}")
    assert_nearly_equal(got, want, f"{name} s{severity}")


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter"])
def test_small_presets_matched_draws(request, name, preset):
    """CIFAR-10-C (32²) and Tiny-ImageNet-C (64²) constants (fog mapsize 32/64, frost ×0.2/×0.3
    and 32/64 crops) against the numpy reference definitions fed the same draws."""
    images = request.getfixturevalue(f"images{SIZES[preset]}")
    for severity in LEVELS:
        got = run(images, name, severity, preset, gens(16, severity))
        want = matched_reference(images, name, severity, preset, severity)
        assert_close_stats(images, got, want, f"{name}/{preset} s{severity}")
        assert_nearly_equal(got, want, f"{name}/{preset} s{severity}")


def independent_reference(images: np.ndarray, name: str, severity: int, preset: str,
                          rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """The reference with its own numpy RNG (the generators' draw order and ranges restated).
    Also returns each sample's stratum: the frost photo index (0 for the other ops)."""
    size = images.shape[1]
    photos = ref_frost_photos(preset) if name == "frost" else []
    out, strata = [], []
    for im in images:
        strata.append(0)
        if name == "snow":
            c = SNOW[preset][severity - 1]
            out.append(ref_snow(im, c, rng.normal(size=(size, size)), rng.uniform(-135, -45)))
        elif name == "frost":
            strata[-1] = rng.randint(5)
            p = photos[strata[-1]]
            top, left = rng.randint(0, p.shape[0] - size), rng.randint(0, p.shape[1] - size)
            out.append(ref_frost(im, FROST[preset][severity - 1], p, top, left))
        elif name == "fog":
            u = rng.random_sample(noise_count(FOG_MAPSIZE[preset]))
            out.append(ref_fog(im, FOG[preset][severity - 1], FOG_MAPSIZE[preset], u))
        else:
            out.append(ref_spatter(im, SPATTER[preset][severity - 1], rng.normal(size=(size, size))))
    return np.stack(out), np.array(strata)


def stratified_stats(clean: np.ndarray, corrupted: np.ndarray, strata: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM averaged within strata, then over strata (equally likely by design)."""
    p = np.array([min(psnr(a, b), 100.0) for a, b in zip(clean, corrupted, strict=True)])
    q = np.array([ssim(a, b) for a, b in zip(clean, corrupted, strict=True)])
    keys = np.unique(strata)
    return (float(np.mean([p[strata == k].mean() for k in keys])),
            float(np.mean([q[strata == k].mean() for k in keys])))


def test_imagenet_snow_independent_draws(images224):
    """224², independent RNGs: snow's statistics barely vary between draws, so one draw per crop
    suffices (fog, frost, spatter vary a lot per draw: see the CIFAR test and the fractal test)."""
    for severity in LEVELS:
        got = run(images224, "snow", severity, "imagenet", gens(16, 50))
        rng = np.random.RandomState(severity)
        want, _ = independent_reference(images224, "snow", severity, "imagenet", rng)
        assert_close_stats(images224, got, want, f"snow s{severity} (independent draws)")


@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter"])
def test_cifar_independent_draws(images32, name):
    """32² (CIFAR-10-C), independent RNGs, 16 crops × 16 draws each: the draws' distributions
    (layer noise, blur angle, frost crop offsets, fractal uniforms) match the reference's. Frost
    statistics are stratified by photo (its uniform choice is checked on its own below), since
    the five photos differ far more than the tolerance."""
    draws = 16
    clean = np.concatenate([images32] * draws)
    for severity in LEVELS:
        seeds = [70 + d for d in range(draws)]
        got = np.concatenate([run(images32, name, severity, "cifar", gens(16, sd)) for sd in seeds])
        ours_strata = np.zeros(len(clean), dtype=int)
        if name == "frost":
            ours_strata = np.array([k for sd in seeds for k, _, _ in
                                    W.frost_crops(32, 32, 0.2, gens(16, sd), torch.device("cpu"))[1]])
        rng = np.random.RandomState(severity)
        want, ref_strata = independent_reference(clean, name, severity, "cifar", rng)
        gp, gs = stratified_stats(clean, got, ours_strata)
        wp, ws = stratified_stats(clean, want, ref_strata)
        label = f"{name}/cifar s{severity} (independent draws)"
        assert abs(gp - wp) < PSNR_DB, f"{label}: PSNR ours {gp:.3f} dB vs reference {wp:.3f} dB"
        assert abs(gs - ws) < SSIM_TOL, f"{label}: SSIM ours {gs:.4f} vs reference {ws:.4f}"


# --------------------------------------------------------------------------- snow and the motion kernel


@pytest.mark.parametrize("radius, sigma", [(10, 4), (12, 12), (14, 12), (8, 3)])
def test_motion_kernel_matches_imagemagick_formula(radius, sigma):
    """Our batched line kernel equals imagecorruptions' numpy port of ImageMagick's formula
    (one-sided half-Gaussian, 2⌈R⌉+1 taps, offsets ⌈i·cosθ−½⌉, ⌈i·sinθ−½⌉, edge replication)."""
    img = np.random.RandomState(radius).rand(48, 56)
    angles = [-135.0, -101.7, -90.0, -45.0, 0.0, 33.3]
    got = motion_blur_kernel(torch.from_numpy(img).expand(len(angles), 1, 48, 56).contiguous(),
                             radius, sigma, torch.tensor(angles))
    for i, a in enumerate(angles):
        want = _ic._motion_blur(img, radius=radius, sigma=sigma, angle=a)
        np.testing.assert_allclose(got[i, 0].numpy(), want, atol=1e-9)


def test_motion_kernel_shape():
    w = motion_weights(12, 8, dtype=torch.float64)
    assert w.numel() == 25 and motion_weights(12.5, 8).numel() == 27
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    i = torch.arange(25, dtype=torch.float64)
    torch.testing.assert_close(w / w[0], torch.exp(-(i**2) / 128))
    dx, dy = motion_offsets(5, torch.tensor([0.0, -90.0]))
    assert dx[0].tolist() == [0, 1, 2, 3, 4] and dy[0].tolist() == [0] * 5
    assert dx[1].tolist() == [0] * 5 and dy[1].tolist() == [0, -1, -2, -3, -4]


def test_line_blur_device_paths_agree():
    """The CPU path (shifted views) and the accelerator path (one gather per tap) give the same
    result, also for streaks longer than the image (edge replication)."""
    from augforge.ops.image.kernels import motion

    x = torch.rand(3, 2, 30, 40, dtype=torch.float64)
    w = motion_weights(30, 12, dtype=torch.float64)
    dx, dy = motion_offsets(w.numel(), torch.tensor([-170.0, -60.0, 95.0]))
    m = int(max(dx.abs().max(), dy.abs().max()))
    padded = pad(x, m, m, m, m, "nearest")
    views = motion._accumulate_views(padded, w.tolist(), dx.tolist(), dy.tolist(), m, 30, 40)
    gathers = motion._accumulate_gathers(padded, w.tolist(), dx, dy, m, 30, 40)
    torch.testing.assert_close(views, gathers, atol=1e-12, rtol=0)
    brute = torch.zeros(2, 30, 40, dtype=torch.float64)
    for k in range(w.numel()):
        rows = (torch.arange(30) + dy[0, k]).clamp(0, 29)
        cols = (torch.arange(40) + dx[0, k]).clamp(0, 39)
        brute += w[k] * x[0][:, rows][:, :, cols]
    torch.testing.assert_close(motion.line_blur(x, w, dx, dy)[0], brute, atol=1e-12, rtol=0)


def test_snow_layer_added_twice():
    """On a black image the output minus the whitened scene is L + rot180(L): symmetric under a
    180° rotation, with twice the layer's mass (one bright flake, streaked)."""
    x = torch.zeros(1, 3, 40, 40, dtype=torch.float64)
    noise = torch.full((1, 1, 40, 40), -10.0, dtype=torch.float64)
    noise[0, 0, 9, 14] = 10.0
    c = SNOW["imagenet"][0]
    p = dict(zip(get_op("snow").param_names, c, strict=True))
    out = W.snow_from_draws(x, {**p, "zoom": 1.0}, noise, torch.tensor([-60.0]))
    diff = (out - (1 - c[6]) * 0.5)[0, 0]  # whitened black scene: (1 - blend) * 0.5
    assert diff.sum() > 0.5
    torch.testing.assert_close(diff, diff.flip(0, 1))
    layer = motion_blur_kernel((noise > 0).double(), c[4], c[5], torch.tensor([-60.0]))
    layer = torch.round(layer * 255) / 255
    torch.testing.assert_close(diff.sum(), 2 * layer.sum(), atol=1e-9, rtol=0)


def test_snow_angles_are_uniform_in_range():
    _, angles = W.snow_draws(8, 8, gens(400, 3), torch.device("cpu"), torch.float32)
    assert angles.min() >= -135 and angles.max() < -45
    assert angles.min() < -133 and angles.max() > -47 and abs(float(angles.mean()) + 90) < 3


# --------------------------------------------------------------------------- fog and the plasma fractal


@pytest.mark.parametrize("mapsize, decay", [(32, 3), (64, 1.75), (256, 1.4)])
def test_plasma_equals_reference_given_uniforms(mapsize, decay):
    u = np.random.RandomState(mapsize).random_sample(noise_count(mapsize))
    with scripted_numpy(uniform=u):
        want = _ic.plasma_fractal(mapsize=mapsize, wibbledecay=decay)
    got = plasma_from_uniforms(mapsize, decay, torch.from_numpy(u)[None])[0]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


@pytest.mark.parametrize("decay", [2.0, 4.0])
def test_plasma_noise_amplitude_is_wibble_squared(decay):
    """4×4 map, all increments zero except the largest at the first centre (wibble 100) and at
    the first level-2 square centre (wibble 100/decay): with amplitude wibble² those are 100² and
    5000 + (100/decay)², so after normalisation by the maximum 100² the point is 0.5 + 1/decay²
    (an amplitude of wibble would give 0.5 + 1/decay)."""
    u = torch.full((1, noise_count(4)), 0.5, dtype=torch.float64)
    u[0, 0] = 1.0
    u[0, 3] = 1.0
    m = plasma_from_uniforms(4, decay, u)[0]
    assert float(m[2, 2]) == 1.0 and float(m[0, 0]) == 0.0
    assert float(m[1, 1]) == pytest.approx(0.5 + 1 / decay**2, abs=1e-12)


@pytest.mark.parametrize("decay", [2.0, 1.4])
def test_plasma_statistics_match_reference(decay):
    """48 fractals each side at 256²: mean level, contrast and roughness (mean |horizontal step|,
    which depends on the per-level amplitude ratio decay²) agree with imagecorruptions'."""
    np.random.seed(int(decay * 10))
    ref = np.stack([_ic.plasma_fractal(256, decay) for _ in range(48)])
    got = plasma_fractal(256, decay, gens(48, 9), dtype=torch.float64).numpy()

    def summary(a: np.ndarray) -> np.ndarray:
        return np.array([a.mean(), a.std(axis=(1, 2)).mean(), np.abs(np.diff(a, axis=2)).mean()])

    g, r = summary(got), summary(ref)
    assert abs(g[0] - r[0]) < 0.07 and abs(g[1] - r[1]) < 0.02
    assert abs(g[2] - r[2]) < 0.0006, f"roughness {g[2]:.5f} vs {r[2]:.5f}"


@pytest.mark.parametrize("mapsize", [2, 4, 8, 16])
def test_plasma_small_maps_equal_reference(mapsize):
    """Maps up to PREFIX_SIDE come from the cached matrix alone (no level steps run): still the
    reference's fractal for the same uniforms, for several decays."""
    assert mapsize <= PREFIX_SIDE
    u = np.random.RandomState(mapsize + 1).random_sample((3, noise_count(mapsize)))
    for i, decay in enumerate((3.0, 1.75, 1.4)):
        with scripted_numpy(uniform=u[i]):
            want = _ic.plasma_fractal(mapsize=mapsize, wibbledecay=decay)
        got = plasma_from_uniforms(mapsize, decay, torch.from_numpy(u[i:i + 1]))[0]
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


def test_plasma_padded_map_repeats_its_first_row_and_column():
    """The unnormalised map carries its periodic neighbours: last row = first row, last column =
    first column; normalising its top-left N×N part gives plasma_from_uniforms."""
    u = torch.from_numpy(np.random.RandomState(5).random_sample((2, noise_count(64))))
    raw = plasma_padded(64, 2.0, u)
    assert raw.shape == (2, 65, 65)
    torch.testing.assert_close(raw[:, -1], raw[:, 0], atol=0, rtol=0)
    torch.testing.assert_close(raw[:, :, -1], raw[:, :, 0], atol=0, rtol=0)
    core = raw[:, :64, :64]
    lo, hi = core.amin(dim=(1, 2), keepdim=True), core.amax(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(plasma_from_uniforms(64, 2.0, u), (core - lo) / (hi - lo), atol=1e-15, rtol=0)


@pytest.mark.parametrize("shape", [(3, 3, 224, 224), (4, 1, 40, 24)])
def test_fog_folds_normalisation_like_the_two_step_formula(shape):
    """fog folds the fractal's min–max normalisation into its blend; it must equal
    clip((x + s·F)·m/(m + s)) on the normalised fractal F of the same uniforms."""
    x = torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    size = max(shape[-2:])
    mapsize = 1 << (size - 1).bit_length()
    fractal = plasma_fractal(mapsize, 1.7, gens(shape[0], 4), dtype=torch.float64)
    field = fractal[:, None, :shape[2], :shape[3]]
    m = x.amax(dim=(1, 2, 3), keepdim=True)
    want = ((x + 2.5 * field) * m / (m + 2.5)).clamp(0, 1)
    torch.testing.assert_close(W.fog(x, 2.5, 1.7, gens(shape[0], 4)), want, atol=1e-12, rtol=0)
    torch.testing.assert_close(W.fog_from_fractal(x, 2.5, field[:, 0]), want, atol=1e-12, rtol=0)


def test_fog_mapsize_is_next_power_of_two(monkeypatch):
    seen = []
    original = W.plasma_fractal

    def spy(mapsize, *args, **kwargs):
        seen.append(mapsize)
        return original(mapsize, *args, **kwargs)

    monkeypatch.setattr(W, "plasma_fractal", spy)
    for h, w in [(224, 224), (32, 32), (64, 64), (100, 40), (8, 13)]:
        build_op("fog", 2)(torch.rand(1, 3, h, w), 0)
    assert seen == [256, 32, 64, 128, 16]


# --------------------------------------------------------------------------- frost


def test_frost_assets_are_the_five_reference_photos():
    shipped = sorted(p.name for p in W.FROST_DIR.iterdir() if p.suffix in (".png", ".jpg"))
    assert shipped == list(FROST_NAMES), "only frost1-5 are used by the reference"
    shapes = [p.shape for p in W.frost_photos()]
    assert shapes == [(600, 900, 3), (315, 560, 3), (315, 560, 3), (350, 527, 3), (495, 660, 3)]
    for ours_rgb, ref_bgr in zip(W.frost_photos(), ref_frost_photos("imagenet"), strict=True):
        np.testing.assert_array_equal(ours_rgb, ref_bgr[..., ::-1])


def test_frost_md5_is_checked(tmp_path):
    for name in FROST_NAMES:
        (tmp_path / name).write_bytes((W.FROST_DIR / name).read_bytes())
    assert len(W.verify_frost_assets(tmp_path)) == 5
    data = bytearray((tmp_path / "frost3.png").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "frost3.png").write_bytes(bytes(data))
    with pytest.raises(AugforgeError, match=r"frost3\.png is corrupted: md5"):
        W.verify_frost_assets(tmp_path)
    (tmp_path / "frost3.png").unlink()
    with pytest.raises(AugforgeError, match="missing"):
        W.verify_frost_assets(tmp_path)


def test_frost_crop_offsets_cover_reference_range():
    """numpy randint(0, size − 224) semantics: top in [0, Hf − 225], left in [0, Wf − 225]; all
    five photos drawn, roughly equally often."""
    _, draws = W.frost_crops(224, 224, 1.0, gens(2000, 4), torch.device("cpu"))
    heights, widths = [600, 315, 315, 350, 495], [900, 560, 560, 527, 660]
    ks = np.array([d[0] for d in draws])
    assert set(ks.tolist()) == {0, 1, 2, 3, 4} and np.bincount(ks).min() > 330
    for k in range(5):
        tops = [t for kk, t, _ in draws if kk == k]
        lefts = [left for kk, _, left in draws if kk == k]
        assert min(tops) >= 0 and max(tops) <= heights[k] - 225
        assert min(lefts) >= 0 and max(lefts) <= widths[k] - 225
    tops = [t for kk, t, _ in draws if kk in (1, 2)]
    assert max(tops) == 315 - 225 and min(tops) == 0


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
def test_frost_small_presets_rescale_photos(preset):
    """CIFAR ×0.2 and Tiny ×0.3 (cv2.resize, bilinear) before the 32/64 crop."""
    size = SIZES[preset]
    for ours_rgb, ref_bgr in zip(W.frost_layers(size, size, W.FROST_RESCALE[preset]),
                                 ref_frost_photos(preset), strict=True):
        np.testing.assert_array_equal(ours_rgb, ref_bgr[..., ::-1])


def test_frost_enlarges_photos_only_when_too_small():
    layers = W.frost_layers(400, 320, 1.0)
    assert layers[0].shape[:2] == (600, 900)
    assert all(a.shape[0] >= 401 and a.shape[1] >= 321 for a in layers)
    out = build_op("frost", 3)(torch.rand(2, 3, 400, 320), 0)
    assert out.shape == (2, 3, 400, 320)


# --------------------------------------------------------------------------- spatter


@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("size", [224, 32])
def test_spatter_opencv_and_torch_paths_agree(monkeypatch, images224, images32, size, mode):
    """The CPU's per-picture OpenCV path (large pictures) and the batched torch path (small
    pictures, other devices) give the same 8-bit output for the same draws at either size."""
    images = images224[:6] if size == 224 else images32[:8]
    x = augforge.to_float(images)
    noise = W.spatter_draws(size, size, gens(len(images), 3), torch.device("cpu"))
    p = {**build_op("spatter", 3 if mode == 0 else 4).params, "mode": mode}
    outs = []
    for threshold in (0, 1 << 30):  # every picture size takes the OpenCV path, then none does
        monkeypatch.setattr(W, "SPATTER_CV_PIXELS", {0: threshold, 1: threshold})
        outs.append(augforge.to_uint8(W.spatter_from_draws(x, p, noise)))
    assert (outs[0] != images).mean() > 0.01  # the liquid shows
    assert_nearly_equal(outs[0], outs[1], f"spatter mode {mode} at {size}²: OpenCV vs torch")


def test_spatter_without_liquid_leaves_image_unchanged():
    x = torch.rand(2, 3, 32, 32)
    for mode in (0, 1):
        out = build_op("spatter", 1, threshold=5.0, mode=mode)(x, 0)
        torch.testing.assert_close(out, x)


@pytest.mark.parametrize("name", ["snow", "frost", "fog", "spatter"])
def test_one_channel_is_gray_of_replicated_rgb(name):
    x = torch.rand(3, 1, 40, 48)
    for severity in (2, 5):
        op = build_op(name, severity)
        gray = op(x, gens(3, 8))
        rgb = op(x.expand(3, 3, 40, 48), gens(3, 8))
        want = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]
        torch.testing.assert_close(gray, want, atol=2e-6, rtol=0)

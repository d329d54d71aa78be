"""elastic_transform against ImageNet-C's definition (not imagecorruptions', which differs), and
the resampling kernels it is built from (scipy/cv2 border semantics, folds wider than the image).

The reference below is an independent numpy/cv2/scipy/skimage version of ImageNet-C's
elastic_transform with the constants typed again from the reference doc (§1.6, §2.1).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage.filters import gaussian as sk_gaussian

import augforge
from augforge.core.registry import build_op
from augforge.ops.image import geometric as G
from augforge.ops.image.kernels.filters import fold_index, gaussian_filter
from augforge.ops.image.kernels.warp import affine_from_points, sample_bilinear, warp_affine

from .metrics import assert_close_stats, assert_nearly_equal, mean_psnr

LEVELS = (1, 2, 3, 4, 5)
SIZES = {"imagenet": 224, "cifar": 32, "tiny": 64}
ELASTIC = {  # (alpha, sigma, affine jitter) in px at the preset's size
    "imagenet": [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                 (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
                 (244 * 0.12, 244 * 0.01, 244 * 0.02)],
    "cifar": [(0, 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07), (32 * 0.08, 32 * 0.06, 32 * 0.06),
              (32 * 0.1, 32 * 0.04, 32 * 0.05), (32 * 0.1, 32 * 0.03, 32 * 0.03)],
    "tiny": [(0, 0, 64 * 0.08), (64 * 0.05, 64 * 0.3, 64 * 0.06), (64 * 0.1, 64 * 0.08, 64 * 0.06),
             (64 * 0.1, 64 * 0.03, 64 * 0.03), (64 * 0.16, 64 * 0.03, 64 * 0.02)],
}


def ref_elastic(img: np.ndarray, c: tuple, jitter: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """ImageNet-C elastic_transform given its three random draws: the (3, 2) point jitter in
    U(−c2, c2) and two H×W U(−1, 1) maps. uint8 HWC in, truncated uint8 out."""
    image = img.astype(np.float32) / 255.0
    shape = image.shape
    centre = np.float32(shape[:2]) // 2
    q = min(shape[:2]) // 3
    pts1 = np.float32([centre + q, [centre[0] + q, centre[1] - q], centre - q])
    pts2 = pts1 + jitter.astype(np.float32)
    image = cv2.warpAffine(image, cv2.getAffineTransform(pts1, pts2), shape[:2][::-1],
                           borderMode=cv2.BORDER_REFLECT_101)
    dx = (sk_gaussian(ux, c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (sk_gaussian(uy, c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    xs, ys, zs = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    coords = (ys + dy[..., None]).reshape(-1), (xs + dx[..., None]).reshape(-1), zs.reshape(-1)
    out = ndi.map_coordinates(image, coords, order=1, mode="reflect").reshape(shape)
    return np.uint8(np.clip(out, 0, 1) * 255)


def gens(n: int, seed: int = 0) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 * seed + i) for i in range(n)]


def run(images: np.ndarray, severity: int, preset: str, generators) -> np.ndarray:
    out = build_op("elastic_transform", severity, preset=preset)(augforge.to_float(images), generators)
    return augforge.to_uint8(out)


def matched(images: np.ndarray, severity: int, preset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(ours, reference) with the reference fed exactly the numbers the op draws."""
    n, size = len(images), images.shape[1]
    c = ELASTIC[preset][severity - 1]
    got = run(images, severity, preset, gens(n, seed))
    shifts, noise = G.elastic_draws(size, size, c[2], gens(n, seed), torch.device("cpu"), torch.float32)
    u = noise.double().numpy()
    want = np.stack([ref_elastic(im, c, shifts[i].numpy(), u[i, 0], u[i, 1]) for i, im in enumerate(images)])
    return got, want


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("severity", LEVELS)
def test_imagenet_matched_draws(images224, severity):
    """224², the same random numbers on both sides: statistics within tolerance and pixels equal
    up to one 8-bit level almost everywhere."""
    got, want = matched(images224, severity, "imagenet", severity)
    assert_close_stats(images224, got, want, f"elastic s{severity}")
    assert_nearly_equal(got, want, f"elastic s{severity}")


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
def test_small_presets_matched_draws(request, preset):
    """CIFAR-10-C / Tiny-ImageNet-C IMSIZE-based constants (α = 0 at s1: affine only)."""
    images = request.getfixturevalue(f"images{SIZES[preset]}")
    for severity in LEVELS:
        got, want = matched(images, severity, preset, severity)
        assert_close_stats(images, got, want, f"elastic/{preset} s{severity}")
        assert_nearly_equal(got, want, f"elastic/{preset} s{severity}")


@pytest.mark.parametrize("preset", ["cifar", "tiny"])
def test_small_presets_independent_draws(request, preset):
    """Independent RNGs, 16 crops × 12 draws: the jitter and noise distributions match."""
    images = request.getfixturevalue(f"images{SIZES[preset]}")
    size, draws = SIZES[preset], 12
    clean = np.concatenate([images] * draws)
    for severity in LEVELS:
        c = ELASTIC[preset][severity - 1]
        got = np.concatenate([run(images, severity, preset, gens(16, 40 + d)) for d in range(draws)])
        rng = np.random.RandomState(severity)
        want = np.stack([ref_elastic(im, c, rng.uniform(-c[2], c[2], size=(3, 2)),
                                     rng.uniform(-1, 1, size=(size, size)),
                                     rng.uniform(-1, 1, size=(size, size))) for im in clean])
        assert_close_stats(clean, got, want, f"elastic/{preset} s{severity} (independent draws)")


# --------------------------------------------------------------------------- constants and structure


def test_pixel_constants_per_preset_and_size():
    op = build_op("elastic_transform", 1)
    assert op.scaled_params(224, 224) == pytest.approx((488, 170.8, 24.4))
    assert build_op("elastic_transform", 3).scaled_params(224, 224) == pytest.approx((12.2, 2.44, 4.88))
    assert op.scaled_params(112, 300) == pytest.approx((244, 85.4, 12.2))
    cifar = build_op("elastic_transform", 2, preset="cifar")
    assert cifar.scaled_params(32, 32) == pytest.approx((1.6, 6.4, 2.24))
    assert cifar.scaled_params(64, 64) == pytest.approx((3.2, 12.8, 4.48))
    tiny = [build_op("elastic_transform", level, preset="tiny").scaled_params(64, 64) for level in (1, 5)]
    assert tiny == [pytest.approx((0, 0, 5.12)), pytest.approx((10.24, 1.92, 1.28))]


def test_affine_points_follow_the_reference():
    want = torch.tensor([[186.0, 186.0], [186.0, 38.0], [38.0, 38.0]], dtype=torch.float64)
    torch.testing.assert_close(G.affine_points(224, 224), want)
    # non-square: centre (W//2, H//2) as (x, y), q = min(H, W)//3
    torch.testing.assert_close(G.affine_points(40, 60),
                               torch.tensor([[43.0, 33.0], [43.0, 7.0], [17.0, 7.0]], dtype=torch.float64))


@pytest.mark.parametrize("severity", [1, 2])
def test_s1_s2_field_is_small_and_the_affine_part_dominates(severity):
    """σ = 170.8 / 19.52 px smooths the U(−1, 1) noise almost to its mean: the field's RMS is under
    15 % of the affine displacement's (at s1 it is also nearly constant over the image); at
    s3–s5 the field is a much larger share."""
    def parts(level: int) -> tuple[float, float, float]:
        alpha, sigma, jitter = build_op("elastic_transform", level).scaled_params(224, 224)
        shifts, noise = G.elastic_draws(224, 224, jitter, gens(8, level), torch.device("cpu"), torch.float64)
        field = G.smooth_field(noise, sigma) * alpha
        src = G.affine_points(224, 224).expand(8, 3, 2)
        full = torch.zeros(8, 3, 3, dtype=torch.float64)
        full[:, :2], full[:, 2, 2] = affine_from_points(src, src + shifts), 1.0
        ys, xs = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
        grid = torch.stack([xs, ys, torch.ones_like(xs)]).double().reshape(3, -1)
        disp = (torch.linalg.inv(full) @ grid)[:, :2] - grid[:2]
        spatial = field - field.mean(dim=(2, 3), keepdim=True)
        return (float(disp.pow(2).sum(1).mean().sqrt()), float(field.pow(2).sum(1).mean().sqrt()),
                float(spatial.pow(2).sum(1).mean().sqrt()))

    affine, field, spatial = parts(severity)
    assert field < 0.15 * affine, f"s{severity}: field {field:.2f} px vs affine {affine:.2f} px"
    if severity == 1:
        assert spatial < 0.3, f"s1 field varies by {spatial:.3f} px over the image"
    affine5, field5, _ = parts(5)
    assert field5 > 0.3 * affine5


# --------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("shape, sigma", [((224, 224), 170.8), ((224, 224), 19.52), ((30, 50), 40.0),
                                          ((64, 64), 2.44)])
def test_field_smoothing_folds_like_scipy(shape, sigma):
    """gaussian(mode='reflect', truncate=3) with kernels far wider than the image (s1: 1025 taps
    on 224 px) folds the symmetric extension repeatedly, exactly as scipy does."""
    noise = np.random.RandomState(1).uniform(-1, 1, size=(2, 2, *shape))
    got = G.smooth_field(torch.from_numpy(noise), sigma).numpy()
    for i in range(2):
        for j in range(2):
            want = ndi.gaussian_filter(noise[i, j], sigma, mode="reflect", truncate=3)
            np.testing.assert_allclose(got[i, j], want, atol=1e-12)
    mirror = gaussian_filter(torch.from_numpy(noise), sigma, mode="mirror", truncate=3)[0, 0]
    want = ndi.gaussian_filter(noise[0, 0], sigma, mode="mirror", truncate=3)
    np.testing.assert_allclose(mirror.numpy(), want, atol=1e-12)


def test_fold_index_modes():
    """scipy reflect = numpy 'symmetric', scipy mirror = numpy 'reflect' (= cv2 REFLECT_101)."""
    i = torch.arange(-9, 13)
    numpy_mode = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}
    for mode, np_mode in numpy_mode.items():
        want = np.pad(np.arange(4), 13, mode=np_mode)[13 - 9:13 + 13]
        assert fold_index(i, 4, mode).tolist() == want.tolist(), mode


@pytest.mark.parametrize("span", [1.5, 4.0])
@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap"])
def test_bilinear_sampling_matches_map_coordinates(mode, span):
    """Coordinates near and far outside the image (up to 4 sizes) fold like scipy order-1
    sampling, including exact integers and the half-pixel margins."""
    rs = np.random.RandomState(2)
    img = rs.rand(2, 20, 30)
    rows = rs.uniform(-20 * span, 20 * span, size=(1, 25, 35))
    cols = rs.uniform(-30 * span, 30 * span, size=(1, 25, 35))
    rows[0, 0, :12] = [-1.5, -1, -0.5, -0.25, 0, 19, 19.25, 19.5, 20, 20.5, 39.5, -20.5]
    cols[0, 0, :12] = [-1.5, -1, -0.5, -0.25, 0, 29, 29.25, 29.5, 30, 30.5, 59.5, -30.5]
    got = sample_bilinear(torch.from_numpy(img)[None], torch.from_numpy(rows), torch.from_numpy(cols), mode)
    scipy_mode = {"reflect": "reflect", "mirror": "mirror", "nearest": "nearest", "wrap": "grid-wrap"}[mode]
    for ch in range(2):
        want = ndi.map_coordinates(img[ch], [rows[0], cols[0]], order=1, mode=scipy_mode)
        np.testing.assert_allclose(got[0, ch].numpy(), want, atol=1e-9)


def test_affine_warp_matches_opencv():
    rs = np.random.RandomState(3)
    img = rs.rand(48, 64, 3).astype(np.float32)
    src = np.float32([[40, 30], [40, 10], [20, 10]])
    dst = src + rs.uniform(-6, 6, size=(3, 2)).astype(np.float32)
    m = cv2.getAffineTransform(src, dst)
    ours_m = affine_from_points(torch.from_numpy(src).double()[None], torch.from_numpy(dst).double()[None])
    np.testing.assert_allclose(ours_m[0].numpy(), m, atol=1e-9)
    want = cv2.warpAffine(img, m, (64, 48), borderMode=cv2.BORDER_REFLECT_101)
    got = warp_affine(torch.from_numpy(img).permute(2, 0, 1)[None], ours_m, "mirror")[0].permute(1, 2, 0)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


@pytest.mark.parametrize("shape", [(48, 64), (9, 8)])
def test_affine_warp_far_outside_folds_like_scipy_mirror(shape):
    """A strong zoom-out with rotation sends most pixels several image sizes outside: the warp
    (grid_sample's reflection padding on a normalised affine grid) equals bilinear sampling at
    M⁻¹·p with every tap folded by REFLECT_101 (scipy 'mirror'), in float64."""
    h, w = shape
    rs = np.random.RandomState(4)
    img = rs.rand(2, h, w)
    m = np.array([[0.2, 0.15, 3.0], [-0.1, 0.25, -2.0]])  # src -> dst: dst is ~4x smaller
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    assert np.abs(sx).max() > 2 * w and np.abs(sy).max() > 2 * h
    got = warp_affine(torch.from_numpy(img)[None], torch.from_numpy(m)[None], "mirror")[0]
    for ch in range(2):
        want = ndi.map_coordinates(img[ch], [sy, sx], order=1, mode="mirror")
        np.testing.assert_allclose(got[ch].numpy(), want, atol=1e-9)


@pytest.mark.parametrize("mode", ["reflect", "mirror"])
def test_bilinear_sampling_on_a_one_pixel_axis(mode):
    """A 1-pixel-high image (no grid_sample normalisation exists for it) still folds like scipy."""
    rs = np.random.RandomState(6)
    img = rs.rand(1, 1, 12)
    rows = rs.uniform(-3, 3, size=(1, 5, 7))
    cols = rs.uniform(-30, 40, size=(1, 5, 7))
    got = sample_bilinear(torch.from_numpy(img)[None], torch.from_numpy(rows), torch.from_numpy(cols), mode)
    want = ndi.map_coordinates(img[0], [rows[0], cols[0]], order=1, mode=mode)
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-9)


def test_differs_from_imagecorruptions_parameterisation(images224):
    """imagecorruptions' elastic has no affine step (α 12.5–30, σ = 1 % of the size), so at s1 it
    is far milder than ImageNet-C's: ours must be the ImageNet-C one."""
    from .reference import reference_corrupt

    x = images224[:4]
    ic = np.stack([reference_corrupt(im, "elastic_transform", 1, seed=i) for i, im in enumerate(x)])
    assert mean_psnr(x, run(x, 1, "imagenet", gens(4))) < mean_psnr(x, ic) - 5


def test_one_channel_is_gray_of_replicated_rgb():
    x = torch.rand(3, 1, 40, 48)
    op = build_op("elastic_transform", 2)
    rgb = op(x.expand(3, 3, 40, 48), gens(3, 8))
    want = 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:]
    torch.testing.assert_close(op(x, gens(3, 8)), want, atol=2e-6, rtol=0)

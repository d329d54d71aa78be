"""Image-quality metrics for fidelity tests (uint8 HWC pictures)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 pictures (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 HWC pictures (channels averaged)."""
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def mean_psnr(clean: np.ndarray, corrupted: np.ndarray) -> float:
    """Mean PSNR(clean_i, corrupted_i) over a stack, capping identical pairs at 100 dB."""
    return float(np.mean([min(psnr(c, d), 100.0) for c, d in zip(clean, corrupted, strict=True)]))


def mean_ssim(clean: np.ndarray, corrupted: np.ndarray) -> float:
    """Mean SSIM(clean_i, corrupted_i) over a stack."""
    return float(np.mean([ssim(c, d) for c, d in zip(clean, corrupted, strict=True)]))


def assert_close_stats(clean, got, want, label: str, psnr_tol: float = 0.5, ssim_tol: float = 0.02) -> None:
    """Mean PSNR and SSIM to the clean pictures agree within the issue's tolerances."""
    gp, wp = mean_psnr(clean, got), mean_psnr(clean, want)
    gs, ws = mean_ssim(clean, got), mean_ssim(clean, want)
    assert abs(gp - wp) < psnr_tol, f"{label}: PSNR ours {gp:.3f} dB vs reference {wp:.3f} dB"
    assert abs(gs - ws) < ssim_tol, f"{label}: SSIM ours {gs:.4f} vs reference {ws:.4f}"


def assert_nearly_equal(got: np.ndarray, want: np.ndarray, label: str) -> None:
    """Same draws, so the 8-bit outputs agree except for float rounding at truncation edges:
    under 3 % of values off by one level, (almost) none by more."""
    d = np.abs(got.astype(int) - want.astype(int))
    assert (d > 0).mean() < 0.03, f"{label}: {(d > 0).mean():.2%} of values differ"
    assert (d > 1).mean() < 1e-4, f"{label}: {(d > 1).mean():.3%} of values differ by more than 1 level"

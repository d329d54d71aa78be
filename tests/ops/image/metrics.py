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

"""Test-side shim around `imagecorruptions` 1.1.2, the faithful ImageNet-C incumbent.

It predates numpy 2 and scikit-image 0.19: `fog` uses `np.float_`, and `gaussian_blur` /
`glass_blur` pass `multichannel=True`. We patch those two names inside its module (nothing is
vendored) so every corruption runs on today's stack. Its RNG is numpy's global one, so we seed it
right before each call.
"""

from __future__ import annotations

import types
import warnings
from typing import Any

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import imagecorruptions
    from imagecorruptions import corruptions as _ic
    from skimage.filters import gaussian as _sk_gaussian


def _gaussian(
    image: np.ndarray, sigma: Any = 1, multichannel: bool | None = None, **kwargs: Any
) -> np.ndarray:
    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return _sk_gaussian(image, sigma=sigma, **kwargs)


class _NumpyWithFloat(types.ModuleType):
    """numpy, plus the `float_` alias numpy 2 removed."""

    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


_ic.gaussian = _gaussian
_ic.np = _NumpyWithFloat("numpy")

NAMES: tuple[str, ...] = tuple(imagecorruptions.get_corruption_names("all"))


def reference_corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """imagecorruptions' output (uint8 HWC, truncated as it does) for one uint8 HWC image."""
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = imagecorruptions.corrupt(image, corruption_name=name, severity=severity)
    return np.asarray(out)

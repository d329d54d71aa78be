"""RGB <-> HSV with scikit-image's semantics, on (..., 3, H, W) tensors, any device.

ImageNet-C's brightness and saturate go through `skimage.color.rgb2hsv / hsv2rgb`: H, S, V all in
[0, 1]; on ties for the maximum channel blue wins over green over red (skimage assigns the hue in
that order); grey pixels (max == min) get H = S = 0. kornia's `rgb_to_hsv` returns the hue in
radians and breaks ties differently, so we write the conversion out (it is a few where()s).
"""

from __future__ import annotations

import torch

# ITU-R 601 luma weights, as cv2.COLOR_RGB2GRAY and skimage's rgb2gray-free code paths use them.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV in [0, 1] (skimage.color.rgb2hsv)."""
    r, g, b = rgb.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    grey = delta == 0  # also covers black (v == 0)
    safe = delta.masked_fill(grey, 1.0)
    s = delta / v.masked_fill(grey, 1.0)  # 0 / 1 = 0 for grey pixels
    hue = torch.where(
        b == v,
        4.0 + (r - g) / safe,
        torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe),
    )
    hue = torch.remainder(hue / 6.0, 1.0).masked_fill_(grey, 0.0)
    return torch.stack((hue, s, v), dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) HSV in [0, 1] -> RGB in [0, 1] (skimage.color.hsv2rgb)."""
    h, s, v = hsv.unbind(-3)
    sector = torch.floor(h * 6.0)
    f = h * 6.0 - sector
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    k = torch.remainder(sector, 6.0)  # sector of the hue wheel, 0..5 (H = 1 wraps to 0)
    # (R, G, B) per sector: 0 (v,t,p) 1 (q,v,p) 2 (p,v,t) 3 (p,q,v) 4 (t,p,v) 5 (v,p,q)
    red = torch.where((k == 0) | (k == 5), v, torch.where(k == 1, q, torch.where(k == 4, t, p)))
    green = torch.where((k == 1) | (k == 2), v, torch.where(k == 0, t, torch.where(k == 3, q, p)))
    blue = torch.where((k == 3) | (k == 4), v, torch.where(k == 2, t, torch.where(k == 5, q, p)))
    return torch.stack((red, green, blue), dim=-3)


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) with 0.299 R + 0.587 G + 0.114 B."""
    r, g, b = rgb.unbind(-3)
    wr, wg, wb = GRAY_WEIGHTS
    return (wr * r + wg * g + wb * b).unsqueeze(-3)


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Replicate a 1-channel image to 3 channels (3-channel input is returned as is)."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x

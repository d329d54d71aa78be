"""RGB <-> HSV with scikit-image's semantics, on (..., 3, H, W) tensors, any device.

ImageNet-C's brightness and saturate go through `skimage.color.rgb2hsv / hsv2rgb`: H, S, V all in
[0, 1]; on ties for the maximum channel blue wins over green over red (skimage assigns the hue in
that order); grey pixels (max == min) get H = S = 0. kornia's `rgb_to_hsv` returns the hue in
radians and breaks ties differently, so we write the conversion out; selects are products with
0/1 masks (exact for finite values, and much faster on the CPU than where()).
"""

from __future__ import annotations

import torch

# ITU-R 601 luma weights, as cv2.COLOR_RGB2GRAY and skimage's rgb2gray-free code paths use them.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def _mask(a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """[a == b] as a float 0/1 tensor (a select by multiplication is exact, and much cheaper on
    the CPU than torch.where)."""
    return torch.eq(a, b, out=torch.empty_like(a))


def _mask_lt(a: torch.Tensor, b: float) -> torch.Tensor:
    """[a < b] as a float 0/1 tensor."""
    return torch.lt(a, b, out=torch.empty_like(a))


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 1] -> HSV in [0, 1] (skimage.color.rgb2hsv, bit for bit)."""
    r, g, b = rgb.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    grey = _mask(delta, 0.0)  # also covers black (v == 0)
    s = delta / (v + grey)  # grey pixels: 0 / (v + 1) = 0
    # hue = 4 + (r − g)/Δ if b is the max, else 2 + (b − r)/Δ if g is, else (g − b)/Δ
    blue_max = _mask(b, v)
    green_max = _mask(g, v).sub_(blue_max).clamp_(min=0.0)
    red_max = (1.0 - blue_max).sub_(green_max)
    num = (r - g).mul_(blue_max).add_((b - r).mul_(green_max)).add_((g - b).mul_(red_max))
    hue = num.div_(delta + grey).add_(blue_max.mul_(4.0).add_(green_max.mul_(2.0))).div_(6.0)
    # hue/6 lies in [−1/6, 5/6] (|num| ≤ Δ), where remainder(·, 1) is "+1 if negative", exactly
    hue.add_(_mask_lt(hue, 0.0)).mul_(1.0 - grey)
    return torch.stack((hue, s, v), dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) HSV in [0, 1] -> RGB in [0, 1] (skimage.color.hsv2rgb, bit for bit; H must
    lie in [0, 1], as rgb_to_hsv gives it)."""
    h, s, v = hsv.unbind(-3)
    h6 = h * 6.0
    sector = torch.floor(h6)
    f = h6 - sector
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    m = [_mask(sector, float(j)) for j in range(6)]  # sector of the hue wheel, 0..5
    m[0].add_(_mask(sector, 6.0))  # H = 1 wraps to sector 0
    # (R, G, B) per sector: 0 (v,t,p) 1 (q,v,p) 2 (p,v,t) 3 (p,q,v) 4 (t,p,v) 5 (v,p,q)
    red = v * (m[0] + m[5]) + q * m[1] + t * m[4] + p * (m[2] + m[3])
    green = v * (m[1] + m[2]) + t * m[0] + q * m[3] + p * (m[4] + m[5])
    blue = v * (m[3] + m[4]) + t * m[2] + q * m[5] + p * (m[0] + m[1])
    return torch.stack((red, green, blue), dim=-3)


def shift_value(rgb: torch.Tensor, delta: float) -> torch.Tensor:
    """hsv_to_rgb of rgb_to_hsv(rgb) with V <- clip(V + delta, 0, 1), in closed form.

    With H and S fixed, every channel of skimage's hsv2rgb is V times a factor of (H, S) alone, so
    each channel scales by V' / V; black pixels (V = 0, hence H = S = 0) become grey V'. Equal to
    the HSV round trip in exact arithmetic, in a few passes instead of some forty."""
    v = rgb.amax(dim=-3, keepdim=True)
    black = _mask(v, 0.0)
    v_new = (v + delta).clamp_(0.0, 1.0)
    ratio = v_new / (v + black)
    return torch.addcmul(black.mul_(v_new), rgb, ratio)  # one pass over the picture


def scale_saturation(rgb: torch.Tensor, mult: float, offset: float) -> torch.Tensor:
    """hsv_to_rgb of rgb_to_hsv(rgb) with S <- clip(S · mult + offset, 0, 1), in closed form.

    With H and V fixed, skimage's hsv2rgb gives every channel as V · (1 − S · w) with a weight w
    of H alone, so channel c becomes V − (V − c) · S' / S. Grey pixels (S = 0, H = 0) have the
    hue-0 weights (0, 1, 1): (V, V·(1 − S'), V·(1 − S')). Equal to the HSV round trip in exact
    arithmetic, in a few passes instead of some forty."""
    v = rgb.amax(dim=-3, keepdim=True)
    chroma = v - rgb.amin(dim=-3, keepdim=True)
    grey = _mask(chroma, 0.0)
    s = chroma.div_(v + grey)
    s_new = (s * mult).add_(offset).clamp_(0.0, 1.0)
    ratio = s_new / s.add_(grey)  # grey pixels: S'
    # V − c, except V on grey pixels' G and B (where c = V), so that they get V − V·S'.
    gap = torch.empty(rgb.shape, dtype=rgb.dtype, device=rgb.device)
    torch.sub(v, rgb[..., :1, :, :], out=gap[..., :1, :, :])
    torch.sub(grey.mul_(v).add_(v), rgb[..., 1:, :, :], out=gap[..., 1:, :, :])
    return torch.addcmul(v, gap, ratio, value=-1.0)  # V − (V − c)·S'/S in one pass


def rgb_to_gray(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) with 0.299 R + 0.587 G + 0.114 B."""
    r, g, b = rgb.unbind(-3)
    wr, wg, wb = GRAY_WEIGHTS
    return (wr * r + wg * g + wb * b).unsqueeze(-3)


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Replicate a 1-channel image to 3 channels (3-channel input is returned as is)."""
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x


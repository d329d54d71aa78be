"""Per-image reference-style implementations of the training transforms, for bench_train_aug.py.

Written here from the algorithms in corruptions-2d.md §5–§6 in the style the papers' repositories
run them: one image at a time in a Dataset's __getitem__, on PIL images with numpy's global RNG.

* AugMix (google-research/augmix): PIL `ImageOps` / `Image.transform` ops, Dirichlet/Beta from
  numpy, ToTensor + Normalize per chain, mixing on tensors; JSD returns (clean, aug1, aug2).
* HybridAugment / HybridAugment++ / APR single (MKYucel/hybrid_augment `datasets/APR.py`): PIL base
  ops at severity 3, torchvision-style GaussianBlur (reflect pad + depthwise conv2d) on the image
  tensor, numpy `fftn` over H×W×C for the amplitude–phase swap, ToPILImage byte casts.
* Paired variants (`core/train.py`): already batch-level torch code in the reference (one
  permutation per batch), so their reference is that batched code.
* PRIME (amodas/PRIME-augmentations): its primitives applied per image (batch of one) with
  per-call strengths, mixed AugMix-style.
* RandomCorruption: `imagecorruptions.corrupt` per image (tests/ops/image/reference.py shim).

Only speed is compared with these; fidelity is tested in tests/transforms.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(3, 1, 1)
CIFAR_STD = torch.tensor((0.2023, 0.1994, 0.2010)).view(3, 1, 1)
BILINEAR = Image.Resampling.BILINEAR
AFFINE = Image.Transform.AFFINE


# --------------------------------------------------------------------------- AugMix's PIL ops


def _level(severity: float) -> float:
    return float(np.random.uniform(0.1, severity))


def _signed(value: float) -> float:
    return -value if np.random.uniform() > 0.5 else value


def _autocontrast(im: Image.Image, severity: float) -> Image.Image:
    return ImageOps.autocontrast(im)


def _equalize(im: Image.Image, severity: float) -> Image.Image:
    return ImageOps.equalize(im)


def _posterize(im: Image.Image, severity: float) -> Image.Image:
    return ImageOps.posterize(im, 4 - int(_level(severity) * 4 / 10))


def _rotate(im: Image.Image, severity: float) -> Image.Image:
    return im.rotate(_signed(int(_level(severity) * 30 / 10)), resample=BILINEAR)


def _solarize(im: Image.Image, severity: float) -> Image.Image:
    return ImageOps.solarize(im, 256 - int(_level(severity) * 256 / 10))


def _affine(im: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return im.transform(im.size, AFFINE, coeffs, resample=BILINEAR)


def _shear_x(im: Image.Image, severity: float) -> Image.Image:
    return _affine(im, (1, _signed(_level(severity) * 0.3 / 10), 0, 0, 1, 0))


def _shear_y(im: Image.Image, severity: float) -> Image.Image:
    return _affine(im, (1, 0, 0, _signed(_level(severity) * 0.3 / 10), 1, 0))


def _translate_x(im: Image.Image, severity: float) -> Image.Image:
    return _affine(im, (1, 0, _signed(int(_level(severity) * im.size[0] / 3 / 10)), 0, 1, 0))


def _translate_y(im: Image.Image, severity: float) -> Image.Image:
    return _affine(im, (1, 0, 0, 0, 1, _signed(int(_level(severity) * im.size[1] / 3 / 10))))


BASE_OPS: list[Callable[[Image.Image, float], Image.Image]] = [
    _autocontrast, _equalize, _posterize, _rotate, _solarize, _shear_x, _shear_y, _translate_x, _translate_y,
]


def random_op(im: Image.Image, severity: float = 3) -> Image.Image:
    return BASE_OPS[np.random.randint(len(BASE_OPS))](im, severity)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """torchvision ToTensor: uint8 HWC -> float CHW in [0, 1]."""
    return torch.from_numpy(np.array(im, copy=True)).permute(2, 0, 1).contiguous().float().div(255)


def to_pil(x: torch.Tensor) -> Image.Image:
    """torchvision ToPILImage on a float CHW tensor: ×255 and byte cast (wraps, no clamp)."""
    return Image.fromarray(x.mul(255).byte().permute(1, 2, 0).numpy())


def preprocess(im: Image.Image) -> torch.Tensor:
    return (to_tensor(im) - CIFAR_MEAN) / CIFAR_STD


def augment_and_mix(im: Image.Image, severity: float = 3, width: int = 3, depth: int = -1,
                    alpha: float = 1.0) -> torch.Tensor:
    """One AugMix draw of a PIL image, as a normalised tensor."""
    ws = np.float32(np.random.dirichlet([alpha] * width))
    m = np.float32(np.random.beta(alpha, alpha))
    mix = torch.zeros(3, im.size[1], im.size[0])
    for i in range(width):
        aug = im.copy()
        for _ in range(depth if depth > 0 else np.random.randint(1, 4)):
            aug = BASE_OPS[np.random.randint(len(BASE_OPS))](aug, severity)
        mix += float(ws[i]) * preprocess(aug)
    return (1 - float(m)) * preprocess(im) + float(m) * mix


def augmix(im: Image.Image) -> torch.Tensor:
    return augment_and_mix(im)


def augmix_jsd(im: Image.Image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return preprocess(im), augment_and_mix(im), augment_and_mix(im)


# --------------------------------------------------------------------------- HybridAugment / APR


def gaussian_blur(x: torch.Tensor, kernel_size: int = 3, sigma: float = 0.5) -> torch.Tensor:
    """torchvision's gaussian_blur on one CHW tensor: reflect pad, depthwise 2-D conv."""
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size)
    k1 = torch.exp(-0.5 * (t / sigma) ** 2)
    k1 = k1 / k1.sum()
    k2 = (k1[:, None] * k1[None, :]).expand(x.shape[0], 1, kernel_size, kernel_size)
    r = kernel_size // 2
    padded = F.pad(x[None], [r, r, r, r], mode="reflect")
    return F.conv2d(padded, k2, groups=x.shape[0])[0]


def apr_single(im: Image.Image, p_apr: float = 0.5) -> Image.Image:
    """APR-S: base op; with probability p_apr a second op and an amplitude/phase swap (numpy fftn)."""
    x = random_op(im)
    if np.random.uniform() > p_apr:
        return x
    x2 = random_op(x)
    fa, fb = np.fft.fftn(np.asarray(x)), np.fft.fftn(np.asarray(x2))
    amp, phase = (fa, fb) if np.random.uniform() < 0.5 else (fb, fa)
    out = np.fft.ifftn(np.abs(amp) * np.exp(1j * np.angle(phase))).real
    return Image.fromarray(out.astype(np.uint8))


def hybrid_single(im: Image.Image, kernel_size: int = 3, sigma: float = 0.5, prob: float = 0.5,
                  plus: bool = False) -> Image.Image:
    """HA-S (plus=False) or HA++-S: base op; with probability prob a second op and LF/HF swap."""
    x = random_op(im)
    if np.random.uniform() > prob:
        return x
    x2 = random_op(x)
    a, b = to_tensor(x), to_tensor(x2)
    low_a, low_b = gaussian_blur(a, kernel_size, sigma), gaussian_blur(b, kernel_size, sigma)
    high_a, high_b = a - low_a, b - low_b
    if plus:
        low_a, low_b = to_tensor(apr_single(to_pil(low_a))), to_tensor(apr_single(to_pil(low_b)))
    out = low_a + high_b if np.random.uniform() < 0.5 else low_b + high_a
    return to_pil(out)


def ha_single(im: Image.Image) -> torch.Tensor:
    return to_tensor(hybrid_single(im))


def happ_single(im: Image.Image) -> torch.Tensor:
    return to_tensor(hybrid_single(im, plus=True))


def apr_single_tensor(im: Image.Image) -> torch.Tensor:
    return to_tensor(apr_single(im))


def _blur_batch(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """The same blur on a (B, C, H, W) batch (the paired variants' GPU-batch code)."""
    half = (kernel_size - 1) * 0.5
    t = torch.linspace(-half, half, kernel_size)
    k1 = torch.exp(-0.5 * (t / sigma) ** 2)
    k1 = k1 / k1.sum()
    c = x.shape[1]
    k2 = (k1[:, None] * k1[None, :]).expand(c, 1, kernel_size, kernel_size).to(x)
    r = kernel_size // 2
    return F.conv2d(F.pad(x, [r, r, r, r], mode="reflect"), k2, groups=c)


def apr_paired(x: torch.Tensor, p_apr: float = 0.6) -> torch.Tensor:
    """APR-P as core/train.py runs it on the batch: amplitude of x[π], phase of x."""
    if np.random.uniform() > p_apr:
        return x
    perm = torch.randperm(x.shape[0])
    fa = torch.fft.fftn(x[perm], dim=(1, 2, 3))
    fp = torch.fft.fftn(x, dim=(1, 2, 3))
    return torch.fft.ifftn(torch.abs(fa) * torch.exp(1j * torch.angle(fp)), dim=(1, 2, 3)).float()


def ha_paired(x: torch.Tensor, kernel_size: int = 3, sigma: float = 0.5, prob: float = 0.6) -> torch.Tensor:
    if np.random.uniform() > prob:
        return x
    perm = torch.randperm(x.shape[0])
    low = _blur_batch(x, kernel_size, sigma)
    return low + (x - low)[perm]


def happ_paired(x: torch.Tensor, kernel_size: int = 3, sigma: float = 0.5, prob: float = 0.6,
                p_apr: float = 0.6) -> torch.Tensor:
    if np.random.uniform() > prob:
        return x
    perm = torch.randperm(x.shape[0])
    low = _blur_batch(x, kernel_size, sigma)
    return apr_paired(low, p_apr) + (x - low)[perm]


# --------------------------------------------------------------------------- PRIME, per image


def _diffeo(x: torch.Tensor, cut_min: int = 2, cut_max: int = 100) -> torch.Tensor:
    n = x.shape[-1]
    c_max = np.random.randint(cut_min + 1, cut_max + 1)
    cut = min(cut_min + int(np.random.beta(0.5, 0.5) * (c_max + 1 - cut_min)), c_max)
    log_c = math.log(cut)
    t1, t2 = 1 / (math.pi * n * n * log_c), 4 / (math.pi**3 * cut * cut * log_c)
    temp = t1 + np.random.beta(0.5, 0.5) * (max(t1, t2) - t1)
    k = torch.arange(1, cut + 1, dtype=torch.float32)
    r = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    weight = torch.where(r < cut + 0.5, 1 / r, torch.zeros(()))
    grid = torch.linspace(0, 1, n)
    s = torch.sin(math.pi * grid[:, None] * k[None, :])  # (n, cut)
    u = torch.einsum("ij,xi,yj->yx", torch.randn(cut, cut) * weight, s, s)
    v = torch.einsum("ij,xi,yj->yx", torch.randn(cut, cut) * weight, s, s)
    dx, dy = math.sqrt(temp) * n * u, math.sqrt(temp) * n * v
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32),
                            indexing="ij")
    xn, yn = (xs - dx).clamp(0, n - 1), (ys - dy).clamp(0, n - 1)
    x0, y0, x1, y1 = xn.floor().long(), yn.floor().long(), xn.ceil().long(), yn.ceil().long()
    fx, fy = xn - x0, yn - y0
    top = (1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1]
    bottom = (1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]
    return ((1 - fy) * top + fy * bottom).clamp(0, 1)


def _color(x: torch.Tensor, cut: int = 100, t_max: float = 0.01) -> torch.Tensor:
    c = np.random.randint(1, cut + 1)
    temp = np.random.uniform(0, t_max)
    freqs = torch.arange(1, c + 1, dtype=torch.float32).view(-1, 1, 1, 1)
    coeffs = torch.randn(c, x.shape[0], 1, 1) * math.sqrt(temp)
    return (x + (coeffs * torch.sin(math.pi * freqs * x[None])).sum(0)).clamp(0, 1)


def _filter(x: torch.Tensor, size: int = 3, sigma_max: float = 4.0) -> torch.Tensor:
    delta = torch.zeros(size, size)
    delta[math.ceil(size / 2), math.ceil(size / 2)] = 1
    kernel = delta + np.random.uniform(0, sigma_max) * torch.randn(size, size)
    kernel = kernel.expand(x.shape[0], 1, size, size)
    out = F.conv2d(x[None], kernel, padding="same", groups=x.shape[0])[0]
    return torch.nan_to_num(out, nan=1.0).clamp(0, 1)


PRIMITIVES = [_diffeo, _color, _filter]


def prime(im: Image.Image, width: int = 3, max_depth: int = 3) -> torch.Tensor:
    """One PRIME draw of an image (batch of one), mixed like AugMix; returns [0, 1] CHW."""
    x = to_tensor(im)
    ws = torch.from_numpy(np.random.dirichlet([1.0] * width)).float()
    m = float(np.random.beta(1.0, 1.0))
    mix = torch.zeros_like(x)
    for i in range(width):
        chain = x.clone()
        for _ in range(np.random.randint(1, max_depth + 1)):
            chain = PRIMITIVES[np.random.randint(len(PRIMITIVES))](chain)
        mix += ws[i] * chain
    return ((1 - m) * x + m * mix).clamp(0, 1)


# --------------------------------------------------------------------------- RandomCorruption


def random_corruption(pixels: np.ndarray, names: list[str],
                      corrupt: Callable[..., np.ndarray]) -> torch.Tensor:
    """One imagecorruptions op drawn per image at a random severity, as a [0, 1] tensor."""
    name = names[np.random.randint(len(names))]
    out = corrupt(pixels, name, int(np.random.randint(1, 6)), int(np.random.randint(2**31)))
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).float().div(255)

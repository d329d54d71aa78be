"""HybridAugment, HybridAugment++ and APR (Yucel, Cinbis, Duygulu — ICCV 2023) as seeded modules.

Reference: MKYucel/hybrid_augment (`datasets/APR.py` single-image variants, `core/train.py` and
`imagenet.py` paired variants and defaults). Two modes per method:

* mode='single' — the per-image variants the reference runs on PIL images in the data loader.
  Every decision of image i comes from its own generator, so an image's output does not depend
  on its batch. Base ops are AugMix's 9 ops at `severity` 3 with PIL semantics.
* mode='paired' — the batch-level variants the reference runs on the GPU batch each iteration:
  one coin and one permutation per batch, drawn from `batch_generator(gens)`.

Reference quirks and what is done with them:

* Single-image outputs go through ToPILImage (×255, truncate, wrap out-of-range values modulo
  256) and single-image APR casts its real part to uint8 the same way (no clipping), so bright
  pixels can wrap to black. `faithful_uint8=True` reproduces that; the default (False) clips to
  [0, 1] and keeps float precision.
* Paired outputs are not clipped (LF + permuted HF and APR real parts leave [0, 1]); kept by
  default, `clip=True` clamps to [0, 1].
* The ImageNet script applies the paired step to normalised tensors. HA-P commutes with the
  per-channel normalisation, APR-P does not, so `apr_normalize=(mean, std)` (default for the
  'imagenet' preset: ImageNet's) mixes spectra of normalised images and maps back to [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from augforge.core.errors import InvalidInputError, InvalidParameterError
from augforge.ops.frequency.augmix_ops import N_BASE_OPS, apply_ops_levels, from_levels, sample_ops, to_levels
from augforge.ops.frequency.spectral import (
    CPU_CHUNK_BYTES,
    amplitude_phase_mix,
    amplitude_phase_permute,
    byte_cast,
    gaussian_blur_tv,
)
from augforge.transforms._common import (
    MODES,
    PRESETS,
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_kernel,
    check_probability,
    uniforms,
)
from augforge.transforms.base import SeededTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OP_SEVERITY = 3  # the reference always calls the base ops at severity 3
Normalize = tuple[Sequence[float], Sequence[float]]

# Defaults per (mode, preset), from main.py / core/train.py (CIFAR) and imagenet.py (ImageNet).
HA_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("single", "cifar"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.5},
    ("single", "imagenet"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.5},
    ("paired", "cifar"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.6},
    ("paired", "imagenet"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.6},
}
HAPP_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("single", "cifar"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "p_apr": 0.5, "blur_strength": 1},
    ("single", "imagenet"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.5, "p_apr": 0.5, "blur_strength": 1},
    ("paired", "cifar"): {"kernel_size": 3, "sigma": 0.5, "prob": 0.6, "p_apr": 0.6, "blur_strength": 1},
    ("paired", "imagenet"): {"kernel_size": 3, "sigma": 1.0, "prob": 0.6, "p_apr": 0.5, "blur_strength": 1},
}
APR_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("single", "cifar"): {"p_apr": 0.5},
    ("single", "imagenet"): {"p_apr": 0.5},
    ("paired", "cifar"): {"p_apr": 0.6},
    ("paired", "imagenet"): {"p_apr": 0.5},
}
APR_NORMALIZE_DEFAULTS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "cifar": None,  # core/train.py mixes [0, 1] tensors and normalises afterwards
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),  # imagenet.py mixes normalised tensors
}


class _FrequencyTransform(SeededTransform):
    """Mode/preset resolution, validation and the shared single/paired building blocks."""

    def __init__(self, mode: str, preset: str, seed: int, *, severity: int | None, image_size: int | None,
                 faithful_uint8: bool | None, clip: bool | None,
                 apr_normalize: Normalize | str | None = "preset") -> None:
        super().__init__(seed)
        owner = type(self).__name__
        self.mode = check_choice(owner, "mode", mode, MODES)
        self.preset = check_choice(owner, "preset", preset, PRESETS)
        from_preset = isinstance(apr_normalize, str) and apr_normalize == "preset"
        single_only = {"severity": severity, "image_size": image_size, "faithful_uint8": faithful_uint8}
        paired_only = {"clip": clip, "apr_normalize": None if from_preset else "given"}
        for key, value in (paired_only if mode == "single" else single_only).items():
            if value is not None:
                other = "paired" if mode == "single" else "single"
                raise InvalidParameterError(f"{owner}: {key} applies to mode={other!r} only")
        self.severity = check_int(owner, "severity", OP_SEVERITY if severity is None else severity, 1, 10)
        self.image_size = check_image_size(owner, image_size)
        self.faithful_uint8 = faithful_uint8 is not None and check_bool(owner, "faithful_uint8",
                                                                        faithful_uint8)
        self.clip = clip is not None and check_bool(owner, "clip", clip)
        norm = APR_NORMALIZE_DEFAULTS[preset] if from_preset else apr_normalize
        self.apr_normalize = _check_normalize(owner, norm) if mode == "paired" else None

    def _resolve(self, table: dict[tuple[str, str], dict[str, Any]], given: dict[str, Any]) -> dict[str, Any]:
        defaults = table[(self.mode, self.preset)]
        return {k: defaults[k] if given.get(k) is None else given[k] for k in defaults}

    # -- single-image building blocks (per-sample uniforms u, float images in [0, 1]) --
    #
    # The base ops work on 8-bit levels (uint8): an op's output is kept as levels for the next op
    # and only turned into floats (k / 255, the values the float path gives) where floats are read.

    def _op(self, v: torch.Tensor, u3: torch.Tensor) -> torch.Tensor:
        """One random base op per image at `severity` on uint8 levels (u3: op, level, sign uniforms)."""
        return apply_ops_levels(v, *sample_ops(u3, N_BASE_OPS, self.severity), self.image_size)

    def _to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """ToPILImage's byte cast (faithful) or a clip to [0, 1] (in place: x is a temporary)."""
        if self.faithful_uint8:
            return byte_cast(x * 255) / 255
        return x.clamp_(0, 1)

    def _apr_single(self, x: torch.Tensor, u: torch.Tensor, p_apr: float) -> torch.Tensor:
        """APRecombination: op; with probability p_apr a second op and an amplitude/phase swap
        between the two (which way round: a fair coin). u: (B, 8) uniforms."""
        v1 = self._op(to_levels(x, torch.uint8), u[:, 0:3])
        out = from_levels(v1, x.dtype)
        idx = (u[:, 3] <= p_apr).nonzero().flatten()
        if idx.numel():
            a = v1[idx]
            b = self._op(a, u[idx, 4:7])
            first = (u[idx, 7] > 0.5).view(-1, 1, 1, 1)
            amplitude = from_levels(torch.where(first, a, b), x.dtype)
            phase = from_levels(torch.where(first, b, a), x.dtype)
            out[idx] = self._to_uint8(amplitude_phase_mix(amplitude, phase))
        return out

    def _hybrid_single(self, x: torch.Tensor, u: torch.Tensor, prob: float, kernel_size: int, sigma: float,
                       p_apr: float | None) -> torch.Tensor:
        """HybridAugment(-Plus)Single: op; with probability prob a second op and the LF of one
        image plus the HF of the other; with p_apr (HA++) the LF first goes through APR.

        The reference computes both LF/HF pairs (and for HA++ passes both LFs through APR, LF(a)
        with draws u[8:16], LF(b) with u[16:24]) and keeps one sum; only the kept parts are
        computed here, from the same draws, so the output is the same."""
        v1 = self._op(to_levels(x, torch.uint8), u[:, 0:3])
        out = from_levels(v1, x.dtype)
        idx = (u[:, 3] <= prob).nonzero().flatten()
        if idx.numel():
            a = v1[idx]
            b = self._op(a, u[idx, 4:7])
            first = (u[idx, 7] > prob).view(-1, 1, 1, 1)  # LF(a) + HF(b), else LF(b) + HF(a)
            lf, hf = torch.where(first, a, b), torch.where(first, b, a)
            if p_apr is None:  # HA: chunk by chunk, straight into the output rows
                for rows, low, high in _frequency_parts(lf, hf, x.dtype, kernel_size, sigma):
                    out.index_copy_(0, idx[rows], self._to_uint8(high.add_(low)))  # HF + LF, in that order
                return out
            ((_, low, high),) = _frequency_parts(lf, hf, x.dtype, kernel_size, sigma, whole=True)
            if self.faithful_uint8:  # the reference hands APR a PIL image of the LF
                low = byte_cast(low * 255) / 255
            low = self._apr_single(low, torch.where(first.view(-1, 1), u[idx, 8:16], u[idx, 16:24]), p_apr)
            out[idx] = self._to_uint8(high.add_(low))
        return out

    # -- paired building blocks (batch-level generator) --

    @staticmethod
    def _coin(gen: torch.Generator) -> float:
        return float(torch.rand((), generator=gen, device=gen.device, dtype=torch.float64))

    def _apr_paired(self, x: torch.Tensor, gen: torch.Generator, p_apr: float) -> torch.Tensor:
        """APR-P: with probability p_apr, amplitude of x[π] with the phase of x (real part)."""
        if self._coin(gen) > p_apr:
            return x.clone()
        perm = torch.randperm(x.shape[0], generator=gen, device=gen.device).to(x.device)
        if self.apr_normalize is None:
            return amplitude_phase_permute(x, perm)
        mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                     for v in self.apr_normalize)
        if mean.shape[1] != x.shape[1]:
            raise InvalidInputError(f"{self.name}: apr_normalize has {mean.shape[1]} channels, input has "
                                    f"{x.shape[1]}; pass apr_normalize=None or matching statistics")
        n = (x - mean) / std
        return amplitude_phase_permute(n, perm).mul_(std).add_(mean)

    def _finish_paired(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_(0, 1) if self.clip else x  # x is a temporary


def _frequency_parts(lf: torch.Tensor, hf: torch.Tensor, dtype: torch.dtype, kernel_size: int, sigma: float,
                     whole: bool = False) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, blur(lf[rows]), hf[rows] − blur(hf[rows])) of uint8 level images as `dtype`,
    in chunks of about CPU_CHUNK_BYTES on the CPU (each chunk is used before the next is made, so
    temporaries stay in cache and no batch-sized buffers are needed), one chunk elsewhere or when
    `whole`. Both images of a chunk are blurred in one call."""
    n = lf.shape[0]
    image_bytes = lf[0].numel() * torch.empty((), dtype=dtype).element_size()
    per = n if whole or lf.device.type != "cpu" else max(1, CPU_CHUNK_BYTES // (2 * image_bytes))
    for start in range(0, n, per):
        rows = slice(start, min(n, start + per))
        sources = from_levels(torch.cat([lf[rows], hf[rows]]), dtype)
        lows = gaussian_blur_tv(sources, kernel_size, sigma)
        m = rows.stop - rows.start
        yield rows, lows[:m], sources[m:].sub_(lows[m:])


def _check_normalize(owner: str, value: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if value is None:
        return None
    try:
        mean, std = (tuple(float(v) for v in part) for part in value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{owner}: apr_normalize must be None or (mean, std) sequences") from None
    if len(mean) != len(std) or len(mean) not in (1, 3) or min(std) <= 0:
        raise InvalidParameterError(f"{owner}: apr_normalize needs 1 or 3 means and as many positive stds")
    return mean, std


class HybridAugment(_FrequencyTransform):
    """HybridAugment: low frequencies of one image with the high frequencies of another.

    single (HA-S): base op; with probability `prob` a second op x' and LF(x) + HF(x') or
    LF(x') + HF(x). paired (HA-P): with probability `prob` the batch becomes LF(x) + HF(x[π]).
    Blur: torchvision GaussianBlur(kernel_size, sigma). Defaults: HA_DEFAULTS.
    """

    name = "hybrid_augment"

    def __init__(self, mode: str = "single", preset: str = "cifar", kernel_size: int | None = None,
                 sigma: float | None = None, prob: float | None = None, *, severity: int | None = None,
                 image_size: int | None = None, faithful_uint8: bool | None = None, clip: bool | None = None,
                 seed: int = 0) -> None:
        super().__init__(mode, preset, seed, severity=severity, image_size=image_size,
                         faithful_uint8=faithful_uint8, clip=clip)
        self.apr_normalize = None  # no spectra are mixed
        p = self._resolve(HA_DEFAULTS, {"kernel_size": kernel_size, "sigma": sigma, "prob": prob})
        owner = type(self).__name__
        self.kernel_size, self.sigma = check_kernel(owner, p["kernel_size"], p["sigma"])
        self.prob = check_probability(owner, "prob", p["prob"])

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        if self.mode == "single":
            u = uniforms(gens, 8, x.device)
            return self._hybrid_single(x, u, self.prob, self.kernel_size, self.sigma, None)
        gen = self.batch_generator(gens)
        if self._coin(gen) > self.prob:
            return x.clone()
        perm = torch.randperm(x.shape[0], generator=gen, device=gen.device).to(x.device)
        low = gaussian_blur_tv(x, self.kernel_size, self.sigma)
        return self._finish_paired((x - low)[perm].add_(low))  # LF + HF[π], summed in place

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, preset={self.preset!r}, kernel_size={self.kernel_size}, "
                f"sigma={self.sigma}, prob={self.prob}, {super().extra_repr()}")


class HybridAugmentPP(_FrequencyTransform):
    """HybridAugment++: HybridAugment whose low-frequency parts also get APR.

    single (HA++-S): as HA-S with blur (k·blur_strength, σ·blur_strength), each LF first passed
    through single-image APR (recombination probability p_apr). paired (HA++-P): with
    probability `prob`, LF' + HF[π] where LF' = APR-P(LF) (own coin p_apr, own permutation).
    Defaults: HAPP_DEFAULTS (ImageNet paired: σ = 1.0, p_apr = 0.5).
    """

    name = "hybrid_augment_pp"

    def __init__(self, mode: str = "single", preset: str = "cifar", kernel_size: int | None = None,
                 sigma: float | None = None, prob: float | None = None, p_apr: float | None = None,
                 blur_strength: int | None = None, *, severity: int | None = None,
                 image_size: int | None = None, faithful_uint8: bool | None = None, clip: bool | None = None,
                 apr_normalize: Normalize | str | None = "preset",
                 seed: int = 0) -> None:
        super().__init__(mode, preset, seed, severity=severity, image_size=image_size,
                         faithful_uint8=faithful_uint8, clip=clip, apr_normalize=apr_normalize)
        given = {"kernel_size": kernel_size, "sigma": sigma, "prob": prob, "p_apr": p_apr,
                 "blur_strength": blur_strength}
        p = self._resolve(HAPP_DEFAULTS, given)
        owner = type(self).__name__
        self.blur_strength = check_int(owner, "blur_strength", p["blur_strength"], 1)
        self.kernel_size, self.sigma = check_kernel(owner, p["kernel_size"], p["sigma"], self.blur_strength)
        self.prob = check_probability(owner, "prob", p["prob"])
        self.p_apr = check_probability(owner, "p_apr", p["p_apr"])

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        if self.mode == "single":
            u = uniforms(gens, 24, x.device)
            return self._hybrid_single(x, u, self.prob, self.kernel_size, self.sigma, self.p_apr)
        gen = self.batch_generator(gens)
        if self._coin(gen) > self.prob:
            return x.clone()
        perm = torch.randperm(x.shape[0], generator=gen, device=gen.device).to(x.device)
        low = gaussian_blur_tv(x, self.kernel_size, self.sigma)
        high = x - low
        return self._finish_paired(high[perm].add_(self._apr_paired(low, gen, self.p_apr)))

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, preset={self.preset!r}, kernel_size={self.kernel_size}, "
                f"sigma={self.sigma}, prob={self.prob}, p_apr={self.p_apr}, {super().extra_repr()}")


class APR(_FrequencyTransform):
    """Amplitude–phase recombination.

    single (APR-S): base op; with probability p_apr a second op and the amplitude spectrum of
    one of the two images with the phase of the other. paired (APR-P): with probability p_apr,
    the amplitude of x[π] with the phase of x. Defaults: APR_DEFAULTS.
    """

    name = "apr"

    def __init__(self, mode: str = "single", preset: str = "cifar", p_apr: float | None = None, *,
                 severity: int | None = None, image_size: int | None = None,
                 faithful_uint8: bool | None = None, clip: bool | None = None,
                 apr_normalize: Normalize | str | None = "preset",
                 seed: int = 0) -> None:
        super().__init__(mode, preset, seed, severity=severity, image_size=image_size,
                         faithful_uint8=faithful_uint8, clip=clip, apr_normalize=apr_normalize)
        p = self._resolve(APR_DEFAULTS, {"p_apr": p_apr})
        self.p_apr = check_probability(type(self).__name__, "p_apr", p["p_apr"])

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        if self.mode == "single":
            return self._apr_single(x, uniforms(gens, 8, x.device), self.p_apr)
        return self._finish_paired(self._apr_paired(x, self.batch_generator(gens), self.p_apr))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, preset={self.preset!r}, p_apr={self.p_apr}, {super().extra_repr()}"

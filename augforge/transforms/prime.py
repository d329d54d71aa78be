"""PRIME (Modas, Rade, Ortiz-Jiménez, Moosavi-Dezfooli, Frossard — ECCV 2022) as batched modules.

Three primitives — max-entropy `Diffeo`, spectral `RandomSmoothColor`, random-convolution
`RandomFilter` — and the AugMix-style `PRIME` mixer (reference: corruptions-2d.md §6.2/§6.1,
amodas/PRIME-augmentations). Each primitive is usable alone as a `SeededTransform`, and exposes
`draw(gens, c, h, w)` (per-sample parameters, sample i from gens[i] only) and `apply(x, draws)`
(one batched kernel call) so that PRIME can run every primitive once per chain step on the
images that chose it.

Differences from the reference, on purpose:
* strengths (cut-offs, temperatures, σ, colour cut) are drawn per image; the reference draws one
  value per call for the whole batch. Everything else follows §6.2.
* Beta(½, ½) is drawn as sin²(πU/2), Beta(1, 1) as U, Dirichlet(1, 1, 1) as normalised
  −log(1 − U) draws: torch's Gamma sampler takes no generator, these take seeded uniforms.
* Non-square images: the field lives on [0, 1]² and is stretched per axis (dx scaled by W, dy by
  H); T1 uses n = min(H, W), so the typical displacement is at least ~½ px on both axes. Square
  images are exactly the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from augforge.core.errors import InvalidParameterError
from augforge.core.seeding import generator_for
from augforge.transforms import prime_kernels as K
from augforge.transforms.base import SeededTransform

# §6.2 configs (config/cifar10_cfg.py, config/imagenet_cfg.py): shared cutmin 2, α 1, width 3,
# depth U{1..3}, filter k 3 / σ_max 4.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar": {
        "diffeo_cut_max": 100,
        "color_cut": 100,
        "color_t": 0.01,
        "color_max_freqs": None,
        "filter_size": 3,
        "filter_sigma": 4.0,
        "jsd": True,
    },
    "imagenet": {
        "diffeo_cut_max": 500,
        "color_cut": 500,
        "color_t": 0.05,
        "color_max_freqs": 20,
        "filter_size": 3,
        "filter_sigma": 4.0,
        "jsd": False,
    },
}


_MODE_BLOCK = 16  # Diffeo synthesises a draw's field with its cut-off rounded up to a multiple of this

# --------------------------------------------------------------------------- seeded draws


def uniforms(gens: Sequence[torch.Generator], count: int) -> list[list[float]]:
    """`count` float64 U[0, 1) draws per generator, fetched to the host in one transfer."""
    if not gens:
        return []
    rows = [torch.rand(count, dtype=torch.float64, generator=g, device=g.device) for g in gens]
    return torch.stack(rows).cpu().tolist()


def uniform_int(u: float, low: int, high: int) -> int:
    """U{low..high} (inclusive) from one U[0, 1) draw."""
    return low + min(int(u * (high - low + 1)), high - low)


def arcsine(u: float) -> float:
    """Beta(½, ½) from one U[0, 1) draw: the arcsine law's inverse CDF, sin²(πu/2)."""
    return math.sin(0.5 * math.pi * u) ** 2


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidParameterError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _check_float(name: str, value: object, low: float, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {value!r}")
    if value < low or (strict and value == low):
        raise InvalidParameterError(f"{name} must be {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- primitives


class PrimePrimitive(SeededTransform):
    """A PRIME primitive: per-sample `draw`, batched `apply`; alone it is a seeded transform."""

    def draw(self, gens: Sequence[torch.Generator], channels: int, height: int, width: int) -> list[Any]:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, draws: Sequence[Any]) -> torch.Tensor:
        raise NotImplementedError

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        _, c, h, w = x.shape
        return self.apply(x, self.draw(gens, c, h, w))


@lru_cache(maxsize=256)
def _weights(cut: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`K.mode_weights` of cut-off `cut` restricted to its (cut, cut) modes."""
    return K.mode_weights(torch.tensor([cut], device=device), cut, dtype)[0]


@lru_cache(maxsize=256)
def _pair_weights(cut: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`_weights(cut)` for u and v, flattened in a draw's (2, cut, cut) order."""
    return _weights(cut, dtype, device).expand(2, cut, cut).reshape(-1)


@dataclass(frozen=True)
class DiffeoDraw:
    """One image's diffeo: sampled cut-off bound, cut-off, Beta(½, ½) draws, temperature and the
    raw N(0, 1) coefficients (2, cut, cut) of u and v (mode weights are applied in `apply`)."""

    cut_max: int
    cut: int
    beta_cut: float
    beta_t: float
    temperature: float
    normals: torch.Tensor


class Diffeo(PrimePrimitive):
    """Max-entropy diffeomorphism: random smooth displacement field, bilinear remap (§6.2).

    Per image: c_max ~ U{cut_min+1..cut_max}; c = cut_min + ⌊B·(c_max + 1 − cut_min)⌋, B ~ Beta(½, ½);
    T = T1 + B'·(max(T1, α·T2) − T1), B' ~ Beta(½, ½) (the reference clips T2 at T1, so for
    c > 2n/π the temperature is T1); u, v = Σ N(0,1)/√(i²+j²) sin(πix) sin(πjy) over √(i²+j²) < c+½.
    """

    name = "prime_diffeo"

    def __init__(self, cut_max: int = 100, *, cut_min: int = 2, alpha: float = 1.0, seed: int = 0) -> None:
        super().__init__(seed)
        self.cut_min = _check_int("Diffeo cut_min", cut_min, 2)
        self.cut_max = _check_int("Diffeo cut_max", cut_max, self.cut_min + 1)
        self.alpha = _check_float("Diffeo alpha", alpha, 0.0, strict=True)

    def draw(
        self, gens: Sequence[torch.Generator], channels: int, height: int, width: int
    ) -> list[DiffeoDraw]:
        n = min(height, width)
        out = []
        for g, (u_max, u_cut, u_t) in zip(gens, uniforms(gens, 3), strict=True):
            cut_max = uniform_int(u_max, self.cut_min + 1, self.cut_max)
            beta_cut = arcsine(u_cut)
            cut = min(self.cut_min + int(beta_cut * (cut_max + 1 - self.cut_min)), cut_max)
            t1, t2 = K.temperature_range(n, cut)
            beta_t = arcsine(u_t)
            temperature = t1 + beta_t * (max(t1, self.alpha * t2) - t1)
            normals = torch.randn((2, cut, cut), generator=g, device=g.device)
            out.append(DiffeoDraw(cut_max, cut, beta_cut, beta_t, temperature, normals))
        return out

    def coefficients(
        self, draws: Sequence[DiffeoDraw], dtype: torch.dtype, device: torch.device, size: int | None = None
    ) -> torch.Tensor:
        """Mode-weighted coefficients (B, 2, m, m), zero-padded to m = `size` (default: the largest
        cut-off).

        Each draw's (2, cut, cut) normals are weighted by its own (cut, cut) table of
        `K.mode_weights` (the entries a zero-padded product would also give) and copied in once.
        """
        m = max(d.cut for d in draws) if size is None else size
        cuts = torch.tensor([d.cut for d in draws], device=device)
        k = torch.arange(m, device=device)
        inside = (k.view(1, m, 1) < cuts.view(-1, 1, 1)) & (k.view(1, 1, m) < cuts.view(-1, 1, 1))
        # each draw's normals times its weights (broadcast over u, v), all draws in one product
        normals = torch.cat([d.normals.reshape(-1) for d in draws]).to(device=device, dtype=dtype)
        values = normals * torch.cat([_pair_weights(d.cut, dtype, device) for d in draws])
        coeffs = torch.zeros((len(draws), 2, m, m), dtype=dtype, device=device)
        # the mask's row-major order is each draw's (2, cut, cut) order
        return coeffs.masked_scatter_(inside[:, None].expand(-1, 2, -1, -1), values)

    def fields(self, draws: Sequence[DiffeoDraw], height: int, width: int, dtype: torch.dtype,
               device: torch.device) -> torch.Tensor:
        """The (B, 2, H, W) sine-series fields u, v of the draws (before the temperature scale).

        Modes beyond a draw's cut-off have weight 0, so each draw is synthesised with only its
        first m modes, m = its cut-off rounded up to a multiple of _MODE_BLOCK (draws grouped by
        m): far less work than padding every draw to the batch's largest cut-off, and m depends
        on the draw alone, not on the batch.
        """
        groups: dict[int, list[int]] = {}
        for i, d in enumerate(draws):
            groups.setdefault(-(-d.cut // _MODE_BLOCK) * _MODE_BLOCK, []).append(i)
        if len(groups) == 1:
            (m, _), = groups.items()
            return K.displacement_fields(self.coefficients(draws, dtype, device, m), height, width)
        out = torch.empty((len(draws), 2, height, width), dtype=dtype, device=device)
        for m, rows in groups.items():
            coeffs = self.coefficients([draws[i] for i in rows], dtype, device, m)
            out[torch.tensor(rows, device=device)] = K.displacement_fields(coeffs, height, width)
        return out

    def apply(self, x: torch.Tensor, draws: Sequence[DiffeoDraw]) -> torch.Tensor:
        fields = self.fields(draws, x.shape[-2], x.shape[-1], x.dtype, x.device)
        temps = torch.tensor([d.temperature for d in draws], dtype=torch.float64, device=x.device)
        return K.diffeo_fields(x, fields, temps).clamp_(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"cut_max={self.cut_max}, cut_min={self.cut_min}, alpha={self.alpha}, {super().extra_repr()}"


@dataclass(frozen=True)
class ColorDraw:
    """One image's colour curve: cut, T, first frequency and the raw N(0, 1) draws (C, K); the
    frequencies (K,) and amplitudes √T·N (C, K) are derived (in `apply`, for all images at once)."""

    cut: int
    temperature: float
    min_freq: int
    normals: torch.Tensor

    @property
    def freqs(self) -> torch.Tensor:
        return torch.arange(self.min_freq, self.min_freq + self.normals.shape[1])

    @property
    def amplitudes(self) -> torch.Tensor:
        return self.normals * math.sqrt(self.temperature)


class RandomSmoothColor(PrimePrimitive):
    """Spectral colour jitter: v ← clamp(v + Σ_k a_k sin(π k v)) per image and channel (§6.2).

    Per image: cut ~ U{1..cut}, T ~ U(0, t_max), a_k ~ N(0, T) per channel, k = 1..cut, or with
    `max_freqs` the band k0..min(k0 + max_freqs, cut + 1) − 1, k0 ~ U{1..cut}.
    """

    name = "prime_color"

    def __init__(
        self, cut: int = 100, t_max: float = 0.01, *, max_freqs: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.cut = _check_int("RandomSmoothColor cut", cut, 1)
        self.t_max = _check_float("RandomSmoothColor t_max", t_max, 0.0)
        self.max_freqs = (
            None if max_freqs is None else _check_int("RandomSmoothColor max_freqs", max_freqs, 1)
        )

    def draw(
        self, gens: Sequence[torch.Generator], channels: int, height: int, width: int
    ) -> list[ColorDraw]:
        out = []
        for g, (u_cut, u_t, u_k) in zip(gens, uniforms(gens, 3), strict=True):
            cut = uniform_int(u_cut, 1, self.cut)
            temperature = u_t * self.t_max
            if self.max_freqs is None:
                first, count = 1, cut
            else:
                first = uniform_int(u_k, 1, cut)
                count = min(self.max_freqs, cut + 1 - first)
            normals = torch.randn((channels, count), generator=g, device=g.device)
            out.append(ColorDraw(cut, temperature, first, normals))
        return out

    def apply(self, x: torch.Tensor, draws: Sequence[ColorDraw]) -> torch.Tensor:
        """Amplitudes (B, C, K) and frequencies (B, K), zero-padded to the longest band, built in
        one pass: each draw's √T·N (√T in the normals' dtype, as `normals * √T` rounds it) and
        min_freq + 0..K−1."""
        b, c = x.shape[:2]
        counts = torch.tensor([d.normals.shape[1] for d in draws])
        width = int(counts.max())
        live = torch.arange(width).view(1, -1) < counts.view(-1, 1)  # (B, K) row-major = draw order
        normals = torch.cat([d.normals for d in draws], dim=1).to(x.device)  # (C, Σ K)
        roots = torch.tensor([math.sqrt(d.temperature) for d in draws], dtype=normals.dtype)
        values = normals * roots.repeat_interleave(counts).to(x.device)
        amps = torch.zeros((c, b, width), dtype=x.dtype, device=x.device)
        amps[:, live.to(x.device)] = values.to(x.dtype)
        firsts = torch.tensor([d.min_freq for d in draws], dtype=torch.float64).view(-1, 1)
        freqs = torch.where(live, firsts + torch.arange(width, dtype=torch.float64), 0.0)
        return K.smooth_color(x, amps.permute(1, 0, 2), freqs.to(x.device))

    def extra_repr(self) -> str:
        return f"cut={self.cut}, t_max={self.t_max}, max_freqs={self.max_freqs}, {super().extra_repr()}"


@dataclass(frozen=True)
class FilterDraw:
    """One image's random filter: σ, the N(0, 1) draws (k, k) and the delta's row and column;
    the kernel is δ + σ·N."""

    sigma: float
    noise: torch.Tensor
    delta_index: int

    @property
    def kernel(self) -> torch.Tensor:
        n = self.noise
        return K.identity_kernel(n.shape[-1], self.delta_index, n.dtype, n.device) + self.sigma * n


class RandomFilter(PrimePrimitive):
    """Random convolution: a per-image k×k kernel δ + σ·N(0, 1), σ ~ U(0, sigma_max) (§6.2).

    The kernel is shared by the channels, applied as correlation with zero "same" padding; NaN → 1;
    clamp. As in the reference the δ sits at [⌈k/2⌉, ⌈k/2⌉] — for k = 3 the bottom-right tap, so
    the σ = 0 filter shifts the image one pixel up-left. `centered=True` puts it at the identity
    tap [(k−1)//2, (k−1)//2] instead.
    """

    name = "prime_filter"

    def __init__(
        self, size: int = 3, sigma_max: float = 4.0, *, centered: bool = False, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.size = _check_int("RandomFilter size", size, 2)
        self.sigma_max = _check_float("RandomFilter sigma_max", sigma_max, 0.0)
        if not isinstance(centered, bool):
            raise InvalidParameterError(f"RandomFilter centered must be a bool, got {centered!r}")
        self.centered = centered

    @property
    def delta_index(self) -> int:
        """Row and column of the kernel's one."""
        return (self.size - 1) // 2 if self.centered else math.ceil(self.size / 2)

    def draw(
        self, gens: Sequence[torch.Generator], channels: int, height: int, width: int
    ) -> list[FilterDraw]:
        out = []
        for g, (u_sigma,) in zip(gens, uniforms(gens, 1), strict=True):
            sigma = u_sigma * self.sigma_max
            noise = torch.randn((self.size, self.size), generator=g, device=g.device)
            out.append(FilterDraw(sigma, noise, self.delta_index))
        return out

    def apply(self, x: torch.Tensor, draws: Sequence[FilterDraw]) -> torch.Tensor:
        """All kernels δ + σ·N at once (σ rounded to float32 as `σ * noise` does)."""
        noise = torch.stack([d.noise for d in draws])
        sigmas = torch.tensor([d.sigma for d in draws], dtype=noise.dtype, device=noise.device)
        delta = K.identity_kernel(self.size, draws[0].delta_index, noise.dtype, noise.device)
        return K.random_filter(x, delta + sigmas.view(-1, 1, 1) * noise)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, sigma_max={self.sigma_max}, centered={self.centered}, {super().extra_repr()}"
        )


# --------------------------------------------------------------------------- mixing


@dataclass(frozen=True)
class MixPlan:
    """Per-image mixing draws (host tensors): weights (B, width), m (B,), depths (B, width),
    primitive choices (B, width, max_depth) and the seeds of each chain step (B, width, max_depth)."""

    weights: torch.Tensor
    m: torch.Tensor
    depths: torch.Tensor
    choices: torch.Tensor
    seeds: torch.Tensor


class PRIME(SeededTransform):
    """PRIME mixing of random primitives (§6.2), on [0, 1] batches, per-image draws.

    For each of `width` chains and each image: depth ~ U{1..max_depth} (or `depth` if > 0), each
    step applies a primitive chosen uniformly for that image; w ~ Dirichlet(1, …, 1), m ~ Beta(1, 1);
    output = (1 − m)·x + m·Σ w_i chain_i (convex, so the same as mixing normalised tensors).
    `jsd=True` returns (clean, aug1, aug2) for the JSD consistency loss (default per preset:
    on for 'cifar', off for 'imagenet'). `primitives` overrides the preset's three primitives.
    """

    name = "prime"

    def __init__(
        self,
        preset: str = "cifar",
        *,
        primitives: Sequence[PrimePrimitive] | None = None,
        width: int = 3,
        depth: int = -1,
        max_depth: int = 3,
        jsd: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if preset not in PRESETS:
            raise InvalidParameterError(f"PRIME: unknown preset {preset!r}; choose one of {list(PRESETS)}")
        cfg = PRESETS[preset]
        self.preset = preset
        self.width = _check_int("PRIME width", width, 1)
        self.max_depth = _check_int("PRIME max_depth", max_depth, 1)
        if (
            isinstance(depth, bool)
            or not isinstance(depth, int)
            or not (depth == -1 or 1 <= depth <= max_depth)
        ):
            raise InvalidParameterError(f"PRIME depth must be -1 (random) or 1..{max_depth}, got {depth!r}")
        self.depth = depth
        if jsd is not None and not isinstance(jsd, bool):
            raise InvalidParameterError(f"PRIME jsd must be a bool or None, got {jsd!r}")
        self.jsd = cfg["jsd"] if jsd is None else jsd
        if primitives is None:
            primitives = [
                Diffeo(cfg["diffeo_cut_max"]),
                RandomSmoothColor(cfg["color_cut"], cfg["color_t"], max_freqs=cfg["color_max_freqs"]),
                RandomFilter(cfg["filter_size"], cfg["filter_sigma"]),
            ]
        primitives = list(primitives)
        if not primitives or not all(isinstance(p, PrimePrimitive) for p in primitives):
            raise InvalidParameterError(
                "PRIME primitives must be a non-empty list of PRIME primitive modules"
            )
        self.primitives = torch.nn.ModuleList(primitives)

    def plan(self, gens: Sequence[torch.Generator]) -> MixPlan:
        """Draw every image's mixing choices from its generator (two host transfers in all)."""
        w, d, p = self.width, self.max_depth, len(self.primitives)
        u = torch.tensor(uniforms(gens, 2 * w + 1 + w * d), dtype=torch.float64)
        seeds = torch.stack(
            [torch.randint(0, 2**62, (w * d,), generator=g, device=g.device) for g in gens]
        ).cpu()
        exp = -torch.log1p(-u[:, :w])
        weights = exp / exp.sum(1, keepdim=True).clamp_min(1e-300)
        m = u[:, w]
        if self.depth == -1:
            depths = 1 + (u[:, w + 1 : 2 * w + 1] * d).long().clamp(max=d - 1)
        else:
            depths = torch.full((len(gens), w), self.depth, dtype=torch.long)
        choices = (u[:, 2 * w + 1 :] * p).long().clamp(max=p - 1).view(-1, w, d)
        return MixPlan(weights, m, depths, choices, seeds.view(-1, w, d))

    def augment(self, x: torch.Tensor, gens: Sequence[torch.Generator]) -> torch.Tensor:
        """One PRIME draw per image: run the chains step by step, each primitive once per step."""
        b, c, h, w = x.shape
        plan = self.plan(gens)
        chains = x.unsqueeze(0).expand(self.width, b, c, h, w).reshape(self.width * b, c, h, w).clone()
        active = plan.depths.T.reshape(-1)  # (width·B,) chain-major, like `chains`
        for step in range(self.max_depth):
            choice = plan.choices[:, :, step].T.reshape(-1)
            seeds = plan.seeds[:, :, step].T.reshape(-1).tolist()
            for index, primitive in enumerate(self.primitives):
                rows = ((active > step) & (choice == index)).nonzero().flatten()
                if rows.numel() == 0:
                    continue
                step_gens = [generator_for(int(seeds[r]), x.device) for r in rows.tolist()]
                draws = primitive.draw(step_gens, c, h, w)
                rows_dev = rows.to(x.device)
                chains[rows_dev] = primitive.apply(chains[rows_dev], draws)
        return K.mix(x, chains.view(self.width, b, c, h, w), plan.weights.to(x.device), plan.m.to(x.device))

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> Any:
        if self.jsd:
            return x.clone(), self.augment(x, gens), self.augment(x, gens)
        return self.augment(x, gens)

    def extra_repr(self) -> str:
        return (
            f"preset={self.preset!r}, width={self.width}, depth={self.depth}, max_depth={self.max_depth}, "
            f"jsd={self.jsd}, {super().extra_repr()}"
        )

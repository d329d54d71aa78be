"""AugMix (Hendrycks, Mu et al., ICLR 2020) as a batched, seeded torch module.

Per image: weights w ~ Dirichlet(α·1_width) and m ~ Beta(α, α); `width` chains, each of
`depth` ops (U{1, 2, 3} when depth = −1) drawn uniformly with replacement from the 9 base ops
(13 with all_ops) at `severity`; output (1 − m)·x + m·Σ_j w_j·chain_j. Mixing runs on [0, 1]
tensors; the reference mixes after Normalize, which is the same image because the weights are
convex (Σ w_j = 1, (1 − m) + m = 1) and normalisation is affine. Chains run on 8-bit levels with
PIL's semantics (see `augforge.ops.frequency.augmix_ops`). Dirichlet and Beta come from
seedable Gamma draws (`augforge.ops.frequency.sampling`), since torch's Gamma takes no generator.

Presets (google-research/augmix): 'cifar' (`cifar.py`) severity 3; 'imagenet' (`imagenet.py`)
severity 1; both width 3, depth −1, α = 1. The reference trains with the JSD loss, i.e.
jsd=True here (returns (clean, aug1, aug2)); the default jsd=False returns one augmented batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from augforge.ops.frequency.augmix_ops import (
    IDENTITY,
    N_BASE_OPS,
    OPS,
    apply_ops_levels,
    sample_ops,
    to_levels,
)
from augforge.ops.frequency.sampling import TRIES, beta_from_draws, dirichlet_from_draws, gamma_draw_count
from augforge.transforms._common import (
    PRESETS,
    check_bool,
    check_choice,
    check_image_size,
    check_int,
    check_number,
    normals,
    uniforms,
)
from augforge.transforms.base import SeededTransform

AUGMIX_PRESETS: dict[str, dict[str, Any]] = {
    "cifar": {"severity": 3, "width": 3, "depth": -1, "alpha": 1.0},
    "imagenet": {"severity": 1, "width": 3, "depth": -1, "alpha": 1.0},
}
MAX_RANDOM_DEPTH = 3  # depth −1 draws U{1, 2, 3} (np.random.randint(1, 4))


@dataclass(frozen=True)
class AugMixPlan:
    """Every random choice of one AugMix draw for a batch (row i = sample i)."""

    weights: torch.Tensor  # (B, width) Dirichlet mixing weights
    mix: torch.Tensor  # (B,) Beta skip-connection weight m
    depths: torch.Tensor  # (B, width) chain lengths
    ops: torch.Tensor  # (B, width, max_depth) op indices into OPS, IDENTITY past a chain's end
    levels: torch.Tensor  # (B, width, max_depth) levels ℓ ~ U(0.1, severity)
    negate: torch.Tensor  # (B, width, max_depth) sign coins


def augmix_draw_count(width: int, depth: int) -> tuple[int, int]:
    """(uniforms, normals) per sample for one AugMix draw."""
    steps = depth if depth > 0 else MAX_RANDOM_DEPTH
    gu, gz = gamma_draw_count(width + 2)
    return gu + width + 3 * width * steps, gz


def augmix_plan(u: torch.Tensor, z: torch.Tensor, *, width: int, depth: int, alpha: float, n_ops: int,
                severity: float) -> AugMixPlan:
    """Build the plan from per-row uniforms u and normals z laid out as `augmix_draw_count` says."""
    b = u.shape[0]
    steps = depth if depth > 0 else MAX_RANDOM_DEPTH
    nd, nb = width * (TRIES + 1), 2 * (TRIES + 1)
    weights = dirichlet_from_draws(alpha, width, u[:, :nd], z[:, :width * TRIES])
    mix = beta_from_draws(alpha, alpha, u[:, nd:nd + nb], z[:, width * TRIES:(width + 2) * TRIES])
    at = nd + nb
    if depth > 0:
        depths = torch.full((b, width), depth, dtype=torch.long, device=u.device)
    else:
        depths = (u[:, at:at + width] * MAX_RANDOM_DEPTH).floor().long().clamp(max=MAX_RANDOM_DEPTH - 1) + 1
    at += width
    calls = u[:, at:at + 3 * width * steps].reshape(b, width, steps, 3)
    ops, levels, negate = sample_ops(calls, n_ops, severity)
    active = torch.arange(steps, device=u.device).view(1, 1, steps) < depths.unsqueeze(-1)
    ops = torch.where(active, ops, torch.full_like(ops, IDENTITY))
    return AugMixPlan(weights, mix, depths, ops, levels, negate)


class AugMix(SeededTransform):
    """AugMix on a float batch in [0, 1]; returns (clean, aug1, aug2) when jsd=True.

    preset: 'cifar' | 'imagenet' (defaults above); severity 1..10 (None: the preset's);
    width ≥ 1 chains; depth −1 (random 1–3) or ≥ 1; alpha > 0 for Dirichlet/Beta; all_ops adds
    color/contrast/brightness/sharpness; image_size scales translations (None: the image's size).
    """

    name = "augmix"

    def __init__(self, preset: str = "cifar", severity: int | None = None, width: int = 3, depth: int = -1,
                 alpha: float = 1.0, all_ops: bool = False, jsd: bool = False, image_size: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(seed)
        owner = type(self).__name__
        self.preset = check_choice(owner, "preset", preset, PRESETS)
        sev = AUGMIX_PRESETS[preset]["severity"] if severity is None else severity
        self.severity = check_int(owner, "severity", sev, 1, 10)
        self.width = check_int(owner, "width", width, 1)
        if not (isinstance(depth, int) and not isinstance(depth, bool) and depth == -1):
            check_int(owner, "depth (-1 = random 1..3)", depth, 1)
        self.depth = depth
        self.alpha = check_number(owner, "alpha", alpha, lo=0.0, lo_open=True)
        self.all_ops = check_bool(owner, "all_ops", all_ops)
        self.jsd = check_bool(owner, "jsd", jsd)
        self.image_size = check_image_size(owner, image_size)

    @property
    def op_names(self) -> tuple[str, ...]:
        return OPS if self.all_ops else OPS[:N_BASE_OPS]

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> Any:
        n_aug = 2 if self.jsd else 1
        nu, nz = augmix_draw_count(self.width, self.depth)
        u, z = uniforms(gens, n_aug * nu, x.device), normals(gens, n_aug * nz, x.device)
        plans = [
            augmix_plan(u[:, a * nu:(a + 1) * nu], z[:, a * nz:(a + 1) * nz], width=self.width,
                        depth=self.depth, alpha=self.alpha, n_ops=len(self.op_names), severity=self.severity)
            for a in range(n_aug)
        ]
        outs = self.augment_and_mix(x, plans)
        return (x.clone(), *outs) if self.jsd else outs[0]

    def augment_and_mix(self, x: torch.Tensor, plans: list[AugMixPlan]) -> list[torch.Tensor]:
        """Run all chains of all plans as one stacked batch, step by step, then mix per plan."""
        b = x.shape[0]
        w = self.width
        v = to_levels(x, torch.uint8).repeat(len(plans) * w, 1, 1, 1)  # row (a·width + j)·B + i

        def flat(t: torch.Tensor, s: int) -> torch.Tensor:  # (B, width) of step s -> chain-major rows
            return t[:, :, s].transpose(0, 1).reshape(-1)

        for s in range(plans[0].ops.shape[-1]):
            ops = torch.cat([flat(p.ops, s) for p in plans])
            levels = torch.cat([flat(p.levels, s) for p in plans])
            negate = torch.cat([flat(p.negate, s) for p in plans])
            v = apply_ops_levels(v, ops, levels, negate, self.image_size)
        levels = v.view(len(plans), w, b, -1).transpose(1, 2).to(x.dtype)  # (views, B, width, C·H·W)
        outs = []
        for a, plan in enumerate(plans):
            # (1 − m)·x + m·Σ_j w_j·chain_j/255 with the chain sum as one batched product
            m = plan.mix.to(x.dtype).view(b, 1, 1)
            coef = (plan.weights.to(x.dtype).view(b, 1, w) * m).div_(255)
            mixed = torch.bmm(coef, levels[a]).view_as(x)
            outs.append(mixed.addcmul_(1 - m.view(b, 1, 1, 1), x))
        return outs

    def extra_repr(self) -> str:
        return (f"preset={self.preset!r}, severity={self.severity}, width={self.width}, depth={self.depth}, "
                f"alpha={self.alpha}, all_ops={self.all_ops}, jsd={self.jsd}, {super().extra_repr()}")


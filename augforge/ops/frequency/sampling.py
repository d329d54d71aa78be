"""Seedable Gamma, Dirichlet and Beta draws from a fixed budget of uniforms and normals.

torch.distributions' Gamma calls torch._standard_gamma, which takes no generator, so it cannot
follow the per-sample seeding contract. Here a Gamma(α, 1) variate is made with the
Marsaglia–Tsang (2000) method from draws the caller takes from its own generator:
d = a − 1/3, c = 1/√(9d); for each candidate (z ~ N(0, 1), u ~ U(0, 1)) set v = (1 + c·z)³ and
accept the first with v > 0 and log u < z²/2 + d − d·v + d·log v; the variate is d·v. For α < 1
the variate for a = α + 1 is scaled by U^(1/α) (the standard boost). Candidates come in a fixed
number per variate (TRIES); acceptance is above 95 % for a ≥ 1, so all TRIES = 16 candidates are
rejected with probability below 1e-20, in which case d = a − 1/3 (near the median) is
used. A fixed budget keeps every sample's draw count independent of the others.

Dirichlet(α·1_k) = normalised k Gamma(α) variates; Beta(α, β) = G_α / (G_α + G_β).
"""

from __future__ import annotations

import math

import torch

TRIES = 16


def gamma_draw_count(n: int) -> tuple[int, int]:
    """(uniforms, normals) needed for n Gamma variates."""
    return n * (TRIES + 1), n * TRIES


def gamma_from_draws(alpha: float, uniforms: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Gamma(alpha, 1) variates from uniforms (..., TRIES + 1) and normals (..., TRIES), float64."""
    if not alpha > 0 or not math.isfinite(alpha):
        raise ValueError(f"gamma shape must be a positive finite number, got {alpha!r}")
    u = uniforms.to(torch.float64)
    z = normals.to(torch.float64)
    a = alpha if alpha >= 1 else alpha + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    v = (1.0 + c * z) ** 3
    log_v = torch.where(v > 0, v, torch.ones_like(v)).log()
    accept = (v > 0) & (u[..., :TRIES].log() < 0.5 * z * z + d - d * v + d * log_v)
    first = accept.long().argmax(dim=-1, keepdim=True)  # index of the first accepted candidate
    value = d * v.gather(-1, first).squeeze(-1)
    value = torch.where(accept.any(dim=-1), value, torch.full_like(value, d))
    if alpha < 1:
        value = value * (1.0 - u[..., TRIES]) ** (1.0 / alpha)  # 1 − u lies in (0, 1]
    return value


def dirichlet_from_draws(alpha: float, k: int, uniforms: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Dirichlet(alpha·1_k) rows from uniforms (..., k·(TRIES+1)) and normals (..., k·TRIES)."""
    lead = uniforms.shape[:-1]
    g = gamma_from_draws(alpha, uniforms.reshape(*lead, k, TRIES + 1), normals.reshape(*lead, k, TRIES))
    return g / g.sum(dim=-1, keepdim=True)


def beta_from_draws(alpha: float, beta: float, uniforms: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Beta(alpha, beta) from uniforms (..., 2·(TRIES+1)) and normals (..., 2·TRIES)."""
    lead = uniforms.shape[:-1]
    u = uniforms.reshape(*lead, 2, TRIES + 1)
    z = normals.reshape(*lead, 2, TRIES)
    ga = gamma_from_draws(alpha, u[..., 0, :], z[..., 0, :])
    gb = gamma_from_draws(beta, u[..., 1, :], z[..., 1, :])
    return ga / (ga + gb)

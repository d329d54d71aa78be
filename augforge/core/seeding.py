"""Stable per-sample seeds: a sample's randomness depends only on (root seed, key, op, severity).

That is what makes output independent of batch size, order, partitioning, worker count and
machine. Seeds are 63-bit integers from blake2b, so they fit every torch generator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

_SEED_BITS = 63


def derive_seed(root_seed: int, sample_key: str, op: str = "", severity: int | str = "") -> int:
    """Hash (root_seed, sample_key, op, severity) into a stable 63-bit seed."""
    if isinstance(root_seed, bool) or not isinstance(root_seed, int):
        raise TypeError(f"root_seed must be an int, got {type(root_seed).__name__}")
    text = f"{root_seed}\x1f{sample_key}\x1f{op}\x1f{severity}".encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << _SEED_BITS) - 1)


def generator_for(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh torch.Generator on `device` seeded with `seed`."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def sample_generators(
    root_seed: int,
    keys: Sequence[str],
    op: str,
    severity: int | str,
    device: torch.device | str = "cpu",
) -> list[torch.Generator]:
    """One generator per sample key, seeded by `derive_seed`."""
    return [generator_for(derive_seed(root_seed, k, op, severity), device) for k in keys]


def default_keys(n: int) -> list[str]:
    """Keys used when the caller gives none: the position in the batch."""
    return [str(i) for i in range(n)]

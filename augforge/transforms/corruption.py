"""`RandomCorruption`: training-time corruption of a GPU batch with registered image ops.

Per sample, with probability p, one op drawn uniformly from `ops` is applied at a severity drawn
uniformly from `severities`. Samples are grouped by (op, severity) so each op runs batched once
per group; each sample's op gets its own generator seeded from the sample's generator, so its
result does not depend on the batch around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from augforge.core.errors import InvalidParameterError
from augforge.core.op import Op
from augforge.core.registry import OpSpec, build_op, get_op, list_ops
from augforge.core.seeding import generator_for
from augforge.transforms.base import SeededTransform

SIZE_PRESETS = ((128, "imagenet"), (64, "tiny"), (0, "cifar"))


def default_ops() -> list[str]:
    """The registered ImageNet-C image corruptions (15 benchmark + 4 extra)."""
    return [s.name for s in list_ops("image") if "imagenet-c" in s.tags]


def preset_for_size(height: int, width: int) -> str:
    """The constant table for an image size: ≥ 128 px imagenet, ≥ 64 px tiny, else cifar."""
    side = min(height, width)
    return next(name for bound, name in SIZE_PRESETS if side >= bound)


def take_rows(x: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """x[rows] for a group of samples: a view when the rows are consecutive (the op reads it and
    returns a new tensor), else a small gather. Per group, not one batch-wide gather: groups are
    small (a few samples each at batch 128) and fresh batch-sized buffers cost page faults."""
    if rows[-1] - rows[0] == len(rows) - 1:
        return x[rows[0]:rows[-1] + 1]
    return x.index_select(0, torch.tensor(rows, device=x.device))


def write_rows(out: torch.Tensor, rows: list[int], values: torch.Tensor) -> None:
    """out[rows] = values (a slice copy when the rows are consecutive)."""
    if rows[-1] - rows[0] == len(rows) - 1:
        out[rows[0]:rows[-1] + 1] = values
    else:
        out.index_copy_(0, torch.tensor(rows, device=out.device), values)


@dataclass(frozen=True)
class CorruptionPlan:
    """Per-sample draws: whether the sample is corrupted, op index, severity, op generator seed."""

    applied: list[bool]
    ops: list[int]
    severities: list[int]
    seeds: list[int]


class RandomCorruption(SeededTransform):
    """Corrupt each sample with probability p by a random registered image op at a random severity.

    ops: registered image-op names (default: the 19 ImageNet-C ones, `default_ops()`); severities:
    the levels to draw from; preset: the op constant table, or None to choose by image size
    (min side ≥ 128 → 'imagenet', ≥ 64 → 'tiny', else 'cifar'; an op without that table uses its
    first one). Per sample i, gens[i] gives U, U, U (coin, op, severity) then one 62-bit seed for the
    op's generator, always in that order.
    """

    name = "random_corruption"

    def __init__(
        self,
        ops: Sequence[str] | None = None,
        severities: Sequence[int] = (1, 2, 3, 4, 5),
        p: float = 0.5,
        preset: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        names = default_ops() if ops is None else self._check_names(ops)
        self.specs: list[OpSpec] = [get_op(n) for n in names]
        for spec in self.specs:
            if spec.reads != ("image",) or spec.writes != ("image",):
                raise InvalidParameterError(f"RandomCorruption: {spec.name!r} is not an image-to-image op")
        self.severities = self._check_severities(severities)
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise InvalidParameterError(f"RandomCorruption: p must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        if preset is not None:
            missing = [s.name for s in self.specs if preset not in s.presets]
            if missing:
                raise InvalidParameterError(
                    f"RandomCorruption: preset {preset!r} is not defined for {missing}"
                )
        self.preset = preset
        self._ops: dict[tuple[str, int, str], Op] = {}

    @property
    def op_names(self) -> list[str]:
        return [s.name for s in self.specs]

    @staticmethod
    def _check_names(ops: Sequence[str]) -> list[str]:
        if isinstance(ops, str) or not all(isinstance(n, str) for n in ops):
            raise InvalidParameterError(f"RandomCorruption: ops must be a list of op names, got {ops!r}")
        names = list(ops)
        if not names:
            raise InvalidParameterError("RandomCorruption: ops must not be empty")
        if len(set(names)) != len(names):
            raise InvalidParameterError(f"RandomCorruption: duplicate op names in {names}")
        return names

    def _check_severities(self, severities: Sequence[int]) -> list[int]:
        levels = list(severities) if not isinstance(severities, int | str) else None
        if not levels or any(isinstance(s, bool) or not isinstance(s, int) for s in levels):
            raise InvalidParameterError(
                f"RandomCorruption: severities must be a non-empty list of ints, got {severities!r}"
            )
        if len(set(levels)) != len(levels):
            raise InvalidParameterError(f"RandomCorruption: duplicate severities in {levels}")
        for spec in self.specs:
            bad = [s for s in levels if s not in spec.severities]
            if bad:
                raise InvalidParameterError(
                    f"RandomCorruption: severities {bad} are not defined for {spec.name!r} "
                    f"(levels {list(spec.severities)})"
                )
        return levels

    def plan(self, gens: Sequence[torch.Generator]) -> CorruptionPlan:
        """Every sample's draws from its own generator (two host transfers for the batch)."""
        u = torch.stack([torch.rand(3, dtype=torch.float64, generator=g, device=g.device) for g in gens])
        s = torch.stack([torch.randint(0, 2**62, (1,), generator=g, device=g.device) for g in gens])
        rows, seeds = u.cpu().tolist(), s.cpu().flatten().tolist()
        n_ops, n_sev = len(self.specs), len(self.severities)
        return CorruptionPlan(
            applied=[r[0] < self.p for r in rows],
            ops=[min(math.floor(r[1] * n_ops), n_ops - 1) for r in rows],
            severities=[self.severities[min(math.floor(r[2] * n_sev), n_sev - 1)] for r in rows],
            seeds=[int(v) for v in seeds],
        )

    def op(self, name: str, severity: int, preset: str) -> Op:
        """The (cached) op instance for (name, severity, preset)."""
        key = (name, severity, preset)
        if key not in self._ops:
            self._ops[key] = build_op(name, severity, preset=preset)
        return self._ops[key]

    def resolve_preset(self, spec: OpSpec, height: int, width: int) -> str:
        """The preset used for `spec` on an image of this size."""
        if self.preset is not None:
            return self.preset
        preset = preset_for_size(height, width)
        return preset if preset in spec.presets else spec.presets[0]

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        plan = self.plan(gens)
        out = x.clone()
        groups: dict[tuple[int, int], list[int]] = {}
        for i, applied in enumerate(plan.applied):
            if applied:
                groups.setdefault((plan.ops[i], plan.severities[i]), []).append(i)
        h, w = x.shape[-2:]
        for (op_index, severity), rows in groups.items():
            spec = self.specs[op_index]
            op = self.op(spec.name, severity, self.resolve_preset(spec, h, w))
            op_gens = [generator_for(plan.seeds[i], x.device) for i in rows]
            write_rows(out, rows, op(take_rows(x, rows), op_gens))
        return out

    def extra_repr(self) -> str:
        return (
            f"ops={self.op_names}, severities={self.severities}, p={self.p}, preset={self.preset!r}, "
            f"{super().extra_repr()}"
        )

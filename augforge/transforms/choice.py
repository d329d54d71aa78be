"""`RandomOpChoice`: one of several (op, severities, preset, params) entries per sample.

The per-sample choice behind `augforge.stream(urls, ["fog@3", "snow@1-5", ...])` and recipes in
random mode: with probability p, entry j ~ U{entries} (or ∝ the entries' weights), then a
severity ~ U{entry j's levels}. It draws exactly like `RandomCorruption` (same name in the seed,
U coin, U entry, U severity, then one 62-bit seed for the op's generator), so a list of plain op
names gives the same output as `RandomCorruption(ops=names, p=p)` with the same seed, keys and epoch.

`draw(keys)` returns those per-sample draws without touching pixels and `apply_draws` runs one
(entry, severity) group of them: the offline writer of random-mode recipes
(`augforge.pipelines.shards`) uses both, so its dataset equals what `stream` yields at epoch 0.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from augforge.core.errors import AugforgeError, InvalidParameterError
from augforge.core.op import Op
from augforge.core.registry import OpSpec, build_op, get_op
from augforge.core.seeding import generator_for
from augforge.transforms.base import SeededTransform
from augforge.transforms.corruption import preset_for_size, take_rows, write_rows


@dataclass(frozen=True)
class OpEntryChoice:
    """One choosable op: its levels, preset (None: chosen by image size), parameter overrides and
    relative weight (the chance of choosing it is weight / sum of weights)."""

    name: str
    severities: tuple[int, ...]
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class Draw:
    """One sample's draw: entry index, op name, severity and the seed of the op's generator."""

    entry: int
    name: str
    severity: int
    seed: int


def parse_entry(item: str | Mapping[str, Any] | OpEntryChoice) -> OpEntryChoice:
    """'fog', 'fog@3', 'fog@1-5', 'fog@1,3' or {name, severities|severity, preset, params, weight}."""
    if isinstance(item, OpEntryChoice):
        return item
    if isinstance(item, str):
        from augforge.pipelines.recipe import parse_compact_op

        try:
            data: dict[str, Any] = parse_compact_op(item)
        except ValueError as exc:
            raise InvalidParameterError(f"RandomOpChoice: {exc}") from None
    elif isinstance(item, Mapping):
        data = dict(item)
    else:
        raise InvalidParameterError(f"RandomOpChoice: an op must be a string or a mapping, got {item!r}")
    unknown = sorted(set(data) - {"name", "severities", "severity", "preset", "params", "weight"})
    if unknown or not isinstance(data.get("name"), str):
        raise InvalidParameterError(f"RandomOpChoice: bad op entry {item!r} (keys: name, severities or "
                                    f"severity, preset, params, weight; unknown: {unknown})")
    if "severity" in data and "severities" in data:
        raise InvalidParameterError(f"RandomOpChoice: {data['name']}: give severity or severities, not both")
    spec = _spec(data["name"])
    levels = [data["severity"]] if "severity" in data else data.get("severities", list(spec.severities))
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidParameterError(f"RandomOpChoice: {spec.name}: params must be a mapping, got {params!r}")
    weight = data.get("weight")
    weight = 1.0 if weight is None else weight
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf:
        raise InvalidParameterError(f"RandomOpChoice: {spec.name}: weight must be a finite number > 0, "
                                    f"got {weight!r}")
    return OpEntryChoice(spec.name, tuple(levels), data.get("preset"), dict(params), float(weight))


def _spec(name: str) -> OpSpec:
    try:
        spec = get_op(name)
    except AugforgeError as exc:
        raise InvalidParameterError(f"RandomOpChoice: {exc}") from None
    if spec.reads != ("image",) or spec.writes != ("image",):
        raise InvalidParameterError(f"RandomOpChoice: {spec.name!r} is not an image-to-image op")
    return spec


class RandomOpChoice(SeededTransform):
    """Corrupt each sample with probability p by one entry (uniform, or ∝ weight) at one of its
    levels (uniform).

    entries: op names with optional levels ('fog', 'fog@3', 'snow@1-5') or mappings
    {name, severities, preset, params, weight}; without a preset the table follows the image size like
    `RandomCorruption` (≥ 128 px 'imagenet', ≥ 64 'tiny', else 'cifar'). Every (entry, level) is
    built once at construction, so a bad level, preset or parameter fails here, not mid-epoch.
    """

    name = "random_corruption"  # the draws of RandomCorruption, on purpose (see module docstring)

    def __init__(self, entries: Sequence[str | Mapping[str, Any] | OpEntryChoice], p: float = 1.0,
                 seed: int = 0) -> None:
        super().__init__(seed)
        if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence) or not entries:
            raise InvalidParameterError(f"RandomOpChoice: entries must be a non-empty list, got {entries!r}")
        self.entries = [parse_entry(e) for e in entries]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise InvalidParameterError(f"RandomOpChoice: p must be a number in [0, 1], got {p!r}")
        self.p = float(p)
        weights = [e.weight for e in self.entries]
        # Equal weights keep RandomCorruption's floor(u * n) pick; otherwise u falls in a cumulative bin.
        total = math.fsum(weights)
        self._bins = None if len(set(weights)) == 1 else [math.fsum(weights[:i + 1]) / total
                                                         for i in range(len(weights) - 1)]
        self._ops: dict[tuple[int, int, str], Op] = {}
        for index, entry in enumerate(self.entries):
            spec = get_op(entry.name)
            if not entry.severities or len(set(entry.severities)) != len(entry.severities):
                raise InvalidParameterError(f"RandomOpChoice: {entry.name}: severities must be a non-empty "
                                            f"list without repeats, got {list(entry.severities)}")
            presets = [entry.preset] if entry.preset is not None else list(spec.presets)
            for level in entry.severities:
                for preset in presets:
                    try:
                        self._ops[(index, level, preset)] = build_op(entry.name, level, preset=preset,
                                                                     **entry.params)
                    except AugforgeError as exc:
                        raise InvalidParameterError(f"RandomOpChoice: {exc}") from None

    def preset_for(self, index: int, height: int, width: int) -> str:
        """Entry `index`'s preset: its own, else by image size (its first table if it lacks that one)."""
        entry = self.entries[index]
        if entry.preset is not None:
            return entry.preset
        presets = get_op(entry.name).presets
        preset = preset_for_size(height, width)
        return preset if preset in presets else presets[0]

    def plan(self, gens: Sequence[torch.Generator]) -> list[tuple[int, int, int] | None]:
        """Per sample: None (left clean) or (entry index, severity, op generator seed)."""
        u = torch.stack([torch.rand(3, dtype=torch.float64, generator=g, device=g.device) for g in gens])
        s = torch.stack([torch.randint(0, 2**62, (1,), generator=g, device=g.device) for g in gens])
        n = len(self.entries)
        out: list[tuple[int, int, int] | None] = []
        for row, seed in zip(u.cpu().tolist(), s.cpu().flatten().tolist(), strict=True):
            if row[0] >= self.p:
                out.append(None)
                continue
            index = (min(math.floor(row[1] * n), n - 1) if self._bins is None
                     else bisect.bisect_right(self._bins, row[1]))
            levels = self.entries[index].severities
            out.append((index, levels[min(math.floor(row[2] * len(levels)), len(levels) - 1)], int(seed)))
        return out

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
        out = x.clone()
        groups: dict[tuple[int, int], list[int]] = {}
        seeds: dict[int, int] = {}
        for i, draw in enumerate(self.plan(gens)):
            if draw is not None:
                groups.setdefault((draw[0], draw[1]), []).append(i)
                seeds[i] = draw[2]
        h, w = x.shape[-2:]
        for (index, level), rows in groups.items():
            op = self._ops[(index, level, self.preset_for(index, h, w))]
            write_rows(out, rows, op(take_rows(x, rows), [generator_for(seeds[i], x.device) for i in rows]))
        return out

    def draw(self, keys: Sequence[str], device: torch.device | str = "cpu") -> list[Draw | None]:
        """Per key: the draw `forward(x, keys=keys)` makes at the current epoch (None: left clean).
        It depends only on (seed, key, epoch) and the device type of the generators."""
        if not keys:
            return []
        gens = self.generators(len(keys), torch.device(device), keys)
        return [None if d is None else Draw(d[0], self.entries[d[0]].name, d[1], d[2])
                for d in self.plan(gens)]

    def op_for(self, entry: int, severity: int, height: int, width: int) -> Op:
        """The built op that corrupts an image of this size for (entry, severity)."""
        return self._ops[(entry, severity, self.preset_for(entry, height, width))]

    def apply_draws(self, x: torch.Tensor, draws: Sequence[Draw]) -> torch.Tensor:
        """Corrupt a (B, C, H, W) float batch whose samples all drew the same (entry, severity),
        each from its own op generator: sample i equals its row of `forward` for the same draw."""
        groups = {(d.entry, d.severity) for d in draws}
        if len(groups) != 1 or len(draws) != x.shape[0]:
            raise InvalidParameterError(f"RandomOpChoice.apply_draws: need one draw per sample and one "
                                        f"(entry, severity) for all, got {sorted(groups)}")
        entry, severity = groups.pop()
        op = self.op_for(entry, severity, x.shape[-2], x.shape[-1])
        return op(x, [generator_for(d.seed, x.device) for d in draws])

    def extra_repr(self) -> str:
        weighted = self._bins is not None
        shown = [f"{e.name}@{','.join(map(str, e.severities))}" + (f"×{e.weight:g}" if weighted else "")
                 for e in self.entries]
        return f"entries={shown}, p={self.p}, {super().extra_repr()}"

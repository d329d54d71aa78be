"""`RandomOpChoice`: one of several (op, severities, preset, params) entries per sample.

The per-sample choice behind `augforge.stream(urls, ["fog@3", "snow@1-5", ...])` and recipes in
random mode: with probability p, entry j ~ U{entries}, then a severity ~ U{entry j's levels}.
It draws exactly like `RandomCorruption` (same name in the seed, U coin, U entry, U severity,
then one 62-bit seed for the op's generator), so a list of plain op names gives the same output
as `RandomCorruption(ops=names, p=p)` with the same seed, keys and epoch.
"""

from __future__ import annotations

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
from augforge.transforms.corruption import preset_for_size


@dataclass(frozen=True)
class OpEntryChoice:
    """One choosable op: its levels, preset (None: chosen by image size) and parameter overrides."""

    name: str
    severities: tuple[int, ...]
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def parse_entry(item: str | Mapping[str, Any] | OpEntryChoice) -> OpEntryChoice:
    """'fog', 'fog@3', 'fog@1-5', 'fog@1,3' or {name, severities|severity, preset, params}."""
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
    unknown = sorted(set(data) - {"name", "severities", "severity", "preset", "params"})
    if unknown or not isinstance(data.get("name"), str):
        raise InvalidParameterError(f"RandomOpChoice: bad op entry {item!r} (keys: name, severities or "
                                    f"severity, preset, params; unknown: {unknown})")
    if "severity" in data and "severities" in data:
        raise InvalidParameterError(f"RandomOpChoice: {data['name']}: give severity or severities, not both")
    spec = _spec(data["name"])
    levels = [data["severity"]] if "severity" in data else data.get("severities", list(spec.severities))
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidParameterError(f"RandomOpChoice: {spec.name}: params must be a mapping, got {params!r}")
    return OpEntryChoice(spec.name, tuple(levels), data.get("preset"), dict(params))


def _spec(name: str) -> OpSpec:
    try:
        spec = get_op(name)
    except AugforgeError as exc:
        raise InvalidParameterError(f"RandomOpChoice: {exc}") from None
    if spec.reads != ("image",) or spec.writes != ("image",):
        raise InvalidParameterError(f"RandomOpChoice: {spec.name!r} is not an image-to-image op")
    return spec


class RandomOpChoice(SeededTransform):
    """Corrupt each sample with probability p by one entry (uniform) at one of its levels (uniform).

    entries: op names with optional levels ('fog', 'fog@3', 'snow@1-5') or mappings
    {name, severities, preset, params}; without a preset the table follows the image size like
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
            index = min(math.floor(row[1] * n), n - 1)
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
            rows_t = torch.tensor(rows, device=x.device)
            out[rows_t] = op(x[rows_t], [generator_for(seeds[i], x.device) for i in rows])
        return out

    def extra_repr(self) -> str:
        shown = [f"{e.name}@{','.join(map(str, e.severities))}" for e in self.entries]
        return f"entries={shown}, p={self.p}, {super().extra_repr()}"

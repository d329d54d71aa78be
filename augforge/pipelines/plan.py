"""Planning: split the input into fixed index ranges and pair each with every (op, severity).

A plan depends only on the recipe and the number of inputs (never on image contents, worker
count or batch size), so the same recipe always maps to the same shards. One ShardTask is one
Dask task and one shard `<op>/<severity>/shard-NNNNNN.tar`; in mode random one task per range
draws an op per sample from every candidate and writes `random/shard-NNNNNN.tar`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from augforge.pipelines.recipe import Recipe

SHARD_NAME = "shard-{index:06d}.tar"
# Mode random: the one group (op, severity) its shards are accounted under, and their folder.
RANDOM_OP, RANDOM_SEVERITY = "random", 0


def canonical_json(obj: Any) -> str:
    """Compact JSON with sorted keys: the byte form fingerprints are taken of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShardTask:
    """One shard to build: input rows [start, stop) under one op at one severity."""

    op: str
    severity: int
    preset: str
    params: dict[str, Any]
    start: int
    stop: int
    shard: int
    path: str  # relative to the output directory, POSIX separators
    fingerprint: str  # sha256 of everything that decides this shard's bytes
    choices: list[dict[str, Any]] | None = None  # mode random: the candidate ops drawn from per sample
    p: float = 1.0  # mode random: the chance a sample is corrupted (else written clean)

    @property
    def group(self) -> str:
        """'op/severity', the unit the accounting is kept per."""
        return f"{self.op}/{self.severity}"


@dataclass(frozen=True)
class Plan:
    """Every shard of a recipe, in a fixed order (op, severity, range)."""

    tasks: list[ShardTask]
    n_inputs: int
    ranges: list[tuple[int, int]]
    fingerprint: str
    groups: list[tuple[str, int]] = field(default_factory=list)


def index_ranges(n_inputs: int, per_shard: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `per_shard` rows covering 0..n_inputs."""
    if per_shard < 1:
        raise ValueError(f"samples per shard must be >= 1, got {per_shard}")
    return [(lo, min(lo + per_shard, n_inputs)) for lo in range(0, n_inputs, per_shard)]


def input_identity(recipe: Recipe, path: str | None = None) -> dict[str, Any]:
    """What names the input in fingerprints and the manifest: reader, path, reader options.
    `path` replaces the recipe's path (execute passes it made absolute)."""
    shown = path if path is not None else recipe.input.path
    return {"reader": recipe.input.reader, "path": shown, "options": dict(recipe.input.options)}


def byte_parts(recipe: Recipe, input_id: dict[str, Any], n_inputs: int) -> dict[str, Any]:
    """The recipe parts that decide output bytes, shared by every shard (no ops)."""
    from augforge import __version__

    out = recipe.output
    parts: dict[str, Any] = {
        "augforge": __version__,
        "input": input_id,
        "n_inputs": n_inputs,
        "mode": recipe.mode,
        "seed": recipe.seed,
        "encoding": out.encoding,
        "samples_per_shard": out.samples_per_shard,
        "quantize": out.quantize,
        "device": recipe.execution.device.split(":")[0],
    }
    if out.encoding == "jpg":
        parts["jpeg_quality"] = out.jpeg_quality
    else:
        parts["png_compress_level"] = out.png_compress_level
    return parts


def make_plan(recipe: Recipe, n_inputs: int, input_path: str | None = None) -> Plan:
    """Plan every shard of `recipe` over `n_inputs` rows. `input_path` is how the input path is
    named in the fingerprint (default: as the recipe says). O(number of shards); reads no data."""
    if n_inputs < 0:
        raise ValueError(f"n_inputs must be >= 0, got {n_inputs}")
    base = byte_parts(recipe, input_identity(recipe, input_path), n_inputs)
    if recipe.mode == "random":
        return _random_plan(recipe, n_inputs, base)
    ops_part = [e.model_dump(include={"name", "severities", "preset", "params"}) for e in recipe.ops]
    plan_fp = sha256_text(canonical_json({**base, "ops": ops_part}))
    base_text = canonical_json(base)
    ranges = index_ranges(n_inputs, recipe.output.samples_per_shard)
    tasks: list[ShardTask] = []
    groups: list[tuple[str, int]] = []
    for entry in recipe.ops:
        for level in entry.levels:
            groups.append((entry.name, level))
            assert entry.preset is not None  # resolved by validation
            op_text = canonical_json([entry.name, level, entry.preset, entry.params])
            for index, (start, stop) in enumerate(ranges):
                fp = sha256_text(f"{base_text}|{op_text}|{start}:{stop}")
                tasks.append(
                    ShardTask(
                        op=entry.name,
                        severity=level,
                        preset=entry.preset,
                        params=dict(entry.params),
                        start=start,
                        stop=stop,
                        shard=index,
                        path=f"{entry.name}/{level}/{SHARD_NAME.format(index=index)}",
                        fingerprint=fp,
                    )
                )
    return Plan(tasks=tasks, n_inputs=n_inputs, ranges=ranges, fingerprint=plan_fp, groups=groups)


def random_choices(recipe: Recipe) -> list[dict[str, Any]]:
    """The candidate entries of a mode-random recipe, as `RandomOpChoice` and `stream` take them."""
    return [e.model_dump(include={"name", "severities", "preset", "params", "weight"}) for e in recipe.ops]


def _random_plan(recipe: Recipe, n_inputs: int, base: dict[str, Any]) -> Plan:
    """Mode random: one task per input range over all candidates, `random/shard-NNNNNN.tar`."""
    choices = random_choices(recipe)
    plan_fp = sha256_text(canonical_json({**base, "ops": choices, "p": recipe.p}))
    base_text, op_text = canonical_json(base), canonical_json([RANDOM_OP, choices, recipe.p])
    ranges = index_ranges(n_inputs, recipe.output.samples_per_shard)
    tasks = [
        ShardTask(op=RANDOM_OP, severity=RANDOM_SEVERITY, preset="", params={}, start=start, stop=stop,
                  shard=index, path=f"{RANDOM_OP}/{SHARD_NAME.format(index=index)}",
                  fingerprint=sha256_text(f"{base_text}|{op_text}|{start}:{stop}"), choices=choices,
                  p=recipe.p)
        for index, (start, stop) in enumerate(ranges)
    ]
    return Plan(tasks=tasks, n_inputs=n_inputs, ranges=ranges, fingerprint=plan_fp,
                groups=[(RANDOM_OP, RANDOM_SEVERITY)])

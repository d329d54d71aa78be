"""Recipe schema: the YAML file that says what to corrupt, how, and where to write it.

Every section forbids unknown keys, so a typo is an error that names the key, and ops are checked
against the registry (name, severities, preset, parameters) when the recipe loads, before any
work starts. Recipes are read with `yaml.safe_load` only: no YAML tag can construct objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from augforge.core.errors import AugforgeError, RecipeError
from augforge.core.registry import build_op, get_op
from augforge.pipelines.clusters import AdaptSpec, ClusterSpec, check_execution
from augforge.pipelines.export import format_problems

_COMPACT = re.compile(r"^\s*(?P<name>[A-Za-z0-9_\-]+)\s*(?:@\s*(?P<levels>[0-9,\-\s]+))?\s*$")
_DEVICE = re.compile(r"^(cpu|cuda(:[0-9]+)?)$")


class _Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class InputSpec(_Section):
    """Where the clean data comes from: a reader kind, its path and reader options."""

    reader: str = "folder"
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_reader_and_options(self) -> InputSpec:
        """Reader kind and option names checked when the recipe loads (not when a worker opens it)."""
        from augforge.datasets.decode import Preprocess
        from augforge.datasets.readers import COMMON_OPTIONS, FILE_OPTIONS, KIND_OPTIONS

        if self.reader not in KIND_OPTIONS:
            raise ValueError(f"unknown reader {self.reader!r}; choose from {', '.join(KIND_OPTIONS)}")
        allowed = COMMON_OPTIONS + KIND_OPTIONS[self.reader]
        unknown = sorted(set(self.options) - set(allowed))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for reader {self.reader!r}; allowed: "
                             f"{', '.join(allowed)}")
        if not isinstance(self.options.get("allow_pipe", False), bool):
            raise ValueError(f"options.allow_pipe must be true or false, got {self.options['allow_pipe']!r}")
        decoding = {k: v for k, v in self.options.items() if k in COMMON_OPTIONS + FILE_OPTIONS}
        try:
            Preprocess.from_options(**decoding)
        except AugforgeError as exc:
            raise ValueError(str(exc)) from None
        return self


def parse_compact_op(text: str) -> dict[str, Any]:
    """'name' (all levels), 'name@3', 'name@1-5' or 'name@1,3,5' -> an op mapping."""
    match = _COMPACT.match(text)
    if match is None:
        raise ValueError(f"cannot read op {text!r}: expected 'name', 'name@3', 'name@1-5' or 'name@1,3,5'")
    entry: dict[str, Any] = {"name": match["name"]}
    levels = match["levels"]
    if levels is None:
        return entry
    parsed: list[int] = []
    for part in levels.replace(" ", "").split(","):
        bounds = part.split("-")
        if not part or len(bounds) > 2 or not all(b.isdigit() for b in bounds):
            raise ValueError(f"cannot read severities {levels!r} of op {text!r}: use '3', '1-5' or '1,3,5'")
        lo, hi = int(bounds[0]), int(bounds[-1])
        if hi < lo:
            raise ValueError(f"severity range {part!r} of op {text!r} is empty (low > high)")
        parsed.extend(range(lo, hi + 1))
    entry["severities"] = parsed
    return entry


class OpEntry(_Section):
    """One op with its severity levels, preset and parameter overrides.

    After validation `severities` holds the resolved levels and `preset` the resolved preset,
    so the stored recipe says exactly what ran.
    """

    name: str
    severities: list[int] | None = None
    severity: int | None = None
    preset: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    weight: float | None = Field(None, gt=0, allow_inf_nan=False)  # mode random: relative chance of this op

    @model_validator(mode="before")
    @classmethod
    def _compact(cls, data: Any) -> Any:
        return parse_compact_op(data) if isinstance(data, str) else data

    @model_validator(mode="after")
    def _against_registry(self) -> OpEntry:
        if self.severities is not None and self.severity is not None:
            raise ValueError(f"{self.name}: give either 'severity' or 'severities', not both")
        try:
            spec = get_op(self.name)
        except AugforgeError as exc:  # UnknownOpError carries the closest-name hint
            raise ValueError(str(exc)) from None
        levels = [self.severity] if self.severity is not None else self.severities
        if levels is None:
            levels = list(spec.severities)
        if not levels:
            raise ValueError(f"{self.name}: 'severities' is empty")
        repeated = sorted({lv for lv in levels if levels.count(lv) > 1})
        if repeated:
            raise ValueError(f"{self.name}: severities {repeated} are listed more than once")
        bad = [lv for lv in levels if lv not in spec.severities]
        if bad:
            raise ValueError(
                f"{self.name}: severity {', '.join(map(str, bad))} is not defined; "
                f"choose from {list(spec.severities)}"
            )
        preset = self.preset or spec.presets[0]
        try:
            for level in levels:  # checks the preset and every parameter override per level
                build_op(self.name, level, preset=preset, **self.params)
        except AugforgeError as exc:
            raise ValueError(str(exc)) from None
        self.severities = list(levels)
        self.severity = None
        self.preset = preset
        return self

    @property
    def levels(self) -> list[int]:
        """The resolved severity levels."""
        assert self.severities is not None  # set by validation
        return self.severities


class OutputSpec(_Section):
    """Where and how shards are written."""

    dir: str | None = None
    encoding: Literal["png", "jpg"] = "png"
    jpeg_quality: int = Field(85, ge=1, le=100)
    png_compress_level: int = Field(3, ge=0, le=9)  # zlib level: 3 is ~2x faster than PIL's 6, ~5% larger
    samples_per_shard: int = Field(1000, ge=1)
    quantize: Literal["truncate", "round"] = "truncate"
    # Released layouts exported from the shards after a run (augforge.pipelines.export).
    formats: list[Literal["imagenet-c", "cifar10-c"]] = Field(default_factory=list)

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ExecutionSpec(_Section):
    """How the work runs: local worker processes or a running Dask scheduler. Only the device type
    can change output bytes, so it is the only part in the shard fingerprints."""

    workers: int | None = Field(None, ge=1)  # local worker processes; None = one per CPU
    threads_per_worker: int = Field(1, ge=1)  # torch threads per worker (each runs one task at a time)
    scheduler: str | None = None  # 'tcp://host:8786' or a scheduler JSON file; None = LocalCluster
    batch_size: int = Field(32, ge=1)  # same-size pictures corrupted together
    device: str = "cpu"  # 'cuda' / 'cuda:N' runs the ops on a GPU (its bytes may differ from CPU's)
    cluster: ClusterSpec | None = None  # a cluster to start: batch jobs or local-cuda (pipelines/clusters.py)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")
        return value

    @model_validator(mode="after")
    def _where_to_run(self) -> ExecutionSpec:
        check_execution(self.device, self.scheduler, self.cluster)
        return self


class Recipe(_Section):
    """A whole recipe: input, ops, mode, seed, output and execution."""

    name: str | None = None
    description: str | None = None
    input: InputSpec = Field(default_factory=InputSpec)
    ops: list[OpEntry] = Field(min_length=1)
    mode: str = "grid"
    seed: int = 0
    p: float = Field(1.0, ge=0.0, le=1.0)  # mode random: chance a sample is corrupted (else written clean)
    output: OutputSpec = Field(default_factory=OutputSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("grid", "random"):
            raise ValueError(f"mode must be 'grid' (every op x severity) or 'random' (one drawn op per "
                             f"sample), got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_outputs(self) -> Recipe:
        if self.mode == "random":
            return self._random_checks()
        weighted = [e.name for e in self.ops if e.weight is not None]
        if weighted:
            raise ValueError(f"ops: weight ({', '.join(weighted)}) is for mode 'random'; grid mode runs "
                             "every op x severity")
        if self.p != 1.0:
            raise ValueError(f"p: {self.p} is for mode 'random' (chance a sample is corrupted); grid mode "
                             "corrupts every sample under every op x severity")
        seen: set[tuple[str, int]] = set()
        for entry in self.ops:
            for level in entry.levels:
                if (entry.name, level) in seen:
                    raise ValueError(
                        f"ops: {entry.name} severity {level} appears twice; each (op, severity) "
                        f"writes one folder <out>/{entry.name}/{level}/"
                    )
                seen.add((entry.name, level))
        levels = {e.name: e.levels for e in self.ops}
        problems = [p for fmt in self.output.formats for p in format_problems(
            fmt, encoding=self.output.encoding, quantize=self.output.quantize, levels=levels)]
        if problems:
            raise ValueError("output.formats: " + "; ".join(problems))
        return self

    def _random_checks(self) -> Recipe:
        """Mode random: the ops are the candidates of one draw per sample (an op may be listed more
        than once, e.g. with other params, as `stream` allows), written to <out>/random/."""
        if self.output.formats:
            raise ValueError(f"output.formats {self.output.formats}: released benchmark layouts need every "
                             "op x severity of every input (mode 'grid'); mode 'random' writes one draw per "
                             "sample to <out>/random/")
        return self


# Model class per section name, to list the allowed keys when an unknown key is found.
_SECTIONS: dict[str, type[BaseModel]] = {
    "input": InputSpec,
    "ops": OpEntry,
    "output": OutputSpec,
    "execution": ExecutionSpec,
    "cluster": ClusterSpec,
    "adapt": AdaptSpec,
}


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "recipe"


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        parents = [p for p in loc[:-1] if isinstance(p, str)]
        model = _SECTIONS.get(parents[-1], Recipe) if parents else Recipe
        allowed = ", ".join(model.model_fields)
        where = _where(loc[:-1])
        return f"{where}: unknown key {loc[-1]!r} (allowed: {allowed})"
    message = str(err["msg"])
    message = message.removeprefix("Value error, ")
    return f"{_where(loc)}: {message}" if loc else message


def recipe_error(exc: ValidationError, source: str) -> RecipeError:
    """One RecipeError listing every bad field as 'location: reason'."""
    lines = [f"  - {_describe(e)}" for e in exc.errors()]
    return RecipeError(f"invalid recipe {source} ({len(lines)} problem(s)):\n" + "\n".join(lines))


def validate_recipe(data: Any, source: str = "<mapping>") -> Recipe:
    """Validate a parsed mapping into a Recipe or raise RecipeError."""
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise RecipeError(f"invalid recipe {source}: the top level must be a mapping, got {kind}")
    try:
        return Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise recipe_error(exc, source) from None


def load_recipe(source: str | Path | Mapping[str, Any]) -> Recipe:
    """Load a recipe from a YAML file path, YAML text, or an already parsed mapping."""
    if isinstance(source, Mapping):
        return validate_recipe(source)
    text: str
    if isinstance(source, Path) or (
        "\n" not in source and (source.endswith((".yaml", ".yml")) or Path(source).is_file())
    ):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
        label = str(path)
    else:
        text, label = source, "<text>"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"invalid recipe {label}: not valid (safe) YAML: {exc}") from None
    return validate_recipe(data, label)


def apply_overrides(
    recipe: Recipe,
    *,
    input_path: str | Path | None = None,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    seed: int | None = None,
    formats: list[str] | None = None,
) -> Recipe:
    """A copy of `recipe` with the command-line overrides applied (and validated again);
    `formats` replaces the recipe's output.formats."""
    data = recipe.model_dump()
    if formats is not None:
        data["output"]["formats"] = list(formats)
    if input_path is not None:
        data["input"]["path"] = str(input_path)
    if out is not None:
        data["output"]["dir"] = str(out)
    if workers is not None:
        data["execution"]["workers"] = workers
    if scheduler is not None:
        data["execution"]["scheduler"] = scheduler
        data["execution"]["cluster"] = None  # a running cluster replaces one the recipe would start
    if seed is not None:
        data["seed"] = seed
    return validate_recipe(data, "<overrides>")

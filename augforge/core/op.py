"""The one base class of registered operators: severity/preset/parameter checks and RNG wiring.

An op class declares `PARAMS` (names) and `TABLES` ({preset: one row per severity}) and
implements `apply(x, gens)`, a batched kernel on a validated float tensor. `gens` holds one
`torch.Generator` per sample (None for deterministic ops); sample i may only draw from gens[i],
which is what makes outputs independent of batching. The same property lets the base class feed
a large CPU batch to `apply` in blocks of samples (`CPU_BLOCK`): each block's temporaries stay
in the CPU cache instead of being paged in afresh, which is several times faster for chains of
elementwise passes and changes no output.

Ops may also implement `apply_uint8` (the catalog lists which: "8-bit path"): then a uint8
(B, C, H, W) batch of levels 0..255 is accepted and returned as uint8, equal to
`to_uint8(op(to_float(x)), mode="truncate")` (the reference savers' conversion) without the float
round trip; an op whose 8-bit result can differ from that in rare rounding ties says so in its
notes. Other ops reject uint8.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from augforge.core.errors import InvalidInputError, InvalidParameterError, InvalidSeverityError
from augforge.core.memory import empty_like
from augforge.core.registry import OpSpec
from augforge.core.seeding import default_keys, generator_for, sample_generators
from augforge.core.validation import MIN_SIDE, check_image_batch

Rng = int | torch.Generator | Sequence[torch.Generator] | None


class Op:
    """Base class: validated construction, input checks, per-sample generators, dtype round trip."""

    spec: ClassVar[OpSpec]
    name: ClassVar[str]
    PARAMS: ClassVar[tuple[str, ...]] = ()
    TABLES: ClassVar[dict[str, list[tuple[Any, ...]]]] = {}
    #: Input elements per call of `apply` on the CPU (at least one sample); 0 = the whole batch.
    CPU_BLOCK: ClassVar[int] = 1 << 19

    def __init__(self, severity: int = 3, *, preset: str | None = None, **params: Any) -> None:
        spec = self.spec
        if isinstance(severity, bool) or not isinstance(severity, int):
            raise InvalidSeverityError(
                f"{spec.name}: severity must be an int in {list(spec.severities)}, got {severity!r}"
            )
        if severity not in spec.severities:
            raise InvalidSeverityError(
                f"{spec.name}: severity {severity} is not defined; choose one of {list(spec.severities)}"
            )
        preset = preset or spec.presets[0]
        if preset not in spec.presets:
            raise InvalidParameterError(
                f"{spec.name}: unknown preset {preset!r}; choose one of {list(spec.presets)}"
            )
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            allowed = ", ".join(self.PARAMS) or "none"
            raise InvalidParameterError(f"{spec.name}: unknown parameter(s) {unknown}; allowed: {allowed}")
        merged = self.severity_params(preset, severity)
        merged.update(params)
        self.severity = severity
        self.preset = preset
        self.params: dict[str, Any] = self.check_params(merged)

    @classmethod
    def severity_params(cls, preset: str, severity: int) -> dict[str, Any]:
        """The reference constants of `preset` at `severity`, by parameter name."""
        if not cls.TABLES:
            return {}
        row = cls.TABLES[preset][cls.spec.severities.index(severity)]
        return dict(zip(cls.PARAMS, row, strict=True))

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate (possibly overridden) parameters; subclasses raise InvalidParameterError."""
        return params

    def apply(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        """The batched kernel: (B, C, H, W) float32/64 in [0, 1] -> same shape in [0, 1]."""
        raise NotImplementedError

    def apply_uint8(self, x: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        """Optional 8-bit kernel: uint8 (B, C, H, W) -> uint8, equal to the float path on x / 255
        followed by the reference savers' truncation (see the module docstring)."""
        raise NotImplementedError

    @classmethod
    def takes_uint8(cls) -> bool:
        """Whether the op accepts uint8 batches (it implements `apply_uint8`)."""
        return cls.apply_uint8 is not Op.apply_uint8

    def generators(self, rng: Rng, batch: int, device: torch.device,
                   keys: Sequence[str] | None) -> list[torch.Generator]:
        """Resolve `rng` (seed, generator or per-sample generators) into one generator per sample."""
        if rng is None:
            raise InvalidParameterError(
                f"{self.spec.name} is random: pass rng=<int seed>, a torch.Generator, "
                "or one generator per sample"
            )
        if isinstance(rng, bool):
            raise InvalidParameterError(f"{self.spec.name}: rng must be an int seed, not a bool")
        if isinstance(rng, int):
            if keys is not None and len(keys) != batch:
                raise InvalidInputError(f"{self.spec.name}: got {len(keys)} keys for a batch of {batch}")
            return sample_generators(rng, keys or default_keys(batch), self.spec.name, self.severity, device)
        if isinstance(rng, torch.Generator):
            seeds = torch.randint(0, 2**62, (batch,), generator=rng, device=rng.device).tolist()
            return [generator_for(int(s), device) for s in seeds]
        gens = list(rng)
        if len(gens) != batch or not all(isinstance(g, torch.Generator) for g in gens):
            raise InvalidParameterError(
                f"{self.spec.name}: expected {batch} torch.Generator objects, one per sample"
            )
        return gens

    def __call__(self, x: torch.Tensor, rng: Rng = None, *,
                 keys: Sequence[str] | None = None) -> torch.Tensor:
        """Corrupt a batch. `rng`: an int seed (per-sample seeds are derived from it and `keys`),
        a torch.Generator, or a list of per-sample generators. Deterministic ops ignore it.
        uint8 batches are accepted by ops that implement `apply_uint8` (see `takes_uint8`)."""
        if isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and self.takes_uint8():
            _check_uint8_batch(x, self.spec.name)
            gens = None if self.spec.deterministic else self.generators(rng, x.shape[0], x.device, keys)
            return self.apply_uint8(x, gens)
        check_image_batch(x, name=self.spec.name)
        b = x.shape[0]
        gens = None if self.spec.deterministic else self.generators(rng, b, x.device, keys)
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        step = self.block_samples(work)
        if step >= b:
            return self.apply(work, gens).clamp_(0.0, 1.0).to(x.dtype)
        out = empty_like(work)
        for i in range(0, b, step):
            part = self.apply(work[i:i + step], None if gens is None else gens[i:i + step])
            torch.clamp(part, 0.0, 1.0, out=out[i:i + step])
        return out.to(x.dtype)

    def block_samples(self, x: torch.Tensor) -> int:
        """Samples per call of `apply`: about CPU_BLOCK elements on the CPU (rounded up to a
        multiple of the thread count, which per-sample work is split over), all elsewhere."""
        if x.device.type != "cpu" or not self.CPU_BLOCK:
            return x.shape[0]
        threads = torch.get_num_threads()
        return -(-max(1, self.CPU_BLOCK // x[0].numel()) // threads) * threads

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(severity={self.severity}, preset={self.preset!r}, {args})"


def _check_uint8_batch(x: torch.Tensor, name: str) -> None:
    """The shape checks of check_image_batch for a uint8 batch (every uint8 value is a level)."""
    if x.ndim != 4:
        raise InvalidInputError(f"{name}: expected shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    if b == 0:
        raise InvalidInputError(f"{name}: empty batch")
    if c not in (1, 3):
        raise InvalidInputError(f"{name}: expected 1 or 3 channels, got C={c} (shape {tuple(x.shape)})")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InvalidInputError(f"{name}: images must be at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")

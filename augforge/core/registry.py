"""The operator registry: an explicit decorator records each op's metadata; families load lazily.

`register_op` is applied to every operator class. `get_op` imports families only until the
name is found, image first, so using an image op never imports open3d or diffusers.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from augforge.core.errors import UnknownOpError

if TYPE_CHECKING:
    from augforge.core.op import Op

# Family name -> module that registers its ops on import, in the order lookups try them.
FAMILIES: dict[str, str] = {
    "image": "augforge.ops.image",
}

_REGISTRY: dict[str, OpSpec] = {}
_LOADED: set[str] = set()

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class OpSpec:
    """What the registry knows about one operator."""

    name: str
    family: str
    cls: type[Op]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    severities: tuple[int, ...]
    reference: str
    deterministic: bool
    presets: tuple[str, ...]
    param_names: tuple[str, ...]
    summary: str = ""
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def params(self, severity: int, preset: str | None = None) -> dict[str, Any]:
        """The constants this op uses at `severity` under `preset` (default: first preset)."""
        return self.cls.severity_params(preset or self.presets[0], severity)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view used by `augforge ops --json` and the catalog."""
        return {
            "name": self.name,
            "family": self.family,
            "reads": list(self.reads),
            "writes": list(self.writes),
            "severities": list(self.severities),
            "presets": list(self.presets),
            "params": list(self.param_names),
            "deterministic": self.deterministic,
            "reference": self.reference,
            "summary": self.summary,
            "notes": self.notes,
            "tags": list(self.tags),
        }


def register_op(
    name: str,
    *,
    family: str,
    reference: str,
    deterministic: bool,
    severities: Iterable[int] = (1, 2, 3, 4, 5),
    reads: Iterable[str] = ("image",),
    writes: Iterable[str] = ("image",),
    notes: str = "",
    tags: Iterable[str] = (),
) -> Callable[[T], T]:
    """Class decorator that registers an operator under `name`."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"operator {name!r} is already registered by {_REGISTRY[name].cls}")
        tables: dict[str, Any] = getattr(cls, "TABLES", {})
        param_names: tuple[str, ...] = tuple(getattr(cls, "PARAMS", ()))
        levels = tuple(severities)
        for preset, rows in tables.items():
            if len(rows) != len(levels):
                raise ValueError(f"{name}: preset {preset!r} has {len(rows)} rows for {len(levels)} levels")
        doc = (cls.__doc__ or "").strip().splitlines()
        spec = OpSpec(
            name=name,
            family=family,
            cls=cls,  # type: ignore[arg-type]
            reads=tuple(reads),
            writes=tuple(writes),
            severities=levels,
            reference=reference,
            deterministic=deterministic,
            presets=tuple(tables) or ("default",),
            param_names=param_names,
            summary=doc[0] if doc else "",
            notes=notes,
            tags=tuple(tags),
        )
        cls.spec = spec  # type: ignore[attr-defined]
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = spec
        return cls

    return decorate


def load_family(family: str) -> None:
    """Import one family's module so its ops register (idempotent)."""
    if family not in FAMILIES:
        raise UnknownOpError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if family not in _LOADED:
        importlib.import_module(FAMILIES[family])
        _LOADED.add(family)


def load_all() -> None:
    """Import every family."""
    for family in FAMILIES:
        load_family(family)


def get_op(name: str) -> OpSpec:
    """The spec of a registered op; an unknown name raises with the closest known names."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for family in FAMILIES:
        load_family(family)
        if name in _REGISTRY:
            return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `augforge ops` for the list"
    raise UnknownOpError(f"unknown operator {name!r}{hint}")


def list_ops(family: str | None = None) -> list[OpSpec]:
    """Registered ops, sorted by family then name (loads the families it needs)."""
    if family is None:
        load_all()
    else:
        load_family(family)
    specs = [s for s in _REGISTRY.values() if family is None or s.family == family]
    order = list(FAMILIES)
    return sorted(specs, key=lambda s: (order.index(s.family) if s.family in order else 99, s.name))


def build_op(name: str, severity: int = 3, *, preset: str | None = None, **params: Any) -> Op:
    """Instantiate op `name` at `severity` (validated) with optional parameter overrides."""
    spec = get_op(name)
    return spec.cls(severity, preset=preset, **params)

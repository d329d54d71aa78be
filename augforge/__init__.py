"""augforge: faithful, batched, seeded corruption operators, Dask pipelines and WebDataset shards.

The small public API:

- `corrupt(x, "fog", severity=3, seed=0)` corrupts a (B, C, H, W) float batch in [0, 1];
- `list_ops()`, `get_op(name)`, `build_op(name, severity)` reach the operator registry;
- `derive_seed`, `to_float`, `to_uint8` are the helpers the contract is built on;
- `stream(urls, transform_or_ops, seed=..., batch_size=...)` reads clean WebDataset shards and
  corrupts them on the fly for training (imports webdataset on first use only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from augforge.core import (
    AugforgeError,
    InvalidInputError,
    Op,
    OpSpec,
    build_op,
    derive_seed,
    get_op,
    list_ops,
    to_float,
    to_uint8,
)

if TYPE_CHECKING:
    from augforge.pipelines.stream import StreamDataset

__version__ = "0.1.0"


def corrupt(
    x: torch.Tensor,
    op: str,
    severity: int = 3,
    *,
    seed: int | torch.Generator | Sequence[torch.Generator] | None = 0,
    keys: Sequence[str] | None = None,
    preset: str | None = None,
    **params: Any,
) -> torch.Tensor:
    """Apply registered op `op` at `severity` to a float image batch (or one CHW image).

    `seed` and the per-sample `keys` (default: batch positions) fix every random draw, so the
    same (seed, key) gives the same output whatever the batch around it.
    """
    single = isinstance(x, torch.Tensor) and x.ndim == 3
    batch = x.unsqueeze(0) if single else x
    if keys is not None and isinstance(keys, str):
        raise InvalidInputError("keys must be a sequence of strings, one per sample, not a string")
    out = build_op(op, severity, preset=preset, **params)(batch, seed, keys=keys)
    return out[0] if single else out


def stream(urls: Any, ops_or_recipe: Any = None, **options: Any) -> StreamDataset:
    """`augforge.pipelines.stream.stream`: clean shards -> decoded, corrupted, batched samples.

    A thin wrapper so that `import augforge` does not import webdataset; see that function.
    """
    from augforge.pipelines.stream import stream as _stream

    return _stream(urls, ops_or_recipe, **options)


__all__ = [
    "AugforgeError",
    "Op",
    "OpSpec",
    "__version__",
    "build_op",
    "corrupt",
    "derive_seed",
    "get_op",
    "list_ops",
    "stream",
    "to_float",
    "to_uint8",
]

"""The reader contract pipelines rely on.

A reader gives random access to an indexed, deterministically ordered set of samples. Workers
build their own reader from `(kind, path, options)` with `open_reader`, read only their index
range, and turn every failure to read a record into `BadInputError` (quarantined, never fatal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass
class Sample:
    """One decoded input record."""

    key: str  # stable, unique, tar-safe (no dots, no leading slash); seeds derive from it
    image: np.ndarray  # uint8, (H, W, C), C in (1, 3)
    label: int | None = None
    source: str = ""  # where it came from (relative path, tar member, array index)
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Reader(Protocol):
    """Random access to samples by index, in a fixed order."""

    kind: str

    def __len__(self) -> int: ...

    def key(self, index: int) -> str:
        """The sample key at `index`, without decoding the record."""
        ...

    def read(self, index: int) -> Sample:
        """Decode record `index`; raise BadInputError with a reason if it cannot be read."""
        ...

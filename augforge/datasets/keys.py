"""Sample keys: stable, tar-safe names derived from where a record came from.

Seeds derive from keys, so the same file must get the same key on every machine: names are
Unicode-normalised (NFC, macOS stores NFD), every character outside `[A-Za-z0-9_/-]` becomes '_'
(no dots: WebDataset splits member names at the first dot), and collisions are resolved in the
reader's sorted order, so the result never depends on the file system's listing order.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

_UNSAFE = re.compile(r"[^A-Za-z0-9_/-]")
_UNSAFE_SUFFIX = re.compile(r"[^A-Za-z0-9_-]")
_SLASHES = re.compile(r"/+")


def sanitize_key(text: str) -> str:
    """A tar-safe key for `text`: NFC, unsafe characters -> '_', no empty or leading/trailing '/'."""
    key = _UNSAFE.sub("_", unicodedata.normalize("NFC", text))
    key = _SLASHES.sub("/", key).strip("/")
    return key or "_"


def unique_keys(bases: Sequence[str], suffixes: Sequence[str]) -> list[str]:
    """Make `bases` unique, in order: a colliding key gets '_' + its suffix (e.g. the extension).

    Keys that are unique already never change. When the suffix does not separate two records
    (or the result collides with another key), '_2', '_3', ... is appended, first come first
    served, so the outcome depends only on the order of `bases`.
    """
    if len(bases) != len(suffixes):
        raise ValueError("bases and suffixes must have the same length")
    counts = Counter(bases)
    taken = {base for base, n in counts.items() if n == 1}
    keys: list[str] = []
    for base, suffix in zip(bases, suffixes, strict=True):
        if counts[base] == 1:
            keys.append(base)
            continue
        clean = _UNSAFE_SUFFIX.sub("_", unicodedata.normalize("NFC", suffix))
        stem = f"{base}_{clean}" if clean else base
        key, n = stem, 2
        while key in taken:
            key, n = f"{stem}_{n}", n + 1
        taken.add(key)
        keys.append(key)
    return keys

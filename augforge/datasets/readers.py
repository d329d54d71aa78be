"""`open_reader(kind, path, **options)`: the one way recipes and workers build a reader.

Options common to every kind: `mode` ('RGB' or 'L'), `resize` (shorter side, or [h, w]) and
`center_crop` (side, or [h, w]), with torchvision `Resize` / `CenterCrop` semantics on PIL.
File-based kinds also take `max_pixels` (decompression-bomb limit). Kind-specific options:

| kind       | path                                        | options                          |
|------------|---------------------------------------------|----------------------------------|
| folder     | folder of pictures (class sub-folders)      | layout, classes, extensions      |
| webdataset | .tar shard, brace pattern, folder of shards | allow_pipe (`pipe:CMD` sources)  |
| numpy      | (N, H, W[, C]) .npy: uint8, int, bool, float | labels (path of an (N,) .npy)    |
| cifar10    | the 'cifar-10-batches-py' folder             | split ('test' or 'train')        |

Paths may use the `augforge:samples` / `augforge:recipes/<name>` scheme.
"""

from __future__ import annotations

import os
from typing import Any

from augforge.core.errors import AugforgeError
from augforge.datasets.arrays import CIFAR10Reader, NumpyArrayReader
from augforge.datasets.base import Reader
from augforge.datasets.decode import Preprocess
from augforge.datasets.folder import ImageFolderReader
from augforge.datasets.tar import WebDatasetReader
from augforge.resources import resolve_path

COMMON_OPTIONS = ("mode", "resize", "center_crop")
FILE_OPTIONS = ("max_pixels",)
KIND_OPTIONS: dict[str, tuple[str, ...]] = {
    "folder": ("layout", "classes", "extensions", *FILE_OPTIONS),
    "webdataset": ("allow_pipe", *FILE_OPTIONS),
    "numpy": ("labels",),
    "cifar10": ("split",),
}
READER_KINDS = tuple(KIND_OPTIONS)


def _resolve(path: Any) -> Any:
    if isinstance(path, (list, tuple)):
        return [_resolve(p) for p in path]
    return resolve_path(path)


def open_reader(kind: str, path: str | os.PathLike[str] | list[Any], **options: Any) -> Reader:
    """Build the reader of `kind` over `path`; unknown kinds and options raise AugforgeError."""
    if kind not in KIND_OPTIONS:
        raise AugforgeError(f"unknown reader kind {kind!r}; allowed: {', '.join(READER_KINDS)}")
    allowed = COMMON_OPTIONS + KIND_OPTIONS[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise AugforgeError(f"unknown option(s) {unknown} for reader {kind!r}; allowed: {', '.join(allowed)}")
    if path is None:
        raise AugforgeError(f"reader {kind!r} needs a path")
    shared = {name: options.pop(name) for name in COMMON_OPTIONS + FILE_OPTIONS if name in options}
    preprocess = Preprocess.from_options(**shared)
    path = _resolve(path)
    if kind == "folder":
        return ImageFolderReader(path, preprocess=preprocess, **options)
    if kind == "webdataset":
        return WebDatasetReader(path, preprocess=preprocess, **options)
    if kind == "numpy":
        labels = options.get("labels")
        labels = None if labels is None else _resolve(labels)
        return NumpyArrayReader(path, labels=labels, preprocess=preprocess)
    return CIFAR10Reader(path, preprocess=preprocess, **options)

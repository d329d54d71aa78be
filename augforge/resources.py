"""Where the shipped sample pictures and ready recipes live, and the `augforge:` path scheme.

An installed wheel carries them under `augforge/_shipped/{samples,pipelines}` (pyproject
force-include); a source checkout (or an editable install) has them at the repository's
`datasets/samples` and `pipelines/`. `resolve_path("augforge:samples")` and
`resolve_path("augforge:recipes/imagenet-c")` name them from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from augforge.core.errors import AugforgeError

_PACKAGE = Path(__file__).resolve().parent
SCHEME = "augforge:"


def _locate(shipped: str, repo: str) -> Path:
    for candidate in (_PACKAGE / "_shipped" / shipped, _PACKAGE.parent / repo):
        if candidate.is_dir():
            return candidate
    raise AugforgeError(f"augforge's {shipped} folder is missing (looked in {_PACKAGE / '_shipped'} and "
                        f"{_PACKAGE.parent / repo})")


def samples_dir() -> Path:
    """The bundled sample pictures (one sub-folder per class)."""
    return _locate("samples", "datasets/samples")


def recipes_dir() -> Path:
    """The ready recipes (imagenet-c.yaml, cifar10-c.yaml, ...)."""
    return _locate("pipelines", "pipelines")


def resolve_path(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """Map 'augforge:samples[/sub]' and 'augforge:recipes[/<name>]' to real paths; return others as given.

    A recipe name without a suffix gets '.yaml' when that file exists.
    """
    text = os.fspath(path)
    if not text.startswith(SCHEME):
        return path
    where, _, rest = text[len(SCHEME):].partition("/")
    parts = [p for p in rest.split("/") if p]
    if any(p in ("..", ".") for p in parts):
        raise AugforgeError(f"{text!r}: '.' and '..' are not allowed in augforge: paths")
    if where == "samples":
        return samples_dir().joinpath(*parts)
    if where == "recipes":
        target = recipes_dir().joinpath(*parts)
        if parts and not target.suffix and target.with_suffix(".yaml").is_file():
            target = target.with_suffix(".yaml")
        return target
    raise AugforgeError(f"unknown location {text!r}; use augforge:samples[/...] or augforge:recipes/<name>")

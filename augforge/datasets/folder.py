"""ImageFolderReader: pictures in a folder tree, optionally one sub-folder per class.

Layouts (option `layout`):
- 'classes': each immediate sub-folder of the root is a class (all of them, sorted by name, empty
  ones included, like torchvision's `ImageFolder`, so ImageNet wnid folders give the usual
  labels); pictures anywhere below a class folder get its index; pictures in the root itself
  are ignored (counted in `ignored`).
- 'flat': every picture below the root, label None.
- 'auto' (default): 'classes' when pictures sit only in sub-folders, 'flat' when they sit only
  in the root; both is ambiguous and refused with a message.

Order is the sorted NFC relative path (code point order, independent of locale and listing
order). Hidden files and folders (name starting with '.') are skipped. Keys are the relative path
without extension, made tar-safe; `a.jpg` next to `a.png` become `a_jpg` and `a_png`.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from augforge.core.errors import AugforgeError, BadInputError, InvalidParameterError
from augforge.datasets.base import Sample
from augforge.datasets.decode import Preprocess
from augforge.datasets.keys import sanitize_key, unique_keys

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".pnm", ".bmp", ".tif", ".tiff",
                    ".webp", ".gif")
LAYOUTS = ("auto", "classes", "flat")


def _scan(root: Path, extensions: frozenset[str]) -> list[str]:
    """Relative '/'-separated paths of the image files below root (followed links, no cycles)."""
    found: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in extensions:
                continue
            rel = name if rel_dir == "." else os.path.join(rel_dir, name)
            found.append(rel.replace(os.sep, "/"))
    return found


def _subfolders(root: Path) -> list[str]:
    return [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


class ImageFolderReader:
    """Random access to the pictures of a folder tree, in sorted relative-path order."""

    kind = "folder"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        layout: str = "auto",
        classes: Sequence[str] | None = None,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        preprocess: Preprocess | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise AugforgeError(f"image folder not found: {self.root}")
        if layout not in LAYOUTS:
            raise InvalidParameterError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        self.preprocess = preprocess or Preprocess()
        files = sorted(_scan(self.root, exts), key=_nfc)
        top = [f for f in files if "/" not in f]
        nested = [f for f in files if "/" in f]
        if layout == "auto":
            if top and nested:
                raise AugforgeError(
                    f"{self.root} has {len(top)} pictures in the root and {len(nested)} in sub-folders; "
                    "pass layout='classes' (sub-folders are classes, root pictures ignored) or "
                    "layout='flat' (all pictures, no labels)"
                )
            layout = "classes" if nested else "flat"
        self.layout = layout
        self.classes: list[str] | None = None
        self.ignored = 0
        labels: list[int | None]
        if layout == "classes":
            self.classes = self._class_list(classes, nested)
            index = {name: i for i, name in enumerate(self.classes)}
            self.ignored = len(top)
            files = nested
            labels = [index[_nfc(f.split("/", 1)[0])] for f in files]
        else:
            if classes is not None:
                raise InvalidParameterError("classes only applies to layout='classes'")
            labels = [None] * len(files)
        self._files = files
        self._labels = labels
        stems = [sanitize_key(_nfc(os.path.splitext(f)[0])) for f in files]
        self._keys = unique_keys(stems, [os.path.splitext(f)[1].lstrip(".") for f in files])

    def _class_list(self, classes: Sequence[str] | None, nested: list[str]) -> list[str]:
        used = {_nfc(f.split("/", 1)[0]) for f in nested}
        if classes is None:
            return sorted(_nfc(name) for name in _subfolders(self.root))
        names = [_nfc(str(c)) for c in classes]
        if len(set(names)) != len(names):
            raise InvalidParameterError("classes contains duplicates")
        unknown = sorted(used - set(names))
        if unknown:
            raise AugforgeError(
                f"{len(unknown)} sub-folders with pictures are not in classes, e.g. {unknown[:5]}"
            )
        return names

    def __len__(self) -> int:
        return len(self._files)

    def key(self, index: int) -> str:
        return self._keys[index]

    def source(self, index: int) -> str:
        """The record's relative path, without reading it (quarantine records name the file)."""
        return self._files[index]

    def read(self, index: int) -> Sample:
        rel = self._files[index]
        try:
            image, meta = self.preprocess.decode(self.root / rel)
        except BadInputError as exc:
            raise BadInputError(f"{rel}: {exc}") from None
        label = self._labels[index]
        if label is not None and self.classes is not None:
            meta["class_name"] = self.classes[label]
        return Sample(key=self._keys[index], image=image, label=label, source=rel, meta=meta)

    def __repr__(self) -> str:
        return f"ImageFolderReader({str(self.root)!r}, {len(self)} pictures, layout={self.layout!r})"

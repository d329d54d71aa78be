"""Readers of pictures stored as arrays: .npy files and the CIFAR-10 python batches.

Neither reader can run code from its input: .npy files load with `allow_pickle=False`, and the
CIFAR batches (Python pickles) load through `restricted_load`, whose unpickler resolves only the
few numpy globals an array needs. Both use keys f"{i:08d}", so a CIFAR-10 test set read from the
python batches or from a .npy export gets the same keys, hence the same seeds.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from augforge.core.errors import AugforgeError, BadInputError, InvalidInputError, InvalidParameterError
from augforge.datasets.base import Sample
from augforge.datasets.decode import Preprocess


def _load_npy(path: Path, what: str, mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise AugforgeError(f"{what} file not found: {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{what} {path} is not a plain .npy array: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise InvalidInputError(f"{what} {path} must be a single .npy array, not an .npz archive")
    return array


PICTURE_KINDS = "biuf"  # bool, signed and unsigned integers, floats: converted per picture (`as_uint8`)


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.dtype.kind not in PICTURE_KINDS:
        raise InvalidInputError(
            f"images {path} have dtype {images.dtype}, which cannot hold pictures; use uint8 (0..255), "
            "another integer type (0..255), bool, or floats in [0, 1]"
        )
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise InvalidInputError(f"images {path} must be (N, H, W) or (N, H, W, 1|3), got {images.shape}")


def as_uint8(picture: np.ndarray) -> np.ndarray:
    """One picture of any accepted dtype -> uint8, or BadInputError with the reason (quarantined).

    uint8 as is; bool -> 0 / 255 (like PIL's mode '1'); other integers must lie in 0..255 and are
    cast exactly (no rescaling: an int64 array of 0..255 values is common, a 16-bit one is not
    guessed); floats must be finite and in [0, 1] and become round-half-even(x * 255).
    """
    kind, dtype = picture.dtype.kind, picture.dtype
    if dtype == np.uint8:
        return picture
    if picture.size == 0:
        raise BadInputError(f"empty {dtype} picture {picture.shape}")
    if kind == "b":
        return picture.astype(np.uint8) * np.uint8(255)
    if kind in "iu":
        lo, hi = int(picture.min()), int(picture.max())
        if lo < 0 or hi > 255:
            raise BadInputError(f"{dtype} values {lo}..{hi} lie outside 0..255")
        return picture.astype(np.uint8)
    values = picture.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        nan = int(np.isnan(values).sum())
        raise BadInputError(f"{dtype} picture holds {nan} NaN and {values.size - int(finite.sum()) - nan} "
                            "infinite values")
    lo, hi = float(values.min()), float(values.max())
    if lo < 0.0 or hi > 1.0:
        raise BadInputError(f"{dtype} values {lo:g}..{hi:g} lie outside [0, 1]")
    return np.rint(values * 255.0).astype(np.uint8)


def _check_labels(labels: Any, count: int, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise InvalidInputError(f"{what} must be integers, got {labels.dtype}")
    if labels.shape != (count,):
        raise InvalidInputError(f"{what} must have shape ({count},), got {labels.shape}")
    return labels.astype(np.int64)


class NumpyArrayReader:
    """Pictures from an (N, H, W[, C]) .npy file (memory-mapped), labels from an optional (N,) .npy.

    A file whose dtype cannot hold pictures (complex, strings, records, objects) or whose shape is
    wrong is refused when the reader opens; bool, integer and float pictures are converted one by
    one (`as_uint8`), and a picture that cannot be (NaN, inf, out of range) is a bad record.
    """

    kind = "numpy"

    def __init__(
        self,
        images: str | os.PathLike[str],
        *,
        labels: str | os.PathLike[str] | None = None,
        preprocess: Preprocess | None = None,
    ) -> None:
        self.images_path = Path(images)
        self.labels_path = None if labels is None else Path(labels)
        self.preprocess = preprocess or Preprocess()
        self._images: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._open()  # validate now: a wrong dtype or shape is a configuration error

    def _open(self) -> np.ndarray:
        if self._images is None:
            images = _load_npy(self.images_path, "images", mmap=True)
            _check_images(images, self.images_path)
            if self.labels_path is not None:
                raw = _load_npy(self.labels_path, "labels", mmap=False)
                self._labels = _check_labels(raw, len(images), f"labels {self.labels_path}")
            self._images = images
        return self._images

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_images": None, "_labels": None}  # never pickle the data

    def __len__(self) -> int:
        return len(self._open())

    def key(self, index: int) -> str:
        return f"{range(len(self))[index]:08d}"

    def read(self, index: int) -> Sample:
        images = self._open()
        index = range(len(images))[index]
        try:
            picture = as_uint8(np.array(images[index]))
        except BadInputError as exc:
            raise BadInputError(f"{self.images_path.name}[{index}]: {exc}") from None
        image, meta = self.preprocess.from_array(picture)
        label = None if self._labels is None else int(self._labels[index])
        source = f"{self.images_path.name}[{index}]"
        return Sample(key=f"{index:08d}", image=image, label=label, source=source, meta=meta)


# --- CIFAR-10 python batches -----------------------------------------------------------------------

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array-unpickling function, any version


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """Protocol-5 array reconstruction (numpy's `_frombuffer`), rebuilt from public calls."""
    array = np.frombuffer(buffer, dtype=dtype)
    return array.reshape(shape, order=order)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles of bytes use it, limited to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return found


def restricted_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle a CIFAR-style batch without allowing code execution; BadInputError on refusal."""
    try:
        data = Path(path).read_bytes()
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except FileNotFoundError:
        raise AugforgeError(f"file not found: {path}") from None
    except Exception as exc:
        raise BadInputError(f"refused or unreadable pickle {path}: {type(exc).__name__}: {exc}") from None
    _reject_objects(obj, path)
    return obj


def _reject_objects(obj: Any, path: Any) -> None:
    """Object arrays could smuggle references; the batches never need them."""
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise BadInputError(f"{path}: object arrays are not allowed")
    if isinstance(obj, dict):
        for value in obj.values():
            _reject_objects(value, path)


def _field(batch: dict[Any, Any], name: str) -> Any:
    """A batch entry by its bytes key (Python 2 pickles) or str key (re-saved batches)."""
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    return None


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


CIFAR_SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


class CIFAR10Reader:
    """The CIFAR-10 python batches ('cifar-10-batches-py'): 32x32 RGB pictures and labels 0-9.

    Construction only checks that the batch files exist; the batches of the split are loaded
    (restricted unpickling) on first use, once per process.
    """

    kind = "cifar10"

    def __init__(self, root: str | os.PathLike[str], *, split: str = "test",
                 preprocess: Preprocess | None = None) -> None:
        if split not in CIFAR_SPLITS:
            raise InvalidParameterError(f"split must be one of {tuple(CIFAR_SPLITS)}, got {split!r}")
        root = Path(root)
        if (root / "cifar-10-batches-py").is_dir():
            root = root / "cifar-10-batches-py"
        missing = [name for name in CIFAR_SPLITS[split] if not (root / name).is_file()]
        if missing:
            raise AugforgeError(f"CIFAR-10 batches missing in {root}: {missing}")
        self.root, self.split = root, split
        self.preprocess = preprocess or Preprocess()
        self._data: tuple[np.ndarray, np.ndarray, list[str], list[str]] | None = None
        self.classes: list[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}

    def _load(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        if self._data is None:
            pictures, labels, sources, filenames = [], [], [], []
            for name in CIFAR_SPLITS[self.split]:
                batch = restricted_load(self.root / name)
                data = _field(batch, "data") if isinstance(batch, dict) else None
                if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                        or data.shape[1] != 3072:
                    raise BadInputError(f"{self.root / name}: 'data' must be a uint8 (N, 3072) array")
                count = len(data)
                labels.append(_check_labels(_field(batch, "labels"), count, f"{name} labels"))
                pictures.append(data.reshape(count, 3, 32, 32).transpose(0, 2, 3, 1))
                sources.extend(f"{name}[{j}]" for j in range(count))
                names = _field(batch, "filenames")
                if isinstance(names, list) and len(names) == count:
                    filenames.extend(_text(n) for n in names)
                else:
                    filenames.extend([""] * count)
            meta_path = self.root / "batches.meta"
            if meta_path.is_file():
                meta = restricted_load(meta_path)
                names = _field(meta, "label_names") if isinstance(meta, dict) else None
                self.classes = [_text(n) for n in names] if isinstance(names, list) else None
            self._data = (np.concatenate(pictures), np.concatenate(labels), sources, filenames)
        return self._data

    def __len__(self) -> int:
        return len(self._load()[0])

    def key(self, index: int) -> str:
        return f"{range(len(self))[index]:08d}"

    def read(self, index: int) -> Sample:
        pictures, labels, sources, filenames = self._load()
        index = range(len(pictures))[index]
        image, meta = self.preprocess.from_array(pictures[index])
        label = int(labels[index])
        if filenames[index]:
            meta["filename"] = filenames[index]
        if self.classes is not None and 0 <= label < len(self.classes):
            meta["class_name"] = self.classes[label]
        return Sample(key=f"{index:08d}", image=image, label=label, source=sources[index], meta=meta)

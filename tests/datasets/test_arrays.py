"""NumpyArrayReader and CIFAR10Reader, including the restricted unpickler against hostile pickles."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from augforge.core.errors import AugforgeError, BadInputError, InvalidInputError, InvalidParameterError
from augforge.datasets import CIFAR10Reader, NumpyArrayReader, Reader, restricted_load
from augforge.datasets.decode import Preprocess

RNG = np.random.default_rng(5)


# --- numpy ---------------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_numpy_reader_images_and_labels(tmp_path):
    images = RNG.integers(0, 256, (5, 8, 9, 3), dtype=np.uint8)
    labels = np.array([4, 0, 9, 2, 2], dtype=np.int16)
    reader = NumpyArrayReader(save(tmp_path / "x.npy", images), labels=save(tmp_path / "y.npy", labels))
    assert isinstance(reader, Reader) and reader.kind == "numpy" and len(reader) == 5
    assert isinstance(reader._images, np.memmap)  # memory-mapped, not loaded
    assert [reader.key(i) for i in range(5)] == [f"{i:08d}" for i in range(5)]
    for i in range(5):
        sample = reader.read(i)
        np.testing.assert_array_equal(sample.image, images[i])
        assert sample.image.flags.writeable
        assert sample.label == int(labels[i]) and isinstance(sample.label, int)
        assert sample.key == f"{i:08d}" and sample.source == f"x.npy[{i}]"
    assert reader.read(-1).key == "00000004"


def test_numpy_reader_grayscale_and_modes(tmp_path):
    images = RNG.integers(0, 256, (3, 6, 7), dtype=np.uint8)
    path = save(tmp_path / "g.npy", images)
    gray = NumpyArrayReader(path, preprocess=Preprocess(mode="L"))
    np.testing.assert_array_equal(gray.read(1).image, images[1][..., None])
    rgb = NumpyArrayReader(path)
    np.testing.assert_array_equal(rgb.read(1).image, np.repeat(images[1][..., None], 3, axis=2))
    assert rgb.read(0).label is None


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 4, 4, 3), np.complex64), "dtype complex64, which cannot hold pictures"),
        (np.zeros((2, 4, 4), "U1"), "dtype <U1, which cannot hold pictures"),
        (np.zeros((2, 4, 4, 4), np.uint8), r"must be \(N, H, W\)"),
        (np.zeros((8, 8), np.uint8), r"must be \(N, H, W\)"),
    ],
)
def test_numpy_reader_refuses_wrong_arrays(tmp_path, array, message):
    with pytest.raises(InvalidInputError, match=message):
        NumpyArrayReader(save(tmp_path / "bad.npy", array))


def test_numpy_reader_converts_or_refuses_each_picture(tmp_path):
    floats = np.zeros((4, 2, 2), np.float32)
    floats[0] = [[0.0, 0.5], [1.0, 0.2]]  # 0.5 * 255 = 127.5 -> 128 (half to even), 0.2 * 255 = 51.0000007
    floats[1, 0, 0], floats[2, 1, 1], floats[3, 0, 1] = np.nan, -np.inf, 1.5
    reader = NumpyArrayReader(save(tmp_path / "f.npy", floats), preprocess=Preprocess(mode="L"))
    np.testing.assert_array_equal(reader.read(0).image[..., 0], [[0, 128], [255, 51]])
    for index, reason in ((1, "1 NaN and 0 infinite"), (2, "0 NaN and 1 infinite"),
                          (3, r"values 0\.\.1\.5 lie outside \[0, 1\]")):
        with pytest.raises(BadInputError, match=rf"f\.npy\[{index}\]: float32 .*{reason}"):
            reader.read(index)
    ints = np.array([[[0, 255]], [[256, 0]], [[-1, 3]]], np.int64)
    reader = NumpyArrayReader(save(tmp_path / "i.npy", ints), preprocess=Preprocess(mode="L"))
    np.testing.assert_array_equal(reader.read(0).image[..., 0], [[0, 255]])
    with pytest.raises(BadInputError, match=r"int64 values 0\.\.256 lie outside 0\.\.255"):
        reader.read(1)
    with pytest.raises(BadInputError, match=r"values -1\.\.3"):
        reader.read(2)
    masks = NumpyArrayReader(save(tmp_path / "b.npy", np.array([[[True, False]]])),
                             preprocess=Preprocess(mode="L"))
    np.testing.assert_array_equal(masks.read(0).image[..., 0], [[255, 0]])


def test_numpy_reader_refuses_pickled_and_bad_labels(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [{"a": 1}, None]
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    with pytest.raises(InvalidInputError, match=r"not a plain \.npy"):
        NumpyArrayReader(tmp_path / "obj.npy")
    images = save(tmp_path / "x.npy", np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(InvalidInputError, match=r"shape \(3,\)"):
        NumpyArrayReader(images, labels=save(tmp_path / "y2.npy", np.zeros(2, np.int64)))
    with pytest.raises(InvalidInputError, match="integers"):
        NumpyArrayReader(images, labels=save(tmp_path / "yf.npy", np.zeros(3, np.float32)))
    with pytest.raises(AugforgeError, match="not found"):
        NumpyArrayReader(tmp_path / "missing.npy")


def test_numpy_reader_pickles_without_the_data(tmp_path):
    images = RNG.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    reader = NumpyArrayReader(save(tmp_path / "x.npy", images))
    blob = pickle.dumps(reader)
    assert len(blob) < 2000  # 196 KB of pixels must not travel
    np.testing.assert_array_equal(pickle.loads(blob).read(63).image, images[63])


# --- CIFAR-10 ------------------------------------------------------------------------------------


def cifar_batch(images: np.ndarray, labels: list[int], name: str) -> dict[bytes, object]:
    """A batch dict as in the CIFAR-10 python release: (N, 3072) rows of R, G, B planes."""
    return {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072).copy(),
        b"filenames": [f"img_{name}_{i}.png".encode() for i in range(len(images))],
    }


def write_cifar(
    root: Path, sizes: dict[str, int], protocol: int = 2
) -> dict[str, tuple[np.ndarray, list[int]]]:
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in sizes.items():
        images = RNG.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, 10, count)]
        (root / name).write_bytes(pickle.dumps(cifar_batch(images, labels, name), protocol=protocol))
        written[name] = (images, labels)
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                  "ship", "truck")]
    meta = {b"label_names": names, b"num_cases_per_batch": 10000, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


ALL_BATCHES = {**{f"data_batch_{i}": 2 + i for i in range(1, 6)}, "test_batch": 4}


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_test_split(tmp_path, protocol):
    written = write_cifar(tmp_path / "cifar-10-batches-py", ALL_BATCHES, protocol)
    reader = CIFAR10Reader(tmp_path)  # the parent of cifar-10-batches-py works too
    assert isinstance(reader, Reader) and reader.kind == "cifar10"
    assert reader._data is None  # nothing loaded at construction
    images, labels = written["test_batch"]
    assert len(reader) == 4 and reader.classes[3] == "cat"
    for i in range(4):
        sample = reader.read(i)
        np.testing.assert_array_equal(sample.image, images[i])
        assert sample.label == labels[i] and sample.key == f"{i:08d}"
        assert sample.source == f"test_batch[{i}]" and sample.meta["filename"] == f"img_test_batch_{i}.png"
        assert sample.meta["class_name"] == reader.classes[labels[i]]


def test_cifar_train_split_concatenates_batches_in_order(tmp_path):
    written = write_cifar(tmp_path, ALL_BATCHES)
    reader = CIFAR10Reader(tmp_path, split="train")
    assert len(reader) == sum(2 + i for i in range(1, 6))
    # Index 3 + 4 = 7 is the first picture of data_batch_3.
    np.testing.assert_array_equal(reader.read(7).image, written["data_batch_3"][0][0])
    assert reader.read(7).source == "data_batch_3[0]" and reader.key(7) == "00000007"
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._data is None
    np.testing.assert_array_equal(clone.read(18).image, written["data_batch_5"][0][0])  # 3+4+5+6


def test_cifar_preprocess_and_errors(tmp_path):
    write_cifar(tmp_path, {"test_batch": 2})
    reader = CIFAR10Reader(tmp_path, preprocess=Preprocess.from_options(resize=64, mode="L"))
    assert reader.read(0).image.shape == (64, 64, 1)
    with pytest.raises(AugforgeError, match="missing"):
        CIFAR10Reader(tmp_path, split="train")
    with pytest.raises(InvalidParameterError):
        CIFAR10Reader(tmp_path, split="val")


def py2_style_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A pickle like Python 2's cPickle wrote the CIFAR batches: numpy.core globals, BINSTRING data."""

    def short(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    raw = images.transpose(0, 3, 1, 2).reshape(len(images), 3072).tobytes()
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n"
        + b"K\x00\x85" + short(b"b") + b"\x87R"
        + b"(K\x01" + b"M" + struct.pack("<H", len(images)) + b"M\x00\x0c\x86"
        + b"cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R"
        + b"(K\x03" + short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89" + b"T" + struct.pack("<I", len(raw)) + raw + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return (b"\x80\x02}(" + short(b"data") + array + short(b"labels") + label_list
            + short(b"batch_label") + short(b"testing batch 1 of 1") + b"u.")


def test_python2_written_batch_loads(tmp_path):
    images = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "test_batch").write_bytes(py2_style_batch(images, [1, 8, 5]))
    reader = CIFAR10Reader(tmp_path)
    assert [reader.read(i).label for i in range(3)] == [1, 8, 5]
    np.testing.assert_array_equal(reader.read(2).image, images[2])
    assert reader.classes is None and "filename" not in reader.read(0).meta


# --- restricted unpickler ------------------------------------------------------------------------


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    control = tmp_path / "control"
    assert pickle.loads(pickle.dumps(RunsShell(f"echo pwned > '{control}'"))) == 0  # the payload is live
    assert control.exists()

    marker = tmp_path / "marker"
    for protocol in (0, 2, 5):
        path = tmp_path / f"evil{protocol}"
        path.write_bytes(pickle.dumps({b"data": RunsShell(f"echo pwned > '{marker}'")}, protocol=protocol))
        with pytest.raises(BadInputError, match=r"(posix|os|nt)\.system is not allowed"):
            restricted_load(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_other_globals_and_codecs(tmp_path):
    (tmp_path / "eval").write_bytes(pickle.dumps(CallsEval(), protocol=2))
    with pytest.raises(BadInputError, match=r"(__builtin__|builtins)\.eval is not allowed"):
        restricted_load(tmp_path / "eval")
    # _codecs.encode is allowed only as the latin-1 encoder protocol-2 bytes need.
    rot13 = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    (tmp_path / "rot13").write_bytes(rot13)
    with pytest.raises(BadInputError, match="not allowed"):
        restricted_load(tmp_path / "rot13")
    objects = np.empty(1, dtype=object)
    (tmp_path / "objarr").write_bytes(pickle.dumps({b"data": objects}, protocol=2))
    with pytest.raises(BadInputError, match="object arrays"):
        restricted_load(tmp_path / "objarr")


def test_malicious_cifar_batch_never_runs(tmp_path):
    marker = tmp_path / "marker"
    write_cifar(tmp_path, {"test_batch": 2})
    (tmp_path / "test_batch").write_bytes(pickle.dumps(RunsShell(f"touch '{marker}'"), protocol=2))
    reader = CIFAR10Reader(tmp_path)
    with pytest.raises(BadInputError, match="not allowed"):
        len(reader)
    assert not marker.exists()

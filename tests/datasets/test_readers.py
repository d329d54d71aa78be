"""open_reader (kinds, options, shared preprocessing) and the augforge: path scheme."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import augforge.resources as resources
from augforge.core.errors import AugforgeError
from augforge.datasets import READER_KINDS, Reader, open_reader
from augforge.resources import recipes_dir, resolve_path, samples_dir

REPO = Path(__file__).resolve().parents[2]
SAMPLE_KEYS = ["animals/chelsea", "objects/coffee", "objects/rocket", "people/astronaut", "scenes/brick",
               "scenes/camera", "scenes/grass", "scenes/gravel", "scenes/hubble_deep_field", "scenes/retina"]


def test_bundled_samples_through_the_scheme():
    reader = open_reader("folder", "augforge:samples", resize=64, center_crop=56)
    assert reader.classes == ["animals", "objects", "people", "scenes"]
    assert [reader.key(i) for i in range(len(reader))] == SAMPLE_KEYS
    camera = reader.read(SAMPLE_KEYS.index("scenes/camera"))  # a grayscale PNG, replicated to RGB
    assert camera.label == 3 and camera.image.shape == (56, 56, 3)
    assert (camera.image[..., 0] == camera.image[..., 1]).all()
    chelsea = reader.read(0)
    assert chelsea.meta == {"original_size": [300, 451], "class_name": "animals"}


def make_inputs(tmp_path: Path) -> dict[str, tuple[str, dict]]:
    """One tiny input of every kind, all holding the same two 40x60 pictures."""
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (2, 40, 60, 3), dtype=np.uint8)
    folder = tmp_path / "folder"
    for i, arr in enumerate(pictures):
        (folder / f"c{i}").mkdir(parents=True)
        Image.fromarray(arr).save(folder / f"c{i}" / f"{i:08d}.png")
    with tarfile.open(tmp_path / "shard-000000.tar", "w") as tf:
        for i, arr in enumerate(pictures):
            for name, data in ((f"{i:08d}.png", _png(arr)), (f"{i:08d}.cls", str(i).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    np.save(tmp_path / "x.npy", pictures)
    np.save(tmp_path / "y.npy", np.arange(2))
    return {
        "folder": (str(folder), {}),
        "webdataset": (str(tmp_path / "shard-{000000..000000}.tar"), {}),
        "numpy": (str(tmp_path / "x.npy"), {"labels": str(tmp_path / "y.npy")}),
    }


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_every_kind_gives_the_same_samples_and_pickles(tmp_path):
    inputs = make_inputs(tmp_path)
    results = {}
    for kind, (path, options) in inputs.items():
        reader = open_reader(kind, path, resize=20, center_crop=[16, 18], mode="L", **options)
        assert isinstance(reader, Reader) and reader.kind == kind
        clone = pickle.loads(pickle.dumps(reader))
        samples = [clone.read(i) for i in range(len(clone))]
        results[kind] = [(s.key, s.label, s.image.tobytes()) for s in samples]
        assert all(s.image.shape == (16, 18, 1) for s in samples)
    keys = [[r[0] for r in result] for result in results.values()]
    assert keys[1:] == [["00000000", "00000001"]] * 2  # folder keys carry the class folder
    assert keys[0] == ["c0/00000000", "c1/00000001"]
    labels_and_pixels = [[r[1:] for r in result] for result in results.values()]
    assert labels_and_pixels[0] == labels_and_pixels[1] == labels_and_pixels[2]


def test_unknown_kind_and_options_name_the_allowed_ones(tmp_path):
    assert READER_KINDS == ("folder", "webdataset", "numpy", "cifar10")
    with pytest.raises(AugforgeError, match="kind 'imagenet'; allowed: folder, webdataset, numpy, cifar10"):
        open_reader("imagenet", tmp_path)
    with pytest.raises(AugforgeError, match=r"unknown option\(s\) \['max_pixels'\].*allowed: mode, resize"):
        open_reader("numpy", tmp_path / "x.npy", max_pixels=10)
    with pytest.raises(AugforgeError, match=r"\['shuffle'\].*layout, classes, extensions, max_pixels"):
        open_reader("folder", tmp_path, shuffle=True)
    with pytest.raises(AugforgeError, match="needs a path"):
        open_reader("folder", None)
    with pytest.raises(AugforgeError, match="resize"):
        open_reader("folder", tmp_path, resize=-1)


def test_max_pixels_option_reaches_the_decoder(tmp_path):
    inputs = make_inputs(tmp_path)
    reader = open_reader("webdataset", inputs["webdataset"][0], max_pixels=100)
    with pytest.raises(AugforgeError, match="too many pixels"):
        reader.read(0)


def test_cifar_kind_passes_split(tmp_path):
    with pytest.raises(AugforgeError, match="data_batch_1"):
        open_reader("cifar10", tmp_path, split="train")


def test_resolve_path_scheme(tmp_path, monkeypatch):
    assert samples_dir() == REPO / "datasets" / "samples"
    assert recipes_dir() == REPO / "pipelines"
    assert resolve_path("augforge:samples") == samples_dir()
    assert resolve_path("augforge:samples/animals/chelsea.png").is_file()
    assert resolve_path("augforge:recipes/quickstart") == REPO / "pipelines" / "quickstart.yaml"
    assert resolve_path("augforge:recipes/quickstart.yaml") == REPO / "pipelines" / "quickstart.yaml"
    assert resolve_path("augforge:recipes/other") == REPO / "pipelines" / "other"  # missing: left as named
    for other in ("data/x.tar", tmp_path, "s3://bucket/a-{0..3}.tar", "C:/augforge:samples"):
        assert resolve_path(other) is other
    with pytest.raises(AugforgeError, match="not allowed"):
        resolve_path("augforge:samples/../../etc")
    with pytest.raises(AugforgeError, match="unknown location"):
        resolve_path("augforge:weights/x")


def test_shipped_copies_win_in_a_wheel(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "augforge"
    (package / "_shipped" / "samples" / "animals").mkdir(parents=True)
    (package / "_shipped" / "pipelines").mkdir(parents=True)
    monkeypatch.setattr(resources, "_PACKAGE", package)
    assert samples_dir() == package / "_shipped" / "samples"
    shipped = package / "_shipped" / "pipelines" / "imagenet-c.yaml"
    assert resolve_path("augforge:recipes/imagenet-c.yaml") == shipped
    monkeypatch.setattr(resources, "_PACKAGE", tmp_path / "nowhere" / "augforge")
    with pytest.raises(AugforgeError, match="missing"):
        samples_dir()

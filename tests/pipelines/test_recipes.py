"""The shipped recipes: each validates with the benchmark's inputs, ops and presets, and the
CIFAR-10-C recipe runs end to end from CIFAR python batches to the released arrays."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from augforge.cli import app
from augforge.pipelines import load_recipe
from augforge.resources import resolve_path
from tests.pipelines.conftest import REPO

pytestmark = pytest.mark.timeout(120)

# The 15 benchmark corruptions then the 4 extra ones, in the reference's corruption_number order (§1.1).
IMAGENET_C_OPS = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
]
BENCHMARKS = {
    # recipe: (reader, reader options, preset, formats)
    "imagenet-c": ("folder", {"resize": 256, "center_crop": 224}, "imagenet", ["imagenet-c"]),
    "cifar10-c": ("cifar10", {"split": "test"}, "cifar", ["cifar10-c"]),
    "tiny-imagenet-c": ("folder", {"resize": [64, 64]}, "tiny", ["imagenet-c"]),
}


@pytest.mark.parametrize("path", sorted((REPO / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.ops and recipe.output.dir


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_recipes(name: str) -> None:
    reader, options, preset, formats = BENCHMARKS[name]
    recipe = load_recipe(Path(resolve_path(f"augforge:recipes/{name}")))
    assert (recipe.input.reader, recipe.input.options, recipe.input.path) == (reader, options, None)
    assert [(o.name, o.levels, o.preset, o.params) for o in recipe.ops] == [
        (op, [1, 2, 3, 4, 5], preset, {}) for op in IMAGENET_C_OPS]
    assert recipe.output.formats == formats
    assert (recipe.output.encoding, recipe.output.quantize) == ("png", "truncate")
    assert (recipe.mode, recipe.execution.device) == ("grid", "cpu")


def write_cifar_test_batch(root: Path, images: np.ndarray, labels: list[int]) -> Path:
    """A 'cifar-10-batches-py' folder whose test_batch holds `images` in the release's format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": labels,
             b"data": images.transpose(0, 3, 1, 2).reshape(len(images), 3072).copy(),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def test_cifar10_c_recipe_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = [7, 0, 3, 3, 9, 1, 4, 8]
    data = write_cifar_test_batch(tmp_path, images, labels)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "augforge:recipes/cifar10-c", "--input", str(data), "--out",
                                      str(out), "--workers", "2", "--format", "cifar10-c"])
    assert result.exit_code == 0, result.output
    assert "cifar10-c: 760 images in 20 files" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting"]["total"] == {"read": 760, "written": 760, "quarantined": 0}
    dest = out / "cifar10-c"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [f"{op}.npy" for op in IMAGENET_C_OPS] + ["labels.npy", "export.json"])
    released = np.load(dest / "labels.npy", allow_pickle=False)
    assert released.dtype == np.uint8 and released.tolist() == labels * 5
    for entry in manifest["shards"]:
        array = np.load(dest / f"{entry['op']}.npy", mmap_mode="r")
        assert array.shape == (40, 32, 32, 3) and array.dtype == np.uint8
        with tarfile.open(out / entry["path"]) as tar:
            for row, key in enumerate(entry["keys"], start=entry["start"]):
                png = tar.extractfile(f"{key}.png").read()  # type: ignore[union-attr]
                stored = np.asarray(Image.open(io.BytesIO(png)))
                np.testing.assert_array_equal(array[(entry["severity"] - 1) * 8 + row], stored)
    # severity 1 of a noise op is a corruption of the input, not a copy of it
    noisy = np.load(dest / "gaussian_noise.npy")[:8].astype(int)
    assert 0 < np.abs(noisy - images).mean() < 40

"""Released formats: ImageNet-C JPEG folders and CIFAR-10-C arrays exported from the shards, their
bytes against PIL and the shards, a RobustBench-style loader, and every refusal."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from augforge.cli import app
from augforge.core.errors import RecipeError
from augforge.pipelines import ExportError, export_dataset, generate, load_recipe
from augforge.pipelines.export import released_name
from tests.pipelines.conftest import read_manifest, recipe_dict, small_pictures

pytestmark = pytest.mark.timeout(120)
ALL_LEVELS = ["contrast@1-5", "gaussian_noise@1-5"]


def shard_pixels(out: Path) -> dict[tuple[str, int, str], tuple[np.ndarray, dict[str, Any]]]:
    """(op, severity, key) -> (stored pixels, json record), read straight from the shards."""
    found = {}
    for entry in read_manifest(out)["shards"]:
        with tarfile.open(out / entry["path"]) as tar:
            for key in entry["keys"]:
                meta = json.loads(tar.extractfile(f"{key}.json").read())  # type: ignore[union-attr]
                png = tar.extractfile(f"{key}.png").read()  # type: ignore[union-attr]
                found[(entry["op"], entry["severity"], key)] = (np.asarray(Image.open(io.BytesIO(png))), meta)
    return found


def pil_q85(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85, optimize=True)
    return buf.getvalue()


def class_folder(root: Path) -> Path:
    """Two class folders holding .JPEG, .jpg and .png pictures (names kept / suffixed)."""
    pics = sorted(small_pictures(root / "pics", 5).iterdir())
    layout = {"n01/a.JPEG": "JPEG", "n01/b.jpg": "JPEG", "n02/c.png": "PNG", "n02/d.jpeg": "JPEG",
              "n02/e.png": "PNG"}
    data = root / "classes"
    for src, (rel, kind) in zip(pics, layout.items(), strict=True):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(src).save(data / rel, format=kind, quality=95)
    return data


def small_run(out: Path, data: Path, ops: list[str], dask_client: Any, **changes: Any) -> Path:
    recipe = recipe_dict(out, input_path=data, ops=ops, **{"input": {"options": {}}, **changes})
    generate(recipe, client=dask_client, progress=False)
    return out


def test_imagenet_c_layout_names_and_jpeg_bytes(tmp_path: Path, dask_client: Any) -> None:
    data = class_folder(tmp_path)
    out = tmp_path / "out"
    recipe = recipe_dict(out, input_path=data, ops=["gaussian_noise@1", "contrast@2"], input={"options": {}},
                         output={"formats": ["imagenet-c"], "samples_per_shard": 2})
    summary = generate(recipe, client=dask_client, progress=False)
    exported = [(e.format, e.images, e.files, e.skipped) for e in summary.exports]
    assert exported == [("imagenet-c", 10, 10, False)]
    dest = out / "imagenet-c"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    names = ["n01/a.JPEG", "n01/b.jpg", "n02/c.png.jpg", "n02/d.jpeg", "n02/e.png.jpg"]
    assert files == sorted(["export.json"] + [f"{g}/{n}" for g in ("contrast/2", "gaussian_noise/1")
                                              for n in names])
    stored = shard_pixels(out)
    assert len(stored) == 10
    for (op, level, _key), (pixels, meta) in stored.items():
        written = (dest / op / str(level) / released_name(meta, True)).read_bytes()
        assert written == pil_q85(pixels)  # exactly PIL's quality-85 optimized encoding of the shard pixels
        assert written[:3] == b"\xff\xd8\xff"
        with Image.open(io.BytesIO(written)) as im:
            assert im.format == "JPEG" and im.size == (48, 48)
    record = json.loads((dest / "export.json").read_text())
    assert record["complete"] is True and record["fingerprint"] == read_manifest(out)["fingerprint"]

    # a second run reuses the shards and finds the export complete; the standalone command agrees
    again = generate(recipe, client=dask_client, progress=False)
    assert again.built == 0 and again.exports[0].skipped
    result = CliRunner().invoke(app, ["export", str(out), "--format", "imagenet-c", "--workers", "1"])
    assert result.exit_code == 0 and "already exported" in result.output
    # an interrupted export (record says incomplete) is wiped and redone; stray files go with it
    (dest / "stray.jpg").write_bytes(b"left by a killed export")
    (dest / "export.json").write_text(json.dumps({**record, "complete": False}))
    redo = export_dataset(out, "imagenet-c", workers=1)
    assert not redo.skipped and not (dest / "stray.jpg").exists()
    assert (dest / "gaussian_noise/1/n02/c.png.jpg").read_bytes() == pil_q85(
        stored[("gaussian_noise", 1, "n02/c")][0])


def test_flat_input_has_no_class_folder_and_out_elsewhere(tmp_path: Path, dask_client: Any) -> None:
    out = small_run(tmp_path / "out", small_pictures(tmp_path / "flat", 3), ["contrast@1"], dask_client)
    summary = export_dataset(out, "imagenet-c", tmp_path / "released", workers=1)
    assert summary.dest == tmp_path / "released" / "imagenet-c" and summary.images == 3
    assert sorted(p.name for p in (summary.dest / "contrast" / "1").iterdir()) == [
        f"pic_{i:03d}.png.jpg" for i in range(3)]
    assert not (out / "imagenet-c").exists()


def test_cifar10_c_arrays_match_the_shards(tmp_path: Path, dask_client: Any) -> None:
    paths = sorted(small_pictures(tmp_path / "p", 6, 32).iterdir())
    pics = np.stack([np.asarray(Image.open(p)) for p in paths])
    labels = np.array([3, 1, 4, 1, 5, 9])
    np.save(tmp_path / "images.npy", pics)
    np.save(tmp_path / "labels.npy", labels)
    out = small_run(tmp_path / "out", tmp_path / "images.npy", ALL_LEVELS, dask_client,
                    input={"reader": "numpy", "options": {"labels": str(tmp_path / "labels.npy")}},
                    output={"samples_per_shard": 4})
    summary = export_dataset(out, "cifar10-c", workers=1)
    assert (summary.files, summary.images, summary.notes) == (3, 60, [])
    dest = out / "cifar10-c"
    stored = shard_pixels(out)
    for op in ("contrast", "gaussian_noise"):
        array = np.load(dest / f"{op}.npy", allow_pickle=False)
        assert array.dtype == np.uint8 and array.shape == (30, 32, 32, 3)
        for level in range(1, 6):
            for i in range(6):  # severity-major: row (s - 1) * N + i
                np.testing.assert_array_equal(array[(level - 1) * 6 + i], stored[(op, level, f"{i:08d}")][0])
    released = np.load(dest / "labels.npy", allow_pickle=False)
    assert released.dtype == np.uint8 and released.tolist() == labels.tolist() * 5

    # the way RobustBench's load_cifar10c reads CIFAR-10-C: np.load both, slice one severity
    n, severity = 6, 3
    x = np.load(dest / "gaussian_noise.npy")[(severity - 1) * n:severity * n]
    y = np.load(dest / "labels.npy")[(severity - 1) * n:severity * n]
    np.testing.assert_array_equal(x[4], stored[("gaussian_noise", 3, "00000004")][0])
    assert y.tolist() == labels.tolist()

    # a shard that no longer matches the manifest is refused, not exported
    shard = out / read_manifest(out)["shards"][0]["path"]
    raw = bytearray(shard.read_bytes())
    raw[1000] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(ExportError, match="sha256 differs from the manifest"):
        export_dataset(out, "cifar10-c", tmp_path / "again", workers=1)


def test_gray_pictures_are_widened_to_three_channels(tmp_path: Path, dask_client: Any) -> None:
    gray = np.stack([np.asarray(Image.open(p).convert("L")) for p in
                     sorted(small_pictures(tmp_path / "p", 4, 32).iterdir())])
    np.save(tmp_path / "gray.npy", gray)
    out = small_run(tmp_path / "out", tmp_path / "gray.npy", ["contrast@1-5"], dask_client,
                    input={"reader": "numpy", "options": {"mode": "L"}})
    summary = export_dataset(out, "cifar10-c", workers=1)
    assert summary.notes == ["the samples carry no labels: labels.npy is not written",
                             "20 gray pictures are stored with their value in all three channels"]
    array = np.load(out / "cifar10-c" / "contrast.npy")
    assert array.shape == (20, 32, 32, 3) and not (out / "cifar10-c" / "labels.npy").exists()
    stored = shard_pixels(out)
    for level in range(1, 6):
        for i in range(4):
            pixels = stored[("contrast", level, f"{i:08d}")][0]
            assert pixels.shape == (32, 32)  # the shard holds a gray PNG
            for c in range(3):
                np.testing.assert_array_equal(array[(level - 1) * 4 + i, :, :, c], pixels)


def test_cifar10_c_refusals(tmp_path: Path, dask_client: Any) -> None:
    # quarantined inputs: the rows would not line up
    dirty = small_pictures(tmp_path / "dirty", 3, 32)
    (dirty / "zero.png").write_bytes(b"")
    out = small_run(tmp_path / "q", dirty, ["contrast@1-5"], dask_client)
    with pytest.raises(ExportError, match=r"1 input\(s\) were quarantined .* would not line up"):
        export_dataset(out, "cifar10-c", workers=1)
    assert not (out / "cifar10-c").exists()
    # pictures of different sizes cannot share one array
    mixed = small_pictures(tmp_path / "mixed", 2, 32)
    Image.open(mixed / "pic_000.png").resize((40, 32)).save(mixed / "pic_002.png")
    out = small_run(tmp_path / "m", mixed, ["contrast@1-5"], dask_client)
    with pytest.raises(ExportError, match=r"one size: .*pic_002 is 32x40, earlier ones are 32x32"):
        export_dataset(out, "cifar10-c", workers=1)
    # not all five severities
    out = small_run(tmp_path / "s", small_pictures(tmp_path / "few", 2, 32), ["contrast@1-2"], dask_client)
    with pytest.raises(ExportError, match=r"severities 1-5 of each op in one array; contrast has \[1, 2\]"):
        export_dataset(out, "cifar10-c", workers=1)
    # a folder that is not an export is never overwritten
    (out / "imagenet-c").mkdir()
    (out / "imagenet-c" / "mine.txt").write_text("user data")
    with pytest.raises(ExportError, match="was not written by `augforge export`"):
        export_dataset(out, "imagenet-c", workers=1)
    assert (out / "imagenet-c" / "mine.txt").read_text() == "user data"
    # nor one that is (or holds) the dataset being exported
    same = out.rename(tmp_path / "imagenet-c")
    with pytest.raises(ExportError, match="would contain the dataset"):
        export_dataset(same, "imagenet-c", tmp_path, workers=1)  # dest == the dataset
    nested = tmp_path / "released" / "imagenet-c" / "dataset"
    nested.parent.mkdir(parents=True)
    (nested.parent / "export.json").write_text(json.dumps({"format": "augforge-export/1", "complete": True}))
    same.rename(nested)
    with pytest.raises(ExportError, match="would contain the dataset"):
        export_dataset(nested, "imagenet-c", tmp_path / "released", workers=1)  # dest holds it
    assert (nested / "manifest.json").is_file()


def test_lossy_or_rounded_shards_are_refused(tmp_path: Path, dask_client: Any) -> None:
    out = small_run(tmp_path / "out", small_pictures(tmp_path / "p", 2), ["contrast@1"], dask_client,
                    output={"encoding": "jpg", "quantize": "round"})
    for fmt in ("imagenet-c", "cifar10-c"):
        with pytest.raises(ExportError) as info:
            export_dataset(out, fmt, workers=1)
        assert f"{fmt} needs lossless shards (output.encoding: png, got 'jpg')" in str(info.value)
        assert "needs output.quantize: truncate (got 'round')" in str(info.value)
    with pytest.raises(ExportError, match="would store a double JPEG"):
        export_dataset(out, "imagenet-c", workers=1)
    assert not (out / "imagenet-c").exists() and not (out / "cifar10-c").exists()

    # the same rules stop a recipe before any work starts
    with pytest.raises(RecipeError, match=r"output.formats: imagenet-c needs lossless shards"):
        load_recipe(recipe_dict(None, output={"encoding": "jpg", "formats": ["imagenet-c"]}))
    with pytest.raises(RecipeError, match=r"gaussian_noise has \[1, 2\]"):
        load_recipe(recipe_dict(None, output={"formats": ["cifar10-c"]}))
    with pytest.raises(RecipeError, match=r"formats\[0\]: Input should be 'imagenet-c' or 'cifar10-c'"):
        load_recipe(recipe_dict(None, output={"formats": ["imagenet-p"]}))
    result = CliRunner().invoke(app, ["export", str(out), "--format", "imagenet-p"])
    assert result.exit_code == 2 and "unknown format 'imagenet-p'" in result.output

"""`augforge generate` over the whole bad-input corpus (tests/data/bad/ + the entries made at test
time) and good pictures: the job finishes, every bad file is converted or quarantined with its
reason, and read = written + quarantined in manifest.json, quarantine.jsonl and the printed summary."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from augforge.cli import app
from augforge.core.errors import RecipeError
from augforge.pipelines import generate
from tests.data.make_bad_corpus import BAD, CORPUS, add_runtime_entries
from tests.pipelines.conftest import read_manifest, recipe_dict, small_pictures

OPS = ["contrast@1", "gaussian_noise@2"]
ROOT = os.geteuid() == 0  # root reads a chmod 000 file: it is then converted, not quarantined
# key -> reason fragment of every row the run must quarantine (bad/ is a class folder)
QUARANTINED = {
    "bad/_broken": "not an image",
    "bad/bomb": "too many pixels: 10000x10000 = 100000000 > max_pixels=1000000",
    "bad/dangling": "cannot read file: No such file or directory",
    "bad/empty": "zero-byte file",
    "bad/fifo": "not a regular file (FIFO)",
    "bad/loop": "cannot read file: Too many levels of symbolic links",
    "bad/text": "not an image",
    "bad/truncated_jpg": "truncated file",
    "bad/truncated_png": "truncated file",
    "bad/short_stream": "truncated file: PNG image data holds 650 of the 3120 bytes",
    **({} if ROOT else {"bad/noperm": "cannot read file: Permission denied"}),
}
WRITTEN = {  # key -> source (the relative path the sample json records)
    "bad/__": "bad/\udcff\udcfe.jpg",
    "bad/animated": "bad/animated.gif",
    "bad/caf_": "bad/caf\udce9.png",
    "bad/cmyk": "bad/cmyk.jpg",
    "bad/cut_with_eoi": "bad/cut_with_eoi.jpg",
    "bad/dup_jpg": "bad/dup.jpg",
    "bad/dup_png": "bad/dup.png",
    "bad/dup_name_png": "bad/dup name.png",
    "bad/dup_name_png_2": "bad/dup_name.png",
    "bad/exif_rotated": "bad/exif_rotated.jpg",
    "bad/gray": "bad/gray.png",
    "bad/gray16": "bad/gray16.png",
    "bad/palette_transparent": "bad/palette_transparent.png",
    **({"bad/noperm": "bad/noperm.png"} if ROOT else {}),
    "good/dup": "good/dup.png",  # the same file name as bad/dup.png, another class folder
    **{f"good/pic_{i:03d}": f"good/pic_{i:03d}.png" for i in range(4)},
}


def corpus_folder(root: Path) -> Path:
    """Class 'bad': every committed picture + the runtime entries; class 'good': 5 clean pictures."""
    bad = root / "in" / "bad"
    bad.mkdir(parents=True)
    for entry in CORPUS:
        if not entry.name.endswith(".npy"):
            shutil.copyfile(BAD / entry.name, bad / entry.name)
    add_runtime_entries(bad)
    (bad / os.fsdecode(b"\xe9broken.jpg")).write_bytes(b"text again")
    good = small_pictures(root / "in" / "good", 4, side=24)
    shutil.copyfile(BAD / "dup.png", good / "dup.png")
    return root / "in"


def test_cli_generate_over_the_corpus_finishes_and_accounts(tmp_path: Path) -> None:
    data = corpus_folder(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"input: {{reader: folder, path: '{data}'}}\nops: {OPS}\n"
                      "output: {samples_per_shard: 8}\nexecution: {workers: 1, batch_size: 4}\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(recipe), "--out", str(out), "--max-pixels", "1000000"])
    assert result.exit_code == 0, result.output
    n, bad, good = len(QUARANTINED) + len(WRITTEN), len(QUARANTINED), len(WRITTEN)
    groups = len(OPS)

    manifest = read_manifest(out)
    assert manifest["recipe"]["input"]["options"] == {"max_pixels": 1_000_000}
    assert manifest["input"]["count"] == n
    assert manifest["accounting"]["total"] == {"read": n * groups, "written": good * groups,
                                               "quarantined": bad * groups}
    for group in manifest["accounting"]["groups"]:
        assert (group["read"], group["written"], group["quarantined"]) == (n, good, bad)
    assert manifest["quarantine"]["inputs"] == bad
    for op in ("contrast", "gaussian_noise"):
        keys = [k for s in manifest["shards"] if s["op"] == op for k in s["keys"]]
        assert sorted(keys) == sorted(WRITTEN) and len(set(keys)) == len(keys)

    records = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in records) == sorted(QUARANTINED)
    for rec in records:
        assert QUARANTINED[rec["key"]] in rec["reason"] and rec["tasks"] == groups and rec["stage"] == "read"
    assert [r["index"] for r in records] == sorted(r["index"] for r in records)

    # the printed summary says the same
    assert f"inputs: {n}; quarantined: {bad}" in result.output
    assert (f"read {n * groups} = written {good * groups} + quarantined {bad * groups}"
            in " ".join(result.output.split()))

    # shard members are the sanitized keys; the json member records the source, escaped
    sources = {}
    for shard in sorted((out / "contrast" / "1").glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            assert all(not n.startswith("/") and ".." not in n for n in names)
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(member).read())
                    sources[meta["key"]] = meta["source"]
    assert sources == WRITTEN


def test_numpy_corpus_files_convert_quarantine_or_refuse(tmp_path: Path, dask_client: Any) -> None:
    out = tmp_path / "out"
    recipe = recipe_dict(out, input_path=BAD / "float_nan_inf.npy", input={"reader": "numpy", "options": {}},
                         ops=OPS)
    summary = generate(recipe, client=dask_client, progress=False)
    assert (summary.inputs, summary.quarantined, summary.images_written) == (4, 3, 1 * len(OPS))
    records = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["index"], r["key"]) for r in records] == [(1, "00000001"), (2, "00000002"), (3, "00000003")]
    assert "1 NaN" in records[0]["reason"] and "1 infinite" in records[1]["reason"]
    assert "outside [0, 1]" in records[2]["reason"]
    assert read_manifest(out)["accounting"]["total"] == {"read": 4 * len(OPS), "written": len(OPS),
                                                         "quarantined": 3 * len(OPS)}
    # a file no record of which can be a picture is a configuration error, reported before any work
    complex_recipe = recipe_dict(tmp_path / "c", input_path=BAD / "complex.npy",
                                 input={"reader": "numpy", "options": {}}, ops=OPS)
    with pytest.raises(RecipeError, match="cannot hold pictures"):
        generate(complex_recipe, client=dask_client, progress=False)
    assert not (tmp_path / "c" / "manifest.json").exists()

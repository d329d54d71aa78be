"""Security: safe YAML and a strict schema for recipes, no pickle from input tars, unsafe member
names rejected, nothing written outside --out, and `pipe:` sources only when explicitly allowed.
Every hostile payload here would create a marker file if it ran; the tests check it never appears."""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import augforge
from augforge.cli import app
from augforge.core.errors import AugforgeError, BadInputError, RecipeError
from augforge.datasets import WebDatasetReader, open_reader
from augforge.datasets.base import Sample
from augforge.pipelines import generate, load_recipe
from augforge.pipelines.execute import ShardFailedError
from augforge.pipelines.export import ExportError, JpegJob, export_jpeg_shard, released_name
from augforge.pipelines.shards import _read_rows, output_path
from tests.pipelines.conftest import read_manifest, recipe_dict

OPS = ["contrast@1"]


class Payload:
    """Unpickling this runs `touch marker` (pickle calls os.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch '{self.marker}'",)


def png(value: int, side: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def files_below(root: Path, skip: Path) -> set[Path]:
    return {p for p in root.rglob("*") if skip not in p.parents and p != skip}


# --- recipes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system",
                                 "!!python/name:os.system"])
def test_yaml_python_tags_are_refused_and_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    arg = f"[\"touch '{marker}'\"]" if "name:" not in tag else "''"
    text = f"input: {{reader: folder, path: .}}\nops: [contrast@1]\nseed: {tag} {arg}\n"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError, match=r"not valid \(safe\) YAML"):
        load_recipe(recipe)
    result = CliRunner().invoke(app, ["generate", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "safe" in result.output
    random_recipe = tmp_path / "evil-random.yaml"
    random_recipe.write_text(text.replace("seed:", "mode: random\nseed:"))
    with pytest.raises(RecipeError, match=r"not valid \(safe\) YAML"):
        augforge.stream(tmp_path, random_recipe)
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("section", "where"), [
    ({"surprise": 1}, "recipe: unknown key 'surprise'"),
    ({"input": {"reader": "folder", "path": ".", "exec": "rm"}}, "input: unknown key 'exec'"),
    ({"input": {"reader": "folder", "path": ".", "options": {"loader": "pickle"}}},
     "unknown option(s) ['loader'] for reader 'folder'"),
    ({"input": {"reader": "pickle", "path": "."}}, "unknown reader 'pickle'"),
    ({"input": {"reader": "webdataset", "path": ".", "options": {"allow_pipe": "yes"}}},
     "allow_pipe must be true or false"),
    ({"input": {"reader": "folder", "path": ".", "options": {"max_pixels": -1}}}, "max_pixels must be"),
    ({"output": {"dir": "o", "compression": "gz"}}, "output: unknown key 'compression'"),
    ({"execution": {"workers": 1, "shell": "sh"}}, "execution: unknown key 'shell'"),
    ({"ops": [{"name": "contrast", "severity": 1, "eval": "x"}]}, "unknown key 'eval'"),
])
def test_schema_refuses_unknown_keys_and_bad_input_options(section: dict[str, Any], where: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe({"ops": ["contrast@1"], **section})
    assert where in str(info.value)


# --- input tars ------------------------------------------------------------------------------------


def hostile_tar(tmp_path: Path, marker: Path) -> Path:
    payload = pickle.dumps(Payload(marker))
    return write_tar(tmp_path / "hostile.tar", [
        ("a.png", png(10)), ("a.pyd", payload), ("a.pickle", payload), ("a.pth", payload), ("a.cls", b"3"),
        ("b.png", png(200)), ("b.pickle", payload),
        ("/abs/c.png", png(30)),
        ("../d.png", png(40)),
        ("e/../../f.png", png(50)),
    ])


def test_the_payload_is_real(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))  # what webdataset's default .pyd decoder would do
    assert marker.exists()


def test_generate_never_unpickles_and_quarantines_unsafe_names(tmp_path: Path, dask_client: Any) -> None:
    marker = tmp_path / "pwned"
    shard = hostile_tar(tmp_path, marker)
    out = tmp_path / "out"
    before = files_below(tmp_path, out)
    recipe = recipe_dict(out, input_path=shard, input={"reader": "webdataset", "options": {}}, ops=OPS)
    summary = generate(recipe, client=dask_client, progress=False)
    assert not marker.exists()
    assert (summary.inputs, summary.images_written, summary.quarantined) == (5, 2, 3)
    records = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == ["hostile.tar:/abs/c", "hostile.tar:../d",
                                              "hostile.tar:e/../../f"]
    assert all("unsafe member name" in r["reason"] for r in records)
    manifest = read_manifest(out)
    assert [k for s in manifest["shards"] for k in s["keys"]] == ["a", "b"]
    with tarfile.open(out / manifest["shards"][0]["path"]) as tar:
        assert tar.getnames() == ["a.json", "a.png", "b.json", "b.png"]
        assert json.loads(tar.extractfile("a.json").read())["label"] == 3
    assert files_below(tmp_path, out) == before  # nothing new outside --out (no /abs, no ../d)


def test_stream_never_unpickles_and_rejects_unsafe_names(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    shard = hostile_tar(tmp_path, marker)
    with pytest.raises(BadInputError, match="unsafe member name"):
        list(augforge.stream(shard, decode="uint8"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = list(augforge.stream(shard, decode="uint8", on_error="skip"))
    assert [s["key"] for s in samples] == ["a", "b"] and samples[0]["label"] == 3
    assert sum("unsafe member name" in str(w.message) for w in caught) == 3
    assert not marker.exists()


# --- output paths ----------------------------------------------------------------------------------


def test_output_path_refuses_escapes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "contrast").symlink_to(outside, target_is_directory=True)
    assert output_path(out, "fog/1/shard-000000.tar") == out.resolve() / "fog/1/shard-000000.tar"
    for rel in ("../x/shard.tar", "/tmp/shard.tar", "fog/../../shard.tar"):
        with pytest.raises(AugforgeError, match=r"absolute or with '\.\.'"):
            output_path(out, rel)
    with pytest.raises(AugforgeError, match="outside the output directory"):
        output_path(out, "contrast/1/shard-000000.tar")
    assert not any(outside.iterdir())


def test_symlink_inside_out_is_not_followed_out(tmp_path: Path, dask_client: Any) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "contrast").symlink_to(outside, target_is_directory=True)
    recipe = recipe_dict(out, ops=OPS, output={"samples_per_shard": 100})
    with pytest.raises(ShardFailedError, match="outside the output directory"):
        generate(recipe, client=dask_client, progress=False)
    assert not any(outside.rglob("*"))


class _HostileKeys:
    """A reader whose keys try to leave the shard (ours never do: they are sanitized)."""

    kind = "hostile"
    keys = ("../../etc/x", "/abs", "a.b", "fine/key")

    def __len__(self) -> int:
        return len(self.keys)

    def key(self, index: int) -> str:
        return self.keys[index]

    def read(self, index: int) -> Sample:
        return Sample(key=self.keys[index], image=np.zeros((8, 8, 3), np.uint8), source=f"row{index}")


def test_unsafe_keys_from_a_reader_are_quarantined() -> None:
    rows = _read_rows(_HostileKeys(), 0, 4)
    assert [r[1].key if r[1] is not None else None for r in rows] == [None, None, None, "fine/key"]
    assert all("unsafe sample key" in r[2]["reason"] for r in rows[:3])


def test_imagenet_c_export_stays_inside_its_folder(tmp_path: Path, dask_client: Any) -> None:
    data = tmp_path / "in"
    for cls in ("cat", "dog"):
        (data / cls).mkdir(parents=True)
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(data / cls / "x.png")
    out = tmp_path / "out"
    recipe = recipe_dict(out, input_path=data, input={"options": {}}, ops=OPS)
    generate(recipe, client=dask_client, progress=False)
    entry = read_manifest(out)["shards"][0]
    dest = tmp_path / "export"
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "contrast" / "1").mkdir(parents=True)
    (dest / "contrast" / "1" / "cat").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ExportError, match="outside"):
        export_jpeg_shard(JpegJob(str(out), entry, str(dest), by_source=True))
    assert not any(outside.iterdir())
    with pytest.raises(ExportError, match="unsafe file name"):  # a tampered source never escapes
        released_name({"key": "k", "source": "../../etc/cron.d/x"}, by_source=True)


# --- pipe: and other URLs --------------------------------------------------------------------------


def tar_recipe(folder: Path) -> Path:
    path = folder / "tars.yaml"
    path.write_text("input: {reader: webdataset}\nops: [contrast@1]\nexecution: {workers: 1}\n")
    return path


def test_pipe_and_urls_are_refused_by_default(tmp_path: Path, dask_client: Any) -> None:
    marker = tmp_path / "pwned"
    url = f"pipe:touch '{marker}'"
    for attempt in (lambda: WebDatasetReader(url), lambda: open_reader("webdataset", url),
                    lambda: augforge.stream(url), lambda: augforge.stream([url, url])):
        with pytest.raises(AugforgeError, match="refused unless explicitly allowed"):
            attempt()
    for other in ("http://example.com/a.tar", "s3://bucket/a.tar", "https://x/{0..1}.tar"):
        with pytest.raises(AugforgeError, match="URLs are not opened"):
            WebDatasetReader(other, allow_pipe=True)
        with pytest.raises(AugforgeError, match="URLs are not opened"):
            augforge.stream(other, allow_pipe=True)
    recipe = recipe_dict(tmp_path / "out", input_path=url, input={"reader": "webdataset", "options": {}},
                         ops=OPS)
    with pytest.raises(RecipeError, match="refused unless explicitly allowed"):
        generate(recipe, client=dask_client, progress=False)
    result = CliRunner().invoke(app, ["generate", str(tar_recipe(tmp_path)), "--input", url,
                                      "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "refused unless explicitly allowed" in result.output
    assert not marker.exists()


def test_pipe_works_when_allowed(tmp_path: Path) -> None:
    shard = write_tar(tmp_path / "clean-000.tar", [("a.png", png(10)), ("a.cls", b"1"),
                                                   ("b.png", png(99)), ("b.cls", b"2")])
    marker = tmp_path / "ran"
    url = f"pipe:touch '{marker}' && cat '{shard}'"
    reader = WebDatasetReader(url, allow_pipe=True)
    local = WebDatasetReader(shard)
    assert not marker.exists()  # construction runs nothing; the first read does
    assert [reader.read(i).label for i in range(len(reader))] == [1, 2] and marker.exists()
    assert [reader.key(i) for i in range(2)] == [local.key(i) for i in range(2)] == ["a", "b"]
    np.testing.assert_array_equal(reader.read(1).image, local.read(1).image)
    assert reader.read(0).source == "clean-000.tar:a.png"  # named after the shard the command reads
    marker.unlink()
    streamed = list(augforge.stream(url, decode="uint8", allow_pipe=True))
    assert [(s["key"], s["label"]) for s in streamed] == [("a", 1), ("b", 2)] and marker.exists()
    with pytest.raises(AugforgeError, match="exited with status 3"):
        len(WebDatasetReader("pipe:exit 3", allow_pipe=True))
    with pytest.raises(AugforgeError, match="exited with status 3"):
        list(augforge.stream(f"pipe:cat '{shard}'; exit 3", decode="uint8", allow_pipe=True))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(tar_recipe(tmp_path)), "--input", f"pipe:cat '{shard}'",
                                      "--out", str(out), "--allow-pipe"])
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest["input"]["path"] == f"pipe:cat '{shard}'"
    assert manifest["recipe"]["input"]["options"] == {"allow_pipe": True}
    assert [k for s in manifest["shards"] for k in s["keys"]] == ["a", "b"]


@pytest.mark.timeout(60)
def test_pipe_with_a_noisy_stderr_does_not_block(tmp_path: Path) -> None:
    """200 kB on stderr (more than a pipe holds) before the tar: with stderr in a pipe nobody reads
    while stdout is read, the command blocks on that write and the stream never ends."""
    shard = write_tar(tmp_path / "clean-000.tar", [("a.png", png(10)), ("a.cls", b"1")])
    noise = "head -c 200000 /dev/zero | tr '\\0' x >&2"
    streamed = list(augforge.stream(f"pipe:{noise}; cat '{shard}'", decode="uint8", allow_pipe=True))
    assert [(s["key"], s["label"]) for s in streamed] == [("a", 1)]
    assert len(WebDatasetReader(f"pipe:{noise}; cat '{shard}'", allow_pipe=True)) == 1
    with pytest.raises(AugforgeError, match=r"exited with status 3: x+ the end$"):
        list(augforge.stream(f"pipe:{noise}; echo ' the end' >&2; cat '{shard}'; exit 3", decode="uint8",
                             allow_pipe=True))

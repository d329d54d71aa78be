"""Recipes in mode random: one drawn (op, severity) per sample, written offline exactly as
`augforge.stream` yields epoch 0; weights, determinism, resume, quarantine and clear errors."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

import augforge
from augforge.core.errors import RecipeError
from augforge.core.tensors import to_uint8
from augforge.inspection import inspect_dataset
from augforge.pipelines import load_recipe
from augforge.pipelines.execute import generate
from augforge.pipelines.export import ExportError, export_dataset
from augforge.pipelines.plan import make_plan
from augforge.pipelines.recipe import apply_overrides
from augforge.pipelines.shards import ShardConfig, run_shard
from augforge.transforms.choice import RandomOpChoice
from tests.pipelines.conftest import REPO, SAMPLES, read_manifest, shard_shas

pytestmark = pytest.mark.timeout(180)

N_GOOD, BAD_KEY = 23, "k_bad"
OPS: list[Any] = [{"name": "gaussian_noise", "severities": [1, 2], "weight": 3},
                  "contrast@2", "pixelate@5", {"name": "jpeg_compression", "severity": 3, "weight": 0.5}]


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """3 clean WebDataset shards: 23 crops (19 of 32 x 32, 4 of 24 x 40) and one broken picture."""
    root = tmp_path_factory.mktemp("clean")
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.rglob("*.png"))]
    samples: list[dict[str, Any]] = []
    for i in range(N_GOOD):
        h, w = (24, 40) if i % 6 == 5 else (32, 32)
        pic = photos[i % len(photos)][6 * i:6 * i + h, 4 * i:4 * i + w].copy()
        samples.append({"__key__": f"k{i:03d}", "png": _png(pic), "cls": str(i % 4).encode()})
    samples.insert(11, {"__key__": BAD_KEY, "png": b"not a png at all", "cls": b"1"})
    for s in range(3):
        with wds.TarWriter(str(root / f"clean-{s:06d}.tar")) as writer:
            for sample in samples[8 * s:8 * s + 8]:
                writer.write(sample)
    return {"root": root, "pattern": str(root / "clean-{000000..000002}.tar"),
            "keys": [s["__key__"] for s in samples]}


def random_recipe(clean: dict[str, Any], out: Path | None, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mode": "random", "seed": 11, "p": 0.75, "ops": list(OPS),
        "input": {"reader": "webdataset", "path": clean["pattern"]},
        "output": {"dir": str(out) if out else None, "samples_per_shard": 5},
        "execution": {"workers": 2, "batch_size": 4},
    }
    data.update(changes)
    return data


def read_output(out: Path) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    """(key, pixels, json) of every sample, shards in manifest order, members in tar order."""
    rows: list[tuple[str, np.ndarray, dict[str, Any]]] = []
    for shard in read_manifest(out)["shards"]:
        members: dict[str, dict[str, bytes]] = {}
        with tarfile.open(out / shard["path"]) as tar:
            for member in tar:
                data = tar.extractfile(member)
                assert data is not None
                key, ext = member.name.rsplit(".", 1)
                members.setdefault(key, {})[ext] = data.read()
        for key, parts in members.items():
            pixels = np.asarray(Image.open(io.BytesIO(parts["png"])))
            rows.append((key, pixels, json.loads(parts["json"])))
    return rows


@pytest.fixture(scope="module")
def offline(clean: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, dask_client: Any) -> Path:
    out = tmp_path_factory.mktemp("random-out")
    generate(random_recipe(clean, out), progress=False, client=dask_client)
    return out


def test_every_sample_once_with_one_draw_in_input_order(clean, offline):
    rows = read_output(offline)
    keys = [k for k, _, _ in rows]
    assert keys == [k for k in clean["keys"] if k != BAD_KEY]  # input order, each once
    candidates = {("gaussian_noise", 1), ("gaussian_noise", 2), ("contrast", 2), ("pixelate", 5),
                  ("jpeg_compression", 3)}
    drawn = Counter((meta["op"], meta["severity"]) for _, _, meta in rows)
    assert set(drawn) - {(None, None)} <= candidates and drawn[(None, None)] > 0  # p = 0.75: some clean
    choice = RandomOpChoice(OPS, p=0.75, seed=11)
    for (key, _, meta), draw in zip(rows, choice.draw(keys), strict=True):
        assert meta["key"] == key and meta["seed"] == 11 and meta["label"] == int(key[1:]) % 4
        if draw is None:
            assert meta["op"] is None and meta["draw"] is None
        else:
            assert (meta["op"], meta["severity"], meta["draw"]["op_seed"]) == (draw.name, draw.severity,
                                                                                draw.seed)
            assert meta["preset"] == "imagenet" and meta["draw"]["epoch"] == 0
    assert next(m for _, _, m in rows if m["op"] == "contrast")["params"] == {"factor": 0.3}


def test_offline_pixels_equal_the_stream_epoch_0(clean, offline):
    recipe = random_recipe(clean, None)
    with pytest.warns(UserWarning, match=BAD_KEY):
        streamed = {s["key"]: s["image"] for s in augforge.stream(clean["pattern"], recipe, on_error="skip")}
    rows = read_output(offline)
    assert sorted(streamed) == sorted(k for k, _, _ in rows)
    changed = 0
    for key, pixels, meta in rows:
        expected = to_uint8(streamed[key][None], mode="truncate")[0]
        assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected), key
        changed += meta["op"] is not None
    assert changed >= 10
    # epoch 1 draws differently: the offline set is epoch 0, not any epoch
    with pytest.warns(UserWarning, match=BAD_KEY):
        epoch1 = {s["key"]: s["image"] for s in augforge.stream(clean["pattern"], recipe, epoch=1,
                                                                on_error="skip")}
    assert any(not np.array_equal(to_uint8(epoch1[k][None])[0], px) for k, px, m in rows if m["op"])


def test_draws_follow_the_weights() -> None:
    """Entry counts over 6000 keys against weights 3 : 1 : 1 : 0.5 (chi-square, 3 d.o.f.)."""
    choice = RandomOpChoice(OPS, seed=2)
    draws = choice.draw([f"img{i}" for i in range(6000)])
    counts = Counter(d.entry for d in draws if d is not None)
    expected = [6000 * w / 5.5 for w in (3, 1, 1, 0.5)]
    chi2 = sum((counts[i] - e) ** 2 / e for i, e in enumerate(expected))
    assert chi2 < 16.3, (counts, chi2)  # p = 0.001 critical value for 3 degrees of freedom
    levels = Counter(d.severity for d in draws if d is not None and d.entry == 0)
    assert abs(levels[1] - levels[2]) < 0.1 * (levels[1] + levels[2])  # severities: uniform
    coin = RandomOpChoice(OPS, p=0.3, seed=2).draw([f"img{i}" for i in range(2000)])
    assert abs(sum(d is not None for d in coin) - 600) < 70  # 4.5 sigma


def test_accounting_quarantine_and_inspect(clean, offline):
    manifest = read_manifest(offline)
    assert manifest["accounting"]["total"] == {"read": N_GOOD + 1, "written": N_GOOD, "quarantined": 1}
    assert [s["path"] for s in manifest["shards"]] == [f"random/shard-{i:06d}.tar" for i in range(5)]
    bad = [json.loads(line) for line in (offline / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["key"], r["stage"], r["index"]) for r in bad] == [(BAD_KEY, "read", 11)]
    report = inspect_dataset(offline)
    assert report.ok and report.groups == [{"op": "random", "severity": 0, "shards": 5, "samples": N_GOOD}]
    with pytest.raises(ExportError, match="mode 'random'"):
        export_dataset(offline, "imagenet-c")


def test_same_bytes_in_one_process_with_batch_size_1(clean, offline, tmp_path):
    """Every shard rebuilt sequentially in this process, one picture per batch: identical bytes."""
    recipe = load_recipe(random_recipe(clean, tmp_path))
    plan = make_plan(recipe, N_GOOD + 1, clean["pattern"])
    cfg = ShardConfig(out_dir=str(tmp_path), reader="webdataset", path=clean["pattern"], options={},
                      seed=11, batch_size=1, plan_fingerprint=plan.fingerprint)
    results = [run_shard(task, cfg) for task in plan.tasks]
    assert {r.path: r.sha256 for r in results} == shard_shas(offline)


def test_resume_rebuilds_only_the_deleted_shard(clean, tmp_path, dask_client):
    out = tmp_path / "out"
    generate(random_recipe(clean, out), progress=False, client=dask_client)
    before = shard_shas(out)
    (out / "random" / "shard-000002.tar").unlink()
    summary = generate(random_recipe(clean, out), progress=False, client=dask_client)
    assert (summary.built, summary.resumed, summary.quarantined) == (1, 4, 1)
    assert shard_shas(out) == before
    other = generate(random_recipe(clean, out, seed=12), progress=False, client=dask_client)
    assert other.built == 5 and shard_shas(out) != before  # another seed: other draws, all rebuilt


def test_shipped_random_recipe_runs_on_the_samples(tmp_path, dask_client):
    recipe = load_recipe(REPO / "pipelines" / "random-train.yaml")
    assert recipe.mode == "random" and recipe.p == 0.9
    small = recipe.model_dump()
    small["input"]["options"] = {"resize": 48, "center_crop": 40}
    summary = generate(apply_overrides(load_recipe(small), input_path="augforge:samples", out=tmp_path),
                       progress=False, client=dask_client)
    n = len(list(SAMPLES.rglob("*.png")))
    assert (summary.images_written, summary.quarantined) == (n, 0)
    names = {o.name for o in recipe.ops}
    assert {m["op"] for _, _, m in read_output(tmp_path)} <= names | {None}


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"output": {"formats": ["imagenet-c"]}}, "released benchmark layouts need every op x severity"),
    ({"output": {"formats": ["cifar10-c"]}}, "mode 'random' writes one draw per sample"),
    ({"mode": "grid", "ops": [{"name": "fog", "weight": 2}]}, "weight (fog) is for mode 'random'"),
    ({"mode": "grid", "ops": ["fog"], "p": 0.5}, "p: 0.5 is for mode 'random'"),
    ({"ops": [{"name": "fog", "weight": 0}]}, "ops[0].weight: Input should be greater than 0"),
    ({"ops": [{"name": "fog", "weight": float("inf")}]}, "ops[0].weight: Input should be a finite number"),
    ({"p": 1.5}, "p: Input should be less than or equal to 1"),
    ({"ops": ["fog@7"]}, "fog: severity 7 is not defined"),
])
def test_invalid_random_recipes_are_refused_clearly(clean, changes, fragment):
    with pytest.raises(RecipeError) as caught:
        load_recipe(random_recipe(clean, None, **changes))
    assert fragment in str(caught.value)


def test_plan_and_fingerprints_cover_every_candidate(clean, tmp_path):
    base = load_recipe(random_recipe(clean, tmp_path))
    plan = make_plan(base, 24)
    assert plan.groups == [("random", 0)] and [(t.start, t.stop) for t in plan.tasks] == [
        (0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]
    assert all(t.choices and len(t.choices) == 4 and t.p == 0.75 for t in plan.tasks)
    variants = [random_recipe(clean, tmp_path, ops=[*OPS[:3], {**OPS[3], "weight": 0.6}]),
                random_recipe(clean, tmp_path, ops=[*OPS[:3], {**OPS[3], "params": {"quality": 40}}]),
                random_recipe(clean, tmp_path, p=0.7), random_recipe(clean, tmp_path, seed=3)]
    prints = {make_plan(load_recipe(v), 24).tasks[0].fingerprint for v in variants}
    assert len(prints | {plan.tasks[0].fingerprint}) == 5

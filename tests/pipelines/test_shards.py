"""The worker function in-process (no Dask): JPEG shards, quantization, sidecar verification,
and the accounting check that refuses numbers which do not add up."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from augforge.core.registry import build_op
from augforge.core.tensors import to_float, to_uint8
from augforge.datasets.folder import ImageFolderReader
from augforge.datasets.readers import open_reader
from augforge.pipelines import AccountingError, ShardConfig, load_recipe, make_plan, run_shard, verify_shard
from augforge.pipelines.fsio import file_sha256
from augforge.pipelines.manifest import accounting, merge_quarantine
from augforge.pipelines.shards import SampleJson, dumps_sorted
from tests.pipelines.conftest import SAMPLES, SMALL, recipe_dict

pytestmark = pytest.mark.timeout(60)


def plan_and_config(tmp_path: Path, **output: object):
    recipe = load_recipe(recipe_dict(tmp_path, output={"samples_per_shard": 4, **output},
                                     ops=["brightness@3", "gaussian_noise@2"]))
    plan = make_plan(recipe, 10, str(SAMPLES))
    out = recipe.output
    cfg = ShardConfig(out_dir=str(tmp_path), reader="folder", path=str(SAMPLES), options=dict(SMALL), seed=7,
                      encoding=out.encoding, jpeg_quality=out.jpeg_quality, quantize=out.quantize,
                      batch_size=3, plan_fingerprint=plan.fingerprint)
    return plan, cfg


def test_jpeg_shard_and_sidecar(tmp_path: Path) -> None:
    plan, cfg = plan_and_config(tmp_path, encoding="jpg", jpeg_quality=90)
    task = plan.tasks[1]  # brightness/3 rows 4..7
    result = run_shard(task, cfg)
    tar_path = tmp_path / task.path
    assert (result.path, result.count, result.resumed) == ("brightness/3/shard-000001.tar", 4, False)
    assert result.sha256 == file_sha256(tar_path) and result.size == tar_path.stat().st_size
    side = json.loads((tmp_path / (task.path + ".json")).read_text())
    assert {k: side[k] for k in ("sha256", "count", "keys", "quarantined", "fingerprint", "plan_fingerprint",
                                 "start", "stop")} == {
        "sha256": result.sha256, "count": 4, "keys": result.keys, "quarantined": [],
        "fingerprint": task.fingerprint, "plan_fingerprint": plan.fingerprint, "start": 4, "stop": 8}
    reader = open_reader("folder", str(SAMPLES), **SMALL)
    with tarfile.open(tar_path) as tar:
        names = [m.name for m in tar.getmembers()]
        assert names == [n for k in result.keys for n in (f"{k}.jpg", f"{k}.json")]
        for i, key in zip(range(4, 8), result.keys, strict=True):
            jpg = tar.extractfile(f"{key}.jpg").read()  # type: ignore[union-attr]
            stored = np.asarray(Image.open(io.BytesIO(jpg)), dtype=np.float64)
            want = to_uint8(build_op("brightness", 3)(to_float(reader.read(i).image)))[0].astype(np.float64)
            psnr = 10 * np.log10(255**2 / np.mean((stored - want) ** 2))
            assert 30 < psnr < 60  # a real q90 JPEG of the right picture: close, not lossless
    before = tar_path.read_bytes()
    assert run_shard(task, cfg).sha256 == result.sha256  # rebuilding gives the same bytes
    assert tar_path.read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_quantize_modes_differ_only_where_they_should(tmp_path: Path) -> None:
    plan, cfg = plan_and_config(tmp_path)
    task = plan.tasks[0]
    trunc = run_shard(task, cfg)
    with tarfile.open(tmp_path / task.path) as tar:
        a = [np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{k}.png").read()))) for k in trunc.keys]  # type: ignore[union-attr]
    rounded = run_shard(task, replace(cfg, quantize="round"))
    with tarfile.open(tmp_path / task.path) as tar:
        b = [np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{k}.png").read()))) for k in rounded.keys]  # type: ignore[union-attr]
    diff = np.stack(b).astype(int) - np.stack(a).astype(int)
    assert set(np.unique(diff)) <= {0, 1} and diff.any()  # rounding moves some values up by one


def test_verify_shard_detects_every_kind_of_damage(tmp_path: Path) -> None:
    plan, cfg = plan_and_config(tmp_path)
    task = plan.tasks[0]
    assert verify_shard(tmp_path, task) == (None, "missing")
    good = run_shard(task, cfg)
    res, why = verify_shard(tmp_path, task)
    assert why == "" and res is not None and res.resumed
    assert (res.sha256, res.keys, res.count) == (good.sha256, good.keys, good.count)

    tar, side = tmp_path / task.path, tmp_path / (task.path + ".json")
    original_side = side.read_bytes()
    record = json.loads(original_side)
    side.write_text(json.dumps({**record, "fingerprint": "0" * 64}))
    assert verify_shard(tmp_path, task)[1] == "made by a different recipe or version (fingerprint differs)"
    side.write_text(json.dumps({**record, "count": 3}))
    assert verify_shard(tmp_path, task)[1] == "sidecar counts do not add up"
    side.write_text("{not json")
    assert verify_shard(tmp_path, task)[1].startswith("unreadable sidecar record")
    side.unlink()
    assert verify_shard(tmp_path, task)[1] == "no sidecar record"
    side.write_bytes(original_side)
    data = tar.read_bytes()
    tar.write_bytes(data[:-512])
    assert verify_shard(tmp_path, task)[1] == "size differs from the sidecar record"
    tar.write_bytes(data[:1500] + bytes([data[1500] ^ 1]) + data[1501:])
    assert verify_shard(tmp_path, task)[1] == "sha256 differs from the sidecar record"
    # the same files do not pass for another task (other range / other fingerprint)
    tar.write_bytes(data)
    assert verify_shard(tmp_path, task)[0] is not None
    assert verify_shard(tmp_path, replace(plan.tasks[1], path=task.path))[0] is None


def test_accounting_refuses_numbers_that_do_not_add_up(tmp_path: Path) -> None:
    plan, cfg = plan_and_config(tmp_path)
    results = {t.path: run_shard(t, cfg) for t in plan.tasks}
    counts = accounting(plan, results)
    assert counts["total"] == {"read": 20, "written": 20, "quarantined": 0}
    assert [(g["op"], g["severity"], g["read"]) for g in counts["groups"]] == [
        ("brightness", 3, 10), ("gaussian_noise", 2, 10)]

    short = dict(results)
    bad = short[plan.tasks[2].path]
    short[bad.path] = replace(bad, count=bad.count - 1, keys=bad.keys[:-1])
    with pytest.raises(AccountingError, match=r"brightness/3: read 10 != written 9 \+ quarantined 0"):
        accounting(plan, short)
    missing = {k: v for k, v in results.items() if k != plan.tasks[0].path}
    with pytest.raises(AccountingError, match="1 planned shard"):
        accounting(plan, missing)
    # a quarantined row balances the books, and is merged to one record across shards
    rec = {"index": 9, "key": "scenes/retina", "source": "scenes/retina.png", "reason": "bad",
           "stage": "read"}
    fixed = dict(short)
    fixed[bad.path] = replace(short[bad.path], quarantined=[rec])
    other = plan.tasks[5]
    fixed[other.path] = replace(results[other.path], count=results[other.path].count - 1, quarantined=[rec])
    assert accounting(plan, fixed)["total"] == {"read": 20, "written": 18, "quarantined": 2}
    assert merge_quarantine(fixed.values()) == [{**rec, "tasks": 2}]


def test_sample_json_template_equals_full_encoding() -> None:
    params = {"sigma": np.float64(0.08), "zooms": (1.0, 1.01), "nested": {"b": 1, "a": [np.int64(2)]}}
    encode = SampleJson("fog", 3, "cifar", 7, params)
    for key, label, source in [("00000001", 3, "test_batch[1]"), ("café/x", None, "n01/ü.JPEG"),
                               ("k", np.int64(4), None), ('q"uote\\', True, "a\nb\x00")]:
        meta = {"key": key, "label": label, "source": source, "op": "fog", "severity": 3, "preset": "cifar",
                "seed": 7, "params": params}
        assert encode(key, label, source) == dumps_sorted(meta)


def test_inputs_are_decoded_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan, cfg = plan_and_config(tmp_path)
    calls: list[int] = []
    original = ImageFolderReader.read

    def counting_read(self: ImageFolderReader, index: int) -> Any:
        calls.append(index)
        return original(self, index)

    monkeypatch.setattr(ImageFolderReader, "read", counting_read)
    first_range = [t for t in plan.tasks if t.start == 0]  # brightness/3 and gaussian_noise/2, rows 0-3
    cached = [run_shard(t, replace(cfg, run_id="run-a")) for t in first_range]
    assert calls == [0, 1, 2, 3]  # the second op reuses the decoded rows
    run_shard(first_range[0], replace(cfg, run_id="run-b"))  # a new run reads its inputs again
    assert calls == [0, 1, 2, 3] * 2
    uncached = [run_shard(t, cfg) for t in first_range]  # no run id: never cached
    assert calls == [0, 1, 2, 3] * 4
    assert [r.sha256 for r in cached] == [r.sha256 for r in uncached]

"""generate(): shard contents, determinism across workers and batch sizes, quarantine, verification
of existing shards (tampering, missing sidecars, stale temporaries, other seeds)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from augforge.core.registry import build_op
from augforge.core.tensors import to_float, to_uint8
from augforge.datasets.readers import open_reader
from augforge.pipelines import ShardFailedError, generate, load_recipe
from augforge.pipelines.execute import rebuild_report
from augforge.pipelines.shards import SHARD_MTIME
from tests.pipelines.conftest import (
    GROUPS,
    N_SAMPLES,
    SAMPLES,
    SMALL,
    read_manifest,
    recipe_dict,
    shard_shas,
    small_pictures,
)

pytestmark = pytest.mark.timeout(120)


def expected_pixels(reader: Any, index: int, op: str, severity: int, seed: int) -> np.ndarray:
    """What the pipeline must store for row `index`: the op applied to that one sample."""
    sample = reader.read(index)
    out = build_op(op, severity)(to_float(sample.image), seed, keys=[sample.key])
    return to_uint8(out)[0]


def test_shard_contents_match_the_op(tmp_path: Path, dask_client: Any) -> None:
    out = tmp_path / "out"
    summary = generate(recipe_dict(out), client=dask_client, progress=False)
    assert (summary.shards, summary.groups, summary.inputs) == (4 * GROUPS, GROUPS, N_SAMPLES)
    assert (summary.built, summary.resumed, summary.quarantined) == (4 * GROUPS, 0, 0)
    assert summary.images_written == summary.images_built == N_SAMPLES * GROUPS
    manifest = read_manifest(out)
    reader = open_reader("folder", str(SAMPLES), **SMALL)
    checked = 0
    for entry in manifest["shards"]:
        op, level = entry["op"], entry["severity"]
        assert entry["path"] == f"{op}/{level}/shard-{entry['shard']:06d}.tar"
        with tarfile.open(out / entry["path"]) as tar:
            members = tar.getmembers()
            assert all(m.mtime == SHARD_MTIME and m.uname == "augforge" for m in members)
            names = [m.name for m in members]
            keys = [reader.key(i) for i in range(entry["start"], entry["stop"])]
            assert entry["keys"] == keys and entry["count"] == len(keys)
            assert names == [n for k in keys for n in (f"{k}.json", f"{k}.png")]  # one json per sample
            for index, key in zip(range(entry["start"], entry["stop"]), keys, strict=True):
                meta = json.loads(tar.extractfile(f"{key}.json").read())  # type: ignore[union-attr]
                sample = reader.read(index)
                assert meta == {
                    "key": key, "label": sample.label, "source": sample.source, "op": op, "severity": level,
                    "preset": "imagenet", "seed": 7,
                    "params": json.loads(json.dumps(build_op(op, level).params)),
                }
                stored = np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{key}.png").read())))  # type: ignore[union-attr]
                np.testing.assert_array_equal(stored, expected_pixels(reader, index, op, level, 7))
                checked += 1
    assert checked == N_SAMPLES * GROUPS
    acc = manifest["accounting"]
    assert acc["total"] == {"read": N_SAMPLES * GROUPS, "written": N_SAMPLES * GROUPS, "quarantined": 0}
    assert {(g["op"], g["severity"]) for g in acc["groups"]} == {
        ("gaussian_noise", 1), ("gaussian_noise", 2), ("impulse_noise", 3), ("contrast", 2),
        ("jpeg_compression", 4), ("pixelate", 5)}
    assert set(manifest["versions"]) >= {"augforge", "torch", "python", "dask", "webdataset", "numpy",
                                         "pillow"}
    assert manifest["input"] == {"reader": "folder", "path": str(SAMPLES), "options": SMALL,
                                 "count": N_SAMPLES}
    assert load_recipe(manifest["recipe"]).model_dump() == manifest["recipe"]
    assert (out / "quarantine.jsonl").read_text() == ""
    # the shards are ordinary WebDataset shards
    import webdataset as wds

    first = out / manifest["shards"][0]["path"]
    loaded = list(wds.WebDataset(str(first), shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in loaded] == manifest["shards"][0]["keys"]
    assert loaded[0]["png"].shape == (48, 48, 3) and loaded[0]["json"]["op"] == "gaussian_noise"


def make_dirty_folder(root: Path) -> Path:
    """Eight good 48x48 pictures plus a truncated JPEG, a zero-byte PNG and two 5x5 pictures
    (readable, but below the ops' 8x8 minimum: they fail together in one batch)."""
    data = small_pictures(root / "dirty", 8)
    buf = io.BytesIO()
    Image.open(SAMPLES / "animals" / "chelsea.png").convert("RGB").save(buf, "JPEG", quality=90)
    (data / "broken.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    (data / "empty.png").write_bytes(b"")
    for name in ("tiny_a.png", "tiny_b.png"):
        Image.new("RGB", (5, 5), (200, 10, 10)).save(data / name)
    return data


def test_bad_inputs_are_quarantined_and_accounted(tmp_path: Path, dask_client: Any) -> None:
    data = make_dirty_folder(tmp_path)
    out = tmp_path / "out"
    recipe = recipe_dict(out, input_path=data, input={"options": {}}, output={"samples_per_shard": 6})
    summary = generate(recipe, client=dask_client, progress=False)
    n, good = 12, 8
    assert summary.inputs == n and summary.quarantined == 4
    assert summary.images_written == good * GROUPS
    records = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    # rows in the reader's sorted order: broken, empty, pic_000..pic_007, tiny_a, tiny_b
    assert [(r["index"], r["key"], r["stage"]) for r in records] == [
        (0, "broken", "read"), (1, "empty", "read"), (10, "tiny_a", "op"), (11, "tiny_b", "op")]
    for rec, name in zip(records, ["broken.jpg", "empty.png", "tiny_a.png", "tiny_b.png"], strict=True):
        assert rec["source"] in (name, rec["key"]) and rec["tasks"] == GROUPS
    assert "broken.jpg" in records[0]["reason"] and "truncat" in records[0]["reason"].lower()
    assert "empty.png" in records[1]["reason"] and "zero-byte" in records[1]["reason"]
    assert "at least 8x8" in records[2]["reason"] and "5x5" in records[3]["reason"]
    manifest = read_manifest(out)
    assert manifest["quarantine"] == {"file": "quarantine.jsonl", "inputs": 4}
    for group in manifest["accounting"]["groups"]:
        assert (group["read"], group["written"], group["quarantined"]) == (n, good, 4)
    assert manifest["accounting"]["total"] == {"read": n * GROUPS, "written": good * GROUPS,
                                               "quarantined": 4 * GROUPS}
    stored_keys = {k for s in manifest["shards"] for k in s["keys"]}
    assert stored_keys == {f"pic_{i:03d}" for i in range(good)}
    assert sum(s["quarantined"] for s in manifest["shards"]) == 4 * GROUPS


def test_failed_shards_raise_and_finished_ones_resume(tmp_path: Path, dask_client: Any) -> None:
    out = tmp_path / "out"
    (out / "contrast").mkdir(parents=True)
    (out / "contrast" / "2").write_text("a file where a shard folder must go")
    recipe = recipe_dict(out)
    with pytest.raises(ShardFailedError, match=r"4 of 24 shard\(s\) failed; first contrast/2/") as info:
        generate(recipe, client=dask_client, progress=False)
    assert "rerun the same command to resume" in str(info.value)
    assert not (out / "manifest.json").exists()
    assert len(list(out.glob("*/*/shard-*.tar"))) == 20
    (out / "contrast" / "2").unlink()
    again = generate(recipe, client=dask_client, progress=False)
    assert (again.resumed, again.built) == (20, 4)
    assert (out / "manifest.json").exists()


def test_existing_shards_are_verified_and_bad_ones_rebuilt(tmp_path: Path, dask_client: Any) -> None:
    out = tmp_path / "out"
    recipe = recipe_dict(out)
    generate(recipe, client=dask_client, progress=False)
    before = shard_shas(out)
    stats = {p: (out / p).stat() for p in before}

    tampered = out / "contrast/2/shard-000001.tar"
    raw = bytearray(tampered.read_bytes())
    raw[2000] ^= 0xFF  # same size, different bytes
    tampered.write_bytes(bytes(raw))
    no_sidecar = out / "pixelate/5/shard-000003.tar"
    Path(str(no_sidecar) + ".json").unlink()
    stale = out / "gaussian_noise/1/.shard-000000.tar.0123abcd.tmp"
    stale.write_bytes(b"left over by a killed run")

    again = generate(recipe, client=dask_client, progress=False)
    assert (again.built, again.rebuilt, again.resumed) == (2, 2, 4 * GROUPS - 2)
    assert again.images_built == 3 + 1  # shard 1 holds rows 3-5, shard 3 holds row 9
    assert shard_shas(out) == before
    assert not stale.exists()
    for path, st in stats.items():
        now = (out / path).stat()
        rewritten = path in ("contrast/2/shard-000001.tar", "pixelate/5/shard-000003.tar")
        assert ((now.st_ino, now.st_mtime_ns) != (st.st_ino, st.st_mtime_ns)) == rewritten, path

    # a complete output is verified without starting a cluster
    third = generate(recipe, progress=False)
    assert (third.built, third.resumed, third.dashboard) == (0, 4 * GROUPS, None)
    # another seed changes every shard's fingerprint: nothing is reused, and the screen says so
    # in one line per reason, not one per shard
    screen = io.StringIO()
    console = Console(file=screen, width=200, force_terminal=False)
    fourth = generate(recipe, seed=8, client=dask_client, progress=False, console=console)
    assert (fourth.built, fourth.resumed, fourth.rebuilt) == (4 * GROUPS, 0, 4 * GROUPS)
    rebuild = [line for line in screen.getvalue().splitlines() if "rebuil" in line]
    assert rebuild == [
        "resume: 0 shard(s) verified and reused, 24 failed verification and will be rebuilt",
        "  rebuild 24 shard(s): made by a different recipe or version (fingerprint differs) (e.g. "
        "contrast/2/shard-000000.tar, contrast/2/shard-000001.tar, contrast/2/shard-000002.tar and 21 more)"]
    assert not set(shard_shas(out).values()) & set(before.values())


def test_rebuild_report_groups_reasons() -> None:
    invalid = {f"fog/{lv}/shard-{i:06d}.tar": "sha256 differs from the sidecar record" for lv in (1, 2)
               for i in range(3)}
    invalid["contrast/1/shard-000000.tar"] = "unreadable sidecar record (Expecting value: line 1 column 1)"
    invalid["contrast/1/shard-000001.tar"] = "unreadable sidecar record (Extra data: line 1 column 5)"
    assert rebuild_report(invalid, examples=2) == [
        "  rebuild 6 shard(s): sha256 differs from the sidecar record (e.g. fog/1/shard-000000.tar, "
        "fog/1/shard-000001.tar and 4 more)",
        "  rebuild 2 shard(s): unreadable sidecar record (e.g. contrast/1/shard-000000.tar, "
        "contrast/1/shard-000001.tar)",
    ]
    assert rebuild_report({}) == []

"""Determinism of generated datasets: the same recipe writes byte-identical shards with 1, 2 or 4
worker processes (and any batch size), and a sample's stored bytes do not depend on the shard size."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest

from augforge.pipelines import generate
from tests.pipelines.conftest import GROUPS, N_SAMPLES, byte_relevant, read_manifest, recipe_dict, shard_shas

pytestmark = pytest.mark.timeout(150)


def scale_to(client: Any, n: int) -> None:
    """Resize the shared LocalCluster to `n` worker processes and wait until exactly n are up."""
    import time

    client.cluster.scale(n)
    deadline = time.monotonic() + 60
    while len(client.scheduler_info()["workers"]) != n:
        assert time.monotonic() < deadline, f"the cluster did not reach {n} workers"
        time.sleep(0.05)


def test_one_two_and_four_workers_write_identical_bytes(tmp_path: Path, dask_client: Any) -> None:
    # mixed picture sizes (shorter side 48) exercise the same-size batching; the batch size differs per run
    mixed = {"input": {"options": {"resize": 48}}, "output": {"samples_per_shard": 4}}
    batch = {1: 8, 2: 3, 4: 1}
    try:
        for n in (2, 4, 1):  # the shared two-process cluster, grown to four, shrunk to one
            scale_to(dask_client, n)
            summary = generate(recipe_dict(tmp_path / f"w{n}", **mixed,
                                           execution={"workers": n, "batch_size": batch[n]}),
                               client=dask_client, progress=False)
            assert summary.built == 3 * GROUPS
            workers = dask_client.scheduler_info()["workers"].values()
            assert len(workers) == n and all(w["nthreads"] == 1 for w in workers)
    finally:
        scale_to(dask_client, 2)
    shas = shard_shas(tmp_path / "w1")
    assert len(shas) == 3 * GROUPS and len(set(shas.values())) == len(shas)
    reference = byte_relevant(read_manifest(tmp_path / "w1"))
    for n in (2, 4):
        assert shard_shas(tmp_path / f"w{n}") == shas, f"{n} workers"
        for path in shas:
            assert (tmp_path / f"w{n}" / path).read_bytes() == (tmp_path / "w1" / path).read_bytes(), path
        assert byte_relevant(read_manifest(tmp_path / f"w{n}")) == reference


def members(out: Path) -> dict[tuple[str, int, str], bytes]:
    """(op, severity, member name) -> member bytes, over every shard the manifest lists."""
    found: dict[tuple[str, int, str], bytes] = {}
    for entry in read_manifest(out)["shards"]:
        with tarfile.open(out / entry["path"]) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                name = (entry["op"], entry["severity"], member.name)
                assert name not in found, f"{name} stored twice"
                found[name] = data
    return found


@pytest.mark.parametrize("encoding", ["png", "jpg"])
def test_sample_bytes_do_not_depend_on_shard_size(tmp_path: Path, dask_client: Any, encoding: str) -> None:
    sizes = (1, 3, 1000) if encoding == "png" else (1, 1000)
    stored = {}
    for size in sizes:
        out = tmp_path / f"spp{size}"
        summary = generate(recipe_dict(out, output={"samples_per_shard": size, "encoding": encoding}),
                           client=dask_client, progress=False)
        assert summary.shards == GROUPS * -(-N_SAMPLES // size)
        stored[size] = members(out)
    first = stored[sizes[0]]
    assert len(first) == GROUPS * N_SAMPLES * 2  # <key>.<encoding> + <key>.json per sample
    assert sum(name.endswith(f".{encoding}") for _, _, name in first) == GROUPS * N_SAMPLES
    for size in sizes[1:]:
        assert stored[size].keys() == first.keys()
        differing = [name for name, data in first.items() if stored[size][name] != data]
        assert not differing, f"samples_per_shard={size}: {len(differing)} differ, e.g. {differing[:3]}"

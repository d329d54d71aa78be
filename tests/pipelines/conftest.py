"""Shared pieces of the pipeline tests: small recipes over the bundled samples, one LocalCluster."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "datasets" / "samples"
N_SAMPLES = len(list(SAMPLES.rglob("*.png")))
# Small pictures keep the tests fast; the ops and the shard format do not care about size.
SMALL = {"resize": 64, "center_crop": 48}
OPS = ["gaussian_noise@1-2", "impulse_noise@3", "contrast@2", "jpeg_compression@4", "pixelate@5"]
GROUPS = 6  # (op, severity) pairs in OPS


def recipe_dict(out: Path | None, input_path: Path | str = SAMPLES, **changes: Any) -> dict[str, Any]:
    """A grid recipe over `input_path`; keyword arguments replace top-level sections/fields."""
    data: dict[str, Any] = {
        "input": {"reader": "folder", "path": str(input_path), "options": dict(SMALL)},
        "ops": list(OPS),
        "seed": 7,
        "output": {"dir": str(out) if out else None, "encoding": "png", "samples_per_shard": 3},
        "execution": {"workers": 2, "batch_size": 4},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def small_pictures(folder: Path, count: int, side: int = 48) -> Path:
    """`count` distinct side x side RGB pictures cut from the samples, flat in `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = sorted(SAMPLES.rglob("*.png"))
    for i in range(count):
        with Image.open(paths[i % len(paths)]) as im:
            box = (8 * i, 4 * i, 8 * i + side, 4 * i + side)
            im.convert("RGB").crop(box).save(folder / f"pic_{i:03d}.png")
    return folder


def read_manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def shard_shas(out: Path) -> dict[str, str]:
    """path -> sha256 of every shard the manifest lists."""
    return {s["path"]: s["sha256"] for s in read_manifest(out)["shards"]}


def byte_relevant(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what legitimately differs between two runs of one recipe
    (timings, where it ran, where it was written)."""
    doc = json.loads(json.dumps(manifest))
    doc.pop("run")
    doc["recipe"].pop("execution")
    doc["recipe"]["output"].pop("dir")
    return doc


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """One two-process LocalCluster shared by the pipeline tests (passed as generate(client=))."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _tasks_running(dask_worker: Any) -> int:
    return len(dask_worker.state.executing) + len(dask_worker.state.long_running)


@pytest.fixture(autouse=True)
def _no_task_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Restart the shared cluster's workers when a test leaves a task running on them (a timeout or
    failure mid-run). Such a task keeps its worker's only thread after its future is released; the
    scheduler forgets it and queues later tasks behind it, so every later test on the shared client
    would hang until its own timeout (each worker runs one task at a time)."""
    client = request.getfixturevalue("dask_client") if "dask_client" in request.fixturenames else None
    yield
    if client is not None and any(client.run(_tasks_running).values()):
        client.restart()

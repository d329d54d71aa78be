"""generate() against a real Dask cluster started with the `dask scheduler` / `dask worker` CLI:
same shards as a LocalCluster run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from augforge.pipelines import generate
from tests.pipelines.conftest import byte_relevant, read_manifest, recipe_dict, shard_shas

pytestmark = pytest.mark.timeout(150)

DASK = Path(sys.executable).parent / "dask"


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process group we started (workers first), SIGKILL what is left after 15 s."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def cli_cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-thread workers as separate `dask` processes; yields the address."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed in finally
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
              "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("the dask scheduler did not start:\n" + (tmp_path / "cluster.log").read_text())
            time.sleep(0.1)
        for _ in range(2):
            start("worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--host", "127.0.0.1",
                  "--no-dashboard")
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        assert address == json.loads(scheduler_file.read_text())["address"]
        yield address
    finally:
        _stop(procs)
        log.close()


def test_remote_cluster_matches_local_cluster(tmp_path: Path, cli_cluster: str, dask_client: Any) -> None:
    remote, local = tmp_path / "remote", tmp_path / "local"
    screen = io.StringIO()
    console = Console(file=screen, width=120, force_terminal=False)
    summary = generate(recipe_dict(remote), scheduler=cli_cluster, console=console)  # with the progress bar
    assert summary.built == summary.shards > 0
    assert summary.dashboard is not None and summary.dashboard.startswith("http://127.0.0.1:")
    text = screen.getvalue()
    assert f"Dask dashboard: {summary.dashboard}" in text
    assert f"shards {'━' * 10}" in text and f"{summary.shards}/{summary.shards}" in text
    generate(recipe_dict(local), client=dask_client, progress=False)
    assert shard_shas(remote) == shard_shas(local)
    manifest = read_manifest(remote)
    assert manifest["run"]["scheduler"] == cli_cluster
    assert byte_relevant(manifest) == byte_relevant(read_manifest(local))

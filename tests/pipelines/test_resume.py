"""A run killed with SIGKILL mid-way resumes: finished shards are verified and reused untouched,
the rest is built, and every shard equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from augforge.pipelines import generate
from tests.pipelines.conftest import read_manifest, recipe_dict, shard_shas, small_pictures

pytestmark = pytest.mark.timeout(180)

RUNNER = ("import json, sys\nfrom augforge.pipelines import generate\n"
          "generate(json.loads(sys.argv[1]), progress=False)\n")
N_INPUTS = 20
OPS = ["gaussian_noise@1-5", "contrast@1-5"]
TOTAL = N_INPUTS * 10  # one sample per shard: many small tasks, so the kill lands mid-run


def kill_after_first_shard(recipe: dict[str, Any], out: Path, log: Path) -> None:
    """Run generate in a subprocess (its own process group) and SIGKILL the whole group as soon
    as the first shard has been renamed into place."""
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(recipe)], stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/*/shard-*.tar")):
            if proc.poll() is not None:
                pytest.fail(f"the run exited (status {proc.returncode}) before writing any shard:\n"
                            + log.read_text()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail("no shard appeared within 120 s:\n" + log.read_text()[-3000:])
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask worker processes
        proc.wait(timeout=30)


def test_killed_run_resumes_to_identical_shards(tmp_path: Path, dask_client: Any) -> None:
    data = small_pictures(tmp_path / "data", N_INPUTS)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    changes = {"ops": OPS, "input": {"options": {}}, "output": {"samples_per_shard": 1},
               "execution": {"workers": 1, "batch_size": 1}}
    kill_after_first_shard(recipe_dict(killed, input_path=data, **changes), killed, tmp_path / "run.log")

    present = sorted(p.relative_to(killed).as_posix() for p in killed.glob("*/*/shard-*.tar"))
    if (killed / "manifest.json").exists() or len(present) >= TOTAL:
        pytest.fail(f"the first run finished ({len(present)}/{TOTAL} shards) before the kill landed; "
                    "make the job larger so the kill interrupts it")
    assert present, "the kill was triggered by a shard, so at least one must be on disk"
    for rel in present:  # a renamed shard always has its sidecar (written first)
        assert (killed / (rel + ".json")).is_file(), rel
    stats = {rel: (killed / rel).stat() for rel in present}
    print(f"killed with {len(present)}/{TOTAL} shards done")

    summary = generate(recipe_dict(killed, input_path=data, **changes), client=dask_client, progress=False)
    assert (summary.resumed, summary.built, summary.rebuilt) == (len(present), TOTAL - len(present), 0)
    for rel, st in stats.items():  # reused as they were, not rewritten
        now = (killed / rel).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), rel
    assert not list(killed.rglob("*.tmp")), "temporary files of the killed run were left behind"
    assert read_manifest(killed)["run"]["resumed"] == len(present)

    generate(recipe_dict(reference, input_path=data, **changes), client=dask_client, progress=False)
    resumed_shas = shard_shas(killed)
    assert len(resumed_shas) == TOTAL
    assert resumed_shas == shard_shas(reference)

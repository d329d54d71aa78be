"""Clusters a run starts (pipelines/clusters.py): batch job scripts for slurm/pbs/lsf/sge checked line
by line, job submission through stand-in `sbatch`/`scancel` commands (nothing reaches a real batch
system), the GPU resource plumbing on CPU workers, local-cuda wiring, recipe validation, the CLI and
the README's cluster snippets."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import signal
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

from augforge.cli import app
from augforge.core.errors import AugforgeError, RecipeError
from augforge.pipelines import generate, load_recipe
from augforge.pipelines.clusters import (
    PLACEHOLDER_SCHEDULER,
    gpu_worker_options,
    job_script,
    jobqueue_options,
    local_cuda_options,
    start_cluster,
    task_resources,
    with_cluster,
)
from augforge.pipelines.recipe import ExecutionSpec
from tests.pipelines.conftest import read_manifest, recipe_dict, shard_shas

pytestmark = pytest.mark.timeout(120)

README = Path(__file__).resolve().parents[2] / "README.md"
PY = sys.executable
JOB = {"queue": "gpuq", "account": "proj1", "cores": 8, "memory": "32GiB",
       "job_extra_directives": ["--extra-flag"], "job_script_prologue": ["module load cuda/12"]}
# kind -> (walltime, the header lines the job must carry)
EXPECTED = {
    "slurm": ("02:00:00", ["#SBATCH -p gpuq", "#SBATCH -A proj1", "#SBATCH -n 1", "#SBATCH --cpus-per-task=8",
                           "#SBATCH --mem=32G", "#SBATCH -t 02:00:00", "#SBATCH --extra-flag"]),
    "pbs": ("02:00:00", ["#PBS -q gpuq", "#PBS -A proj1", "#PBS -l select=1:ncpus=8:mem=32GB",
                         "#PBS -l walltime=02:00:00", "#PBS --extra-flag"]),
    "lsf": ("02:00", ["#BSUB -q gpuq", '#BSUB -P "proj1"', "#BSUB -n 8", '#BSUB -R "span[hosts=1]"',
                      "#BSUB -M 34360", "#BSUB -W 02:00", "#BSUB --extra-flag"]),
    "sge": ("02:00:00", ["#$ -q gpuq", "#$ -P proj1", "#$ -l h_vmem=4G", "#$ -l h_rt=02:00:00",
                         "#$ -cwd", "#$ -j y", "#$ --extra-flag"]),
}


def execution(device: str = "cpu", **cluster: Any) -> ExecutionSpec:
    return ExecutionSpec.model_validate({"device": device, "cluster": cluster})


def worker_command(script: str) -> str:
    lines = [line for line in script.splitlines() if "distributed.cli.dask_worker" in line]
    assert len(lines) == 1, script
    return lines[0]


@pytest.fixture(autouse=True)
def lsf_units_mb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LSF memory units come from lsf.conf: pin them to MB so the -M line is known."""
    (tmp_path / "lsf.conf").write_text("LSF_UNIT_FOR_LIMITS=MB\n")
    monkeypatch.setenv("LSF_ENVDIR", str(tmp_path))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_job_script_directives_and_worker_command(kind: str) -> None:
    walltime, header = EXPECTED[kind]
    extra = {"resource_spec": "h_vmem=4G"} if kind == "sge" else {}
    script = job_script(execution(kind=kind, walltime=walltime, job_name="augf", **JOB, **extra))
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for line in header:
        assert line in lines, f"{line!r} missing from\n{script}"
    assert any(re.fullmatch(r"#(SBATCH -J|PBS -N|BSUB -J|\$ -N) augf", line) for line in lines), script
    command = worker_command(script)
    # prologue after the directives, before the worker starts
    assert lines.index("module load cuda/12") < lines.index(command)
    assert max(i for i, line in enumerate(lines) if line.startswith("#")) < lines.index("module load cuda/12")
    # default: one single-thread worker process per core, the job's memory split between them
    assert command.startswith(f"{PY} -m distributed.cli.dask_worker {PLACEHOLDER_SCHEDULER} ")
    assert " --nthreads 1 --memory-limit 4.00GiB --nworkers 8 --nanny" in command
    assert "--resources" not in command


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_cuda_jobs_run_one_gpu_worker_declaring_the_resource(kind: str) -> None:
    script = job_script(execution("cuda", kind=kind, cores=4, memory="16GiB",
                                  worker_extra_args=["--lifetime", "2h"]))
    command = worker_command(script)
    assert "--nworkers" not in command  # processes = 1: one worker (and one GPU) per job
    assert " --nthreads 4 --memory-limit 16.00GiB " in command
    assert command.endswith(" --lifetime 2h --resources GPU=1")


def test_processes_threads_and_options_pass_through() -> None:
    spec = execution(kind="slurm", cores=6, memory="12GB", processes=3, interface="ib0",
                     python="/opt/py/bin/python", local_directory="/scratch/$USER",
                     job_directives_skip=["--mem"])
    script = job_script(spec)
    command = worker_command(script)
    assert command.startswith("/opt/py/bin/python -m distributed.cli.dask_worker")
    assert " --nthreads 2 --memory-limit 3.73GiB --nworkers 3 " in command
    assert "--local-directory /scratch/$USER" in command and "--interface ib0" in command
    assert "#SBATCH --cpus-per-task=6" in script and "--mem" not in script.split("\n/opt")[0]


def test_dask_jobqueue_config_fills_what_the_recipe_leaves_out() -> None:
    with dask.config.set({"jobqueue.slurm.queue": "from-dask", "jobqueue.slurm.cores": 4,
                          "jobqueue.slurm.memory": "8GiB", "jobqueue.slurm.walltime": "09:00:00"}):
        script = job_script(execution(kind="slurm", walltime="01:00:00"))
    assert "#SBATCH -p from-dask" in script and "#SBATCH -t 01:00:00" in script  # the recipe wins
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH --mem=8G" in script
    assert "--nworkers 4" in worker_command(script)
    with pytest.raises(RecipeError, match="cores and memory"):
        job_script(execution(kind="pbs", queue="q"))


def test_recipe_rejects_bad_cluster_sections() -> None:
    def problem(cluster: Any, **execution_fields: Any) -> str:
        data = recipe_dict(None, execution={"cluster": cluster, **execution_fields})
        with pytest.raises(RecipeError) as info:
            load_recipe(data)
        return str(info.value)

    text = problem({"kind": "slurm", "partition": "gpu"})
    assert "execution.cluster: unknown key 'partition' (allowed: kind, queue, account, cores" in text
    assert "execution.cluster.adapt: unknown key 'max'" in problem({"kind": "slurm", "adapt": {"max": 3}})
    assert "execution.cluster.kind: Input should be 'slurm', 'pbs', 'lsf', 'sge' or 'local-cuda'" in problem(
        {"kind": "kubernetes"})
    walltime = yaml.safe_load("walltime: 12:00:00")["walltime"]  # YAML 1.1: sexagesimal 43200
    assert "walltime must be text such as '12:00:00' in quotes; got the number 43200" in problem(
        {"kind": "slurm", "walltime": walltime})
    assert "memory must be a size such as '32GB'" in problem({"kind": "pbs", "memory": "lots"})
    assert "queue: batch-job option(s), not used by kind 'local-cuda'" in problem(
        {"kind": "local-cuda", "queue": "q"}, device="cuda")
    assert "local-cuda' needs device 'cuda'" in problem({"kind": "local-cuda"})
    assert "devices applies to kind 'local-cuda'" in problem({"kind": "slurm", "devices": [0]})
    assert "resource_spec applies to pbs and sge" in problem({"kind": "lsf", "resource_spec": "x"})
    assert "either scale" in problem({"kind": "sge", "scale": 2, "adapt": {"maximum": 3}})
    assert "minimum (4) is above maximum (3)" in problem(
        {"kind": "sge", "adapt": {"minimum": 4, "maximum": 3}})
    assert "processes (9) is more than cores (8)" in problem({"kind": "slurm", "cores": 8, "processes": 9})
    assert "set processes to 1 (got 2)" in problem({"kind": "slurm", "processes": 2}, device="cuda")
    assert "either scheduler" in problem({"kind": "slurm"}, scheduler="tcp://h:8786")


def test_command_line_choices_merge_over_the_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dict(None, execution={"cluster": {"kind": "pbs", "queue": "short",
                                                                   "cores": 2}}))
    config = tmp_path / "site.yaml"
    config.write_text("queue: long\nmemory: 8GB\nwalltime: '04:00:00'\n")
    merged = with_cluster(recipe, "slurm", config).execution.cluster
    assert merged is not None
    assert (merged.kind, merged.queue, merged.cores, merged.memory, merged.walltime) == (
        "slurm", "long", 2, "8GB", "04:00:00")
    assert with_cluster(recipe, scheduler="tcp://h:1").execution.cluster is None
    assert with_cluster(recipe) is recipe
    config.write_text("kind: slurm\nqueue: [1\n")
    with pytest.raises(RecipeError, match="not valid"):
        with_cluster(recipe, config=config)
    config.write_text("- slurm\n")
    with pytest.raises(RecipeError, match="top level must be a mapping"):
        with_cluster(recipe, config=config)
    config.write_text("kind: slurm\nnodes: 3\n")
    with pytest.raises(RecipeError, match=r"execution.cluster: unknown key 'nodes'"):
        with_cluster(recipe, config=config)
    with pytest.raises(RecipeError, match="exclude each other"):
        with_cluster(recipe, "slurm", scheduler="tcp://h:1")


# --- submitting jobs through stand-in batch commands ---------------------------------------------

FAKE_SBATCH = """\
#!/bin/sh
# stand-in sbatch: keep the script; with FAKE_BATCH_RUN run it as its own process group
[ -n "$FAKE_BATCH_FAIL" ] && { echo "sbatch: error: invalid partition specified" >&2; exit 1; }
copy=$(mktemp "$FAKE_BATCH_DIR/job-XXXXXX")
cp "$1" "$copy"
if [ -n "$FAKE_BATCH_RUN" ]; then
  setsid /bin/bash "$copy" > "$copy.log" 2>&1 < /dev/null &
  echo "$!" >> "$FAKE_BATCH_DIR/started"
  echo "Submitted batch job $!"
else
  echo "Submitted batch job $$"
fi
"""
FAKE_SCANCEL = """\
#!/bin/sh
echo "$1" >> "$FAKE_BATCH_DIR/cancelled"
[ -n "$FAKE_BATCH_RUN" ] && kill -TERM -- "-$1" 2>/dev/null
exit 0
"""


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`sbatch`/`scancel` stand-ins first on PATH; yields the folder where submitted scripts land.
    A job process group the stand-in started that is still alive at the end is killed."""
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_BATCH_DIR", str(jobs))
    yield jobs
    started = jobs / "started"
    for pgid in started.read_text().split() if started.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pgid), signal.SIGKILL)


def submitted(jobs: Path) -> list[str]:
    return sorted(p.read_text() for p in jobs.glob("job-*") if not p.name.endswith(".log"))


def slurm_execution(**cluster: Any) -> ExecutionSpec:
    return execution(kind="slurm", cores=2, memory="4GiB", interface="lo",
                     scheduler_options={"dashboard_address": ":0"}, **cluster)


def test_constructing_submits_nothing_and_scripts_match(fake_slurm: Path) -> None:
    from dask_jobqueue import SLURMCluster

    spec = slurm_execution(queue="debug")
    with SLURMCluster(silence_logs=logging.ERROR, scheduler_options={"dashboard_address": ":0"},
                      **jobqueue_options(spec)) as cluster:
        time.sleep(0.5)
        assert submitted(fake_slurm) == []
        address = cluster.scheduler.address
        assert address.startswith("tcp://127.0.0.1:")
        assert cluster.job_script() == job_script(spec, scheduler=address)


def test_scale_submits_jobs_and_close_cancels_them(fake_slurm: Path) -> None:
    cluster = start_cluster(slurm_execution(queue="debug", scale=3), n_tasks=100)
    try:
        scripts = submitted(fake_slurm)
        assert len(scripts) == 3
        for i, script in enumerate(sorted(scripts, key=lambda s: re.findall(r"--name (\S+)", s)[0])):
            assert "#SBATCH -p debug" in script and "#SBATCH --mem=4G" in script
            command = worker_command(script)
            assert f"dask_worker {cluster.scheduler.address} --name SLURMCluster-{i} " in command
        job_ids = sorted(job.job_id for job in cluster.workers.values())
    finally:
        cluster.close()
    assert sorted((fake_slurm / "cancelled").read_text().split()) == job_ids


def test_default_job_count_follows_workers_and_tasks(fake_slurm: Path) -> None:
    spec = slurm_execution()  # 2 single-thread workers per job
    for workers, n_tasks, jobs in ((5, 100, 3), (5, 2, 1)):
        spec.workers = workers
        cluster = start_cluster(spec, n_tasks=n_tasks)
        cluster.close()
        assert len(submitted(fake_slurm)) == jobs
        for path in fake_slurm.glob("job-*"):
            path.unlink()


def test_adapt_submits_the_minimum(fake_slurm: Path) -> None:
    cluster = start_cluster(slurm_execution(adapt={"minimum": 1, "maximum": 4}), n_tasks=10)
    try:
        deadline = time.monotonic() + 15
        while not submitted(fake_slurm) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(submitted(fake_slurm)) == 1
    finally:
        cluster.close()


def test_submission_problems_are_clear(fake_slurm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BATCH_FAIL", "1")
    refused = r"(?s)submitting slurm worker jobs failed \(1 of 1\).*invalid partition"
    with pytest.raises(AugforgeError, match=refused):
        start_cluster(slurm_execution(), n_tasks=4)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AugforgeError, match="`bsub`, which is not on PATH"):
        start_cluster(execution(kind="lsf", cores=1, memory="1GB"), n_tasks=4)


def test_generate_on_slurm_jobs_matches_a_local_run(
    tmp_path: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch, dask_client: Any
) -> None:
    """The stand-in sbatch really runs the job script: its worker processes join the scheduler
    `generate` started, build the shards, and are cancelled when the run ends."""
    monkeypatch.setenv("FAKE_BATCH_RUN", "1")
    ops = ["gaussian_noise@1", "contrast@2"]
    cluster = {"kind": "slurm", "cores": 1, "memory": "2GiB", "interface": "lo", "walltime": "00:10:00",
               "scheduler_options": {"dashboard_address": ":0"}}
    screen = io.StringIO()
    remote = tmp_path / "slurm"
    summary = generate(recipe_dict(remote, ops=ops, execution={"workers": 1, "cluster": cluster}),
                       console=Console(file=screen, width=120, force_terminal=False))
    scripts = submitted(fake_slurm)
    assert len(scripts) == 1 and "#SBATCH -t 00:10:00" in scripts[0]
    assert summary.built == summary.shards > 0
    text = screen.getvalue()
    assert summary.dashboard and f"Dask dashboard: {summary.dashboard}" in text
    assert f"{summary.shards}/{summary.shards}" in text  # the progress bar followed the remote workers
    local = tmp_path / "local"
    generate(recipe_dict(local, ops=ops), client=dask_client, progress=False)
    assert shard_shas(remote) == shard_shas(local)
    assert read_manifest(remote)["recipe"]["execution"]["cluster"]["kind"] == "slurm"
    (job_id,) = (fake_slurm / "cancelled").read_text().split()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # scancel ended the job's process group
        try:
            os.killpg(int(job_id), 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(int(job_id), signal.SIGKILL)
        pytest.fail("the cancelled job's worker processes were still running")


# --- GPU resources, tested with CPU workers ------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_cluster() -> Iterator[Any]:
    """A scheduler with two in-process workers: 'cpu' (no resources) and 'gpu' (declares GPU=1)."""
    from distributed import Client, Scheduler, SpecCluster, Worker

    workers = {"cpu": {"cls": Worker, "options": {"nthreads": 1}},
               "gpu": {"cls": Worker, "options": {"nthreads": 1, "resources": {"GPU": 1}}}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(workers=workers, scheduler=scheduler, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def test_gpu_options() -> None:
    assert gpu_worker_options("cuda:1") == {"resources": {"GPU": 1}}
    assert gpu_worker_options("cpu") == {}


def test_gpu_tasks_land_only_on_gpu_workers(mixed_cluster: Any) -> None:
    from distributed import get_worker

    resources = task_resources(mixed_cluster, "cuda")
    assert resources == {"GPU": 1} and task_resources(mixed_cluster, "cpu") is None
    futures = mixed_cluster.map(lambda i: get_worker().name, range(12), resources=resources)
    names = mixed_cluster.gather(futures)
    assert set(names) == {"gpu"}


def test_generate_asks_for_the_gpu_resource(tmp_path: Path, mixed_cluster: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """generate() hands task_resources' answer to client.map: with a GPU device every shard task runs
    on the GPU worker (device cpu here, so the ops run on this machine; only the routing is faked)."""
    import augforge.pipelines.clusters as clusters

    asked: list[str] = []

    def cuda_resources(client: Any, device: str) -> dict[str, float] | None:
        asked.append(device)
        return {"GPU": 1}

    monkeypatch.setattr(clusters, "task_resources", cuda_resources)
    before = mixed_cluster.run(lambda dask_worker: dask_worker.state.executed_count)
    threads = torch.get_num_threads()  # the in-process workers set torch's threads for their tasks
    try:
        summary = generate(recipe_dict(tmp_path / "out", ops=["contrast@1", "contrast@3"]),
                           client=mixed_cluster, progress=False)
    finally:
        torch.set_num_threads(threads)
    after = mixed_cluster.run(lambda dask_worker: dask_worker.state.executed_count)
    info = mixed_cluster.scheduler_info()["workers"]
    ran = {info[addr]["name"]: after[addr] - before[addr] for addr in after}
    assert asked == ["cpu"] and summary.built == summary.shards
    assert ran == {"gpu": summary.shards, "cpu": 0}


def test_cuda_without_gpu_workers_is_refused(dask_client: Any) -> None:
    with pytest.raises(AugforgeError, match=r"none of the scheduler's 2 worker\(s\) declares .*GPU=1"):
        task_resources(dask_client, "cuda")


def test_local_cluster_workers_declare_the_gpu_on_cuda() -> None:
    from augforge.pipelines.execute import _connect

    recipe = load_recipe(recipe_dict(None, execution={"workers": 1, "device": "cuda"}))
    client, cluster = _connect(recipe, n_tasks=4)
    try:
        (worker,) = client.scheduler_info()["workers"].values()
        assert worker["resources"] == {"GPU": 1}
    finally:
        client.close()
        cluster.close()


def test_local_cuda_wiring(monkeypatch: pytest.MonkeyPatch) -> None:
    """One single-thread worker per listed GPU, each declaring GPU=1 (a stand-in dask_cuda module
    records what LocalCUDACluster gets and starts in-process CPU workers)."""
    from distributed import LocalCluster

    from augforge.pipelines.execute import _connect

    got: dict[str, Any] = {}

    class FakeLocalCUDACluster(LocalCluster):
        def __init__(self, CUDA_VISIBLE_DEVICES: list[int], n_workers: int | None = None, **kw: Any) -> None:
            got.update(kw, CUDA_VISIBLE_DEVICES=CUDA_VISIBLE_DEVICES, n_workers=n_workers)
            super().__init__(n_workers=n_workers or len(CUDA_VISIBLE_DEVICES), processes=False, **kw)

    fake = types.SimpleNamespace(LocalCUDACluster=FakeLocalCUDACluster)
    monkeypatch.setitem(sys.modules, "dask_cuda", fake)
    recipe = load_recipe(recipe_dict(None, execution={
        "workers": 5, "device": "cuda", "cluster": {"kind": "local-cuda", "devices": [2, 3]}}))
    client, cluster = _connect(recipe, n_tasks=4)
    try:
        assert got["CUDA_VISIBLE_DEVICES"] == [2, 3] and got["n_workers"] == 2  # workers capped to the GPUs
        assert got["threads_per_worker"] == 1
        workers = client.scheduler_info()["workers"].values()
        assert [w["resources"] for w in workers] == [{"GPU": 1}, {"GPU": 1}]
    finally:
        client.close()
        cluster.close()
    assert "CUDA_VISIBLE_DEVICES" not in local_cuda_options(execution("cuda", kind="local-cuda"))


def test_local_cuda_without_dask_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import fails as if not installed
    with pytest.raises(AugforgeError, match=r"needs dask-cuda.*pip install 'augforge\[gpu\]'"):
        start_cluster(execution("cuda", kind="local-cuda"), n_tasks=1)


# --- command line and README ---------------------------------------------------------------------

def test_cluster_script_command(tmp_path: Path) -> None:
    runner = CliRunner()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tmp_path / "out")))
    config = tmp_path / "pbs.yaml"
    config.write_text("queue: workq\ncores: 4\nmemory: 8GiB\naccount: astro\n")
    result = runner.invoke(app, ["cluster-script", str(recipe), "--cluster", "pbs", "--cluster-config",
                                 str(config)])
    assert result.exit_code == 0, result.output
    spec = with_cluster(load_recipe(recipe), "pbs", config)
    assert result.output == job_script(spec.execution)
    assert "#PBS -q workq\n#PBS -A astro\n#PBS -l select=1:ncpus=4:mem=8192MB\n" in result.output
    result = runner.invoke(app, ["cluster-script", str(recipe)])
    assert result.exit_code == 2 and "no batch cluster to show" in result.output
    result = runner.invoke(app, ["generate", str(recipe), "--scheduler", "tcp://h:1", "--cluster", "slurm"])
    assert result.exit_code == 2 and "exclude each other" in result.output


def readme_cluster_yaml() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Running on a cluster", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_readme_cluster_snippets_are_valid() -> None:
    """Each YAML block of the README's cluster section is an execution section (or, in the file
    passed to --cluster-config, a cluster section) that validates; the slurm one yields its script."""
    blocks = readme_cluster_yaml()
    assert len(blocks) >= 3
    kinds = set()
    for block in blocks:
        data = yaml.safe_load(block)
        execution_data = data.get("execution", {"cluster": data})
        if (execution_data.get("cluster") or {}).get("kind") == "local-cuda":
            assert execution_data["device"] == "cuda"
        recipe = load_recipe(recipe_dict(None, execution=execution_data))
        cluster = recipe.execution.cluster
        kinds.add(cluster.kind if cluster else "scheduler")
        if cluster is not None and cluster.kind == "slurm":
            script = job_script(recipe.execution)
            assert f"#SBATCH -p {cluster.queue}" in script and f"#SBATCH -t {cluster.walltime}" in script
    assert {"slurm", "local-cuda"} <= kinds
    assert "augforge cluster-script" in README.read_text(encoding="utf-8")

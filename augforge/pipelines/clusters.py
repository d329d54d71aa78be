"""Clusters a run starts for itself: batch-system jobs (dask-jobqueue) and one worker per GPU (dask-cuda).

`execution.cluster` in a recipe (or `--cluster KIND` / `--cluster-config FILE` on the command
line) says which. Batch kinds (slurm, pbs, lsf, sge) run the Dask scheduler in this process and
submit worker jobs whose script `job_script` shows; options left out fall back to Dask's own
jobqueue configuration (`jobqueue.<kind>.*`, e.g. ~/.config/dask/jobqueue.yaml). `local-cuda`
starts a dask-cuda LocalCUDACluster. When the ops run on CUDA, every worker we start declares the
Dask resource GPU and every shard task asks for one, so GPU work lands only on GPU workers.
dask-jobqueue and dask-cuda are imported only when such a cluster is asked for.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from augforge.core.errors import AugforgeError, RecipeError

if TYPE_CHECKING:
    from distributed import Client
    from distributed.deploy import Cluster

    from augforge.pipelines.recipe import ExecutionSpec, Recipe

JOBQUEUE_KINDS = ("slurm", "pbs", "lsf", "sge")
CLUSTER_KINDS = (*JOBQUEUE_KINDS, "local-cuda")
GPU = "GPU"  # the Dask resource name GPU workers declare and GPU tasks ask for
PLACEHOLDER_SCHEDULER = "tcp://<scheduler-address>:8786"  # in printed job scripts

_JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "lsf": "LSFCluster", "sge": "SGECluster"}
# Keys that apply to batch kinds only, and the dask-jobqueue keyword each becomes.
_JOB_KEYS = ("queue", "cores", "memory", "processes", "walltime", "interface", "job_name", "python",
             "log_directory", "job_extra_directives", "job_script_prologue", "job_directives_skip",
             "worker_extra_args", "scheduler_options", "scale", "adapt", "account", "resource_spec")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AdaptSpec(_Strict):
    """Adaptive scaling between `minimum` and `maximum` batch jobs (Dask's adaptive deployment)."""

    minimum: int = Field(0, ge=0)
    maximum: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> AdaptSpec:
        if self.minimum > self.maximum:
            raise ValueError(f"adapt: minimum ({self.minimum}) is above maximum ({self.maximum})")
        return self


class ClusterSpec(_Strict):
    """`execution.cluster`: a cluster the run starts. Sizes are per batch job."""

    kind: Literal["slurm", "pbs", "lsf", "sge", "local-cuda"]
    queue: str | None = None  # partition / queue
    account: str | None = None  # charged account: -A on slurm and pbs, the project (-P) on lsf and sge
    cores: int | None = Field(None, ge=1)  # cores per job
    memory: str | None = None  # memory per job, e.g. '32GB'
    processes: int | None = Field(None, ge=1)  # worker processes per job; default one per core (1 with cuda)
    walltime: str | None = None  # e.g. '12:00:00', quoted (YAML reads an unquoted 12:00:00 as a number)
    resource_spec: str | None = None  # pbs / sge '-l' resource string
    interface: str | None = None  # network interface of scheduler and workers, e.g. ib0
    job_name: str | None = None
    python: str | None = None  # the workers' python (default: the one running augforge)
    log_directory: str | None = None  # where the batch system writes the jobs' logs
    local_directory: str | None = None  # workers' scratch space
    job_extra_directives: list[str] = Field(default_factory=list)  # e.g. ['--gres=gpu:1'] on slurm
    job_script_prologue: list[str] = Field(default_factory=list)  # shell lines before the worker starts
    job_directives_skip: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    scheduler_options: dict[str, Any] = Field(default_factory=dict)  # e.g. {dashboard_address: ':8787'}
    scale: int | None = Field(None, ge=1)  # number of jobs to submit
    adapt: AdaptSpec | None = None  # or let Dask submit between adapt.minimum and adapt.maximum jobs
    devices: list[int] | None = None  # local-cuda: GPU indices to use (default: all visible)

    @field_validator("walltime", mode="before")
    @classmethod
    def _walltime_text(cls, value: Any) -> Any:
        if isinstance(value, int):
            raise ValueError(f"walltime must be text such as '12:00:00' in quotes; got the number {value} "
                             "(YAML reads an unquoted 12:00:00 as a count of seconds)")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        from dask.utils import parse_bytes

        if value is not None:
            try:
                parse_bytes(value)
            except (ValueError, TypeError):
                raise ValueError(f"memory must be a size such as '32GB' or '16GiB', got {value!r}") from None
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> ClusterSpec:
        given = {k for k in type(self).model_fields if k != "kind" and getattr(self, k) not in (None, [], {})}
        if self.kind == "local-cuda":
            wrong = sorted(given & set(_JOB_KEYS))
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: batch-job option(s), not used by kind 'local-cuda' "
                                 f"(which takes devices and local_directory)")
            return self
        if "devices" in given:
            raise ValueError(f"devices applies to kind 'local-cuda', not {self.kind!r}: batch jobs get "
                             "their GPUs from job_extra_directives (e.g. '--gres=gpu:1' on slurm)")
        if "resource_spec" in given and self.kind not in ("pbs", "sge"):
            raise ValueError(f"resource_spec applies to pbs and sge, not {self.kind!r}")
        if self.scale is not None and self.adapt is not None:
            raise ValueError("give either scale (a fixed number of jobs) or adapt (minimum, maximum), "
                             "not both")
        if self.cores is not None and self.processes is not None and self.processes > self.cores:
            raise ValueError(f"processes ({self.processes}) is more than cores ({self.cores}): each worker "
                             "process needs at least one core")
        return self


def check_execution(device: str, scheduler: str | None, cluster: ClusterSpec | None) -> None:
    """Rules across execution fields (ValueError): where to run, and GPU layouts that work."""
    if cluster is None:
        return
    if scheduler:
        raise ValueError("give either scheduler (a running cluster) or cluster (one to start), not both")
    if cluster.kind == "local-cuda" and device != "cuda":
        raise ValueError(f"cluster kind 'local-cuda' needs device 'cuda' (each worker sees its own GPU "
                         f"as cuda:0), got {device!r}")
    if device.startswith("cuda") and cluster.kind in JOBQUEUE_KINDS and (cluster.processes or 1) > 1:
        raise ValueError(f"with device {device!r} a {cluster.kind} job runs one worker process on one GPU: "
                         f"set processes to 1 (got {cluster.processes}) and submit more jobs (scale)")


def gpu_worker_options(device: str) -> dict[str, Any]:
    """Worker keywords that declare one GPU slot when the ops run on CUDA (else none)."""
    return {"resources": {GPU: 1}} if device.startswith("cuda") else {}


def task_resources(client: Client, device: str) -> dict[str, float] | None:
    """Resources each shard task asks for: one GPU slot on CUDA, so tasks run only on GPU workers.

    Raises when the scheduler's workers are all CPU-only: the tasks would otherwise wait forever."""
    if not device.startswith("cuda"):
        return None
    workers = client.scheduler_info().get("workers", {})
    if workers and not any((w.get("resources") or {}).get(GPU, 0) > 0 for w in workers.values()):
        raise AugforgeError(
            f"device {device!r}: none of the scheduler's {len(workers)} worker(s) declares the Dask resource "
            f"{GPU}, so no shard task could run; start GPU workers with `dask worker ADDRESS --resources "
            f"{GPU}=1` (one per GPU), or use execution.cluster kind local-cuda")
    return {GPU: 1}


def _jobqueue_class(kind: str) -> Any:
    try:
        import dask_jobqueue
    except ImportError:
        raise AugforgeError(f"cluster kind {kind!r} needs dask-jobqueue: pip install 'augforge[cluster]' "
                            "(or dask-jobqueue)") from None
    return getattr(dask_jobqueue, _JOBQUEUE_CLASSES[kind])


def jobqueue_options(execution: ExecutionSpec) -> dict[str, Any]:
    """dask-jobqueue keywords for the recipe's batch cluster: only what is set, so everything left
    out comes from Dask's jobqueue configuration; plus the GPU resource when the ops run on CUDA."""
    import dask

    spec = execution.cluster
    if spec is None or spec.kind not in JOBQUEUE_KINDS:
        raise RecipeError("execution.cluster.kind must be one of slurm, pbs, lsf, sge for a batch cluster")
    kind = spec.kind
    opts: dict[str, Any] = {}
    for key in ("queue", "cores", "memory", "processes", "walltime", "interface", "job_name", "python",
                "log_directory", "local_directory", "resource_spec"):
        value = getattr(spec, key)
        if value is not None:
            opts[key] = value
    for key in ("job_extra_directives", "job_script_prologue", "job_directives_skip"):
        if getattr(spec, key):
            opts[key] = list(getattr(spec, key))
    if spec.account is not None:
        opts["account" if kind in ("slurm", "pbs") else "project"] = spec.account
    if "processes" not in opts and dask.config.get(f"jobqueue.{kind}.processes", None) is None:
        cores = opts.get("cores", dask.config.get(f"jobqueue.{kind}.cores", None))
        if execution.device.startswith("cuda"):
            opts["processes"] = 1  # one worker, one GPU per job
        elif cores:
            opts["processes"] = cores  # single-thread worker processes, like the local cluster
    extra = list(spec.worker_extra_args or dask.config.get(f"jobqueue.{kind}.worker-extra-args", None) or [])
    if execution.device.startswith("cuda"):
        extra += ["--resources", f"{GPU}=1"]
    if extra:
        opts["worker_extra_args"] = extra
    return opts


def _need(what: str, exc: Exception) -> RecipeError:
    return RecipeError(f"execution.cluster: cannot set up {what}: {exc}\nGive the job sizes in the recipe's "
                       "execution.cluster, in --cluster-config FILE, or in Dask's jobqueue configuration.")


def job_script(execution: ExecutionSpec, scheduler: str = PLACEHOLDER_SCHEDULER) -> str:
    """The script each batch job of the recipe's cluster runs (what `augforge cluster-script` prints);
    dask-jobqueue's own `cluster.job_script()` is the same with the live scheduler's address."""
    assert execution.cluster is not None
    cls = _jobqueue_class(execution.cluster.kind)
    try:
        job = cls.job_cls(scheduler, name="dummy-name", **jobqueue_options(execution))
    except (ValueError, TypeError) as exc:
        raise _need(f"{execution.cluster.kind} jobs", exc) from None
    return str(job.job_script())


def start_cluster(execution: ExecutionSpec, n_tasks: int) -> Cluster:
    """Start the recipe's cluster; batch kinds submit their jobs now (jobs = `scale`, or enough for
    `execution.workers` worker processes, else one; or adaptive), and fail here if submitting fails."""
    spec = execution.cluster
    assert spec is not None
    if spec.kind == "local-cuda":
        return _local_cuda(execution)
    cls = _jobqueue_class(spec.kind)
    submit = cls.job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise AugforgeError(f"cluster kind {spec.kind!r} submits jobs with `{submit}`, which is not on PATH: "
                            "run augforge on a machine that can submit to the batch system (a login node)")
    from distributed.core import Status

    outcomes: list[BaseException | None] = []  # one per submission the cluster makes

    class RecordedJob(cls.job_cls):  # type: ignore[misc,name-defined]
        async def start(self) -> None:
            try:
                await super().start()
            except BaseException as exc:
                outcomes.append(exc)
                self.status = Status.failed  # what SpecCluster.close expects of a job that never started
                raise
            outcomes.append(None)

    try:
        cluster = cls(job_cls=RecordedJob, scheduler_options=dict(spec.scheduler_options) or None,
                      silence_logs=logging.ERROR, **jobqueue_options(execution))
    except (ValueError, TypeError) as exc:
        raise _need(f"a {spec.kind} cluster", exc) from None
    if spec.adapt is not None:
        cluster.adapt(minimum_jobs=spec.adapt.minimum, maximum_jobs=spec.adapt.maximum)
        return cluster
    if spec.scale is not None:
        cluster.scale(jobs=spec.scale)
    else:
        cluster.scale(n=max(1, min(execution.workers or 1, n_tasks)))
    _await_submissions(cluster, outcomes, spec.kind)
    return cluster


def _await_submissions(cluster: Cluster, outcomes: list[BaseException | None], kind: str,
                       timeout_s: float = 120.0) -> None:
    """Wait until the batch system has answered every submission; close the cluster and raise the
    first refusal (Dask would only log it, and the run would wait for workers that never come)."""
    expected = len(cluster.worker_spec)
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    failed = [exc for exc in outcomes if exc is not None]
    if failed or len(outcomes) < expected:
        cluster.close()
        why = str(failed[0]).strip() if failed else f"no answer within {timeout_s:.0f} s"
        raise AugforgeError(f"submitting {kind} worker jobs failed ({len(failed)} of {expected}): {why}")


def local_cuda_options(execution: ExecutionSpec) -> dict[str, Any]:
    """LocalCUDACluster keywords: one single-thread worker process per GPU, each declaring GPU=1."""
    spec = execution.cluster
    assert spec is not None
    opts: dict[str, Any] = {"threads_per_worker": 1, "dashboard_address": ":0", "silence_logs": logging.ERROR,
                            **gpu_worker_options(execution.device)}
    if spec.devices is not None:
        opts["CUDA_VISIBLE_DEVICES"] = list(spec.devices)
    if execution.workers is not None:
        opts["n_workers"] = min(execution.workers, len(spec.devices)) if spec.devices else execution.workers
    if spec.local_directory is not None:
        opts["local_directory"] = spec.local_directory
    return opts


def _local_cuda(execution: ExecutionSpec) -> Cluster:
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise AugforgeError(f"cluster kind 'local-cuda' needs dask-cuda, which cannot be imported ({exc}): "
                            "pip install 'augforge[gpu]' on a Linux machine with NVIDIA GPUs") from None
    try:
        return LocalCUDACluster(**local_cuda_options(execution))
    except (ValueError, RuntimeError) as exc:  # e.g. more workers than GPUs, no CUDA driver
        raise AugforgeError(f"cannot start the local-cuda cluster: {exc}") from None


def load_cluster_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a cluster config file (safe YAML; the keys of execution.cluster)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"cannot read cluster config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"cluster config {path}: not valid (safe) YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise RecipeError(f"cluster config {path}: the top level must be a mapping of execution.cluster keys "
                          f"(kind, queue, cores, memory, ...), got {type(data).__name__}")
    return dict(data)


def with_cluster(recipe: Recipe, kind: str | None = None, config: str | Path | None = None,
                 scheduler: str | None = None) -> Recipe:
    """The recipe with the command line's cluster choice: `config` file keys replace the recipe's
    execution.cluster keys, `kind` replaces the kind; a `scheduler` address replaces any cluster."""
    from augforge.pipelines.recipe import validate_recipe

    if scheduler and (kind or config):
        raise RecipeError("--scheduler (a running cluster) and --cluster/--cluster-config (one to start) "
                          "exclude each other")
    if not (kind or config or (scheduler and recipe.execution.cluster is not None)):
        return recipe
    data = recipe.model_dump()
    execution = data["execution"]
    if scheduler:
        execution["cluster"], execution["scheduler"] = None, scheduler
        return validate_recipe(data, "<recipe with --scheduler>")
    current = recipe.execution.cluster
    cluster = current.model_dump(exclude_defaults=True) | {"kind": current.kind} if current else {}
    if config:
        cluster.update(load_cluster_config(config))
    if kind:
        cluster["kind"] = kind
    execution["cluster"], execution["scheduler"] = cluster, None
    label = "<recipe" + (f" + cluster config {config}" if config else "") + (" + --cluster" if kind else "")
    label += ">"
    return validate_recipe(data, label)

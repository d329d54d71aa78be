"""Run a recipe: plan, verify what already exists, build the rest on Dask, write the records.

`generate` is what `augforge generate` calls. It starts a LocalCluster of worker processes (one
task at a time each) unless given a scheduler address or a Client, so the same call scales from
a laptop to a cluster sharing the output filesystem. Shards from an interrupted run are
verified (fingerprint + sha256) and reused; everything else is (re)built.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augforge.core.errors import AugforgeError, RecipeError
from augforge.pipelines.export import ExportError, ExportSummary, export_dataset
from augforge.pipelines.fsio import prepare_output_dir, remove_stale_temps
from augforge.pipelines.manifest import (
    MANIFEST_NAME,
    QUARANTINE_NAME,
    build_manifest,
    merge_quarantine,
    recorded_shas,
    write_records,
)
from augforge.pipelines.plan import Plan, ShardTask, input_identity, make_plan
from augforge.pipelines.recipe import Recipe, apply_overrides, load_recipe
from augforge.pipelines.shards import ShardConfig, ShardResult, run_shard, verify_shard

if TYPE_CHECKING:
    from distributed import Client
    from rich.console import Console


class ShardFailedError(AugforgeError, RuntimeError):
    """One or more shards raised; finished shards are kept and a rerun resumes."""


@dataclass
class GenerateSummary:
    """What a run did: counts, where the output is, how long it took."""

    out_dir: Path
    manifest: Path
    quarantine: Path
    inputs: int
    groups: int
    shards: int
    built: int
    resumed: int
    rebuilt: int  # existing shards that failed verification and were built again
    images_written: int  # samples in all shards of the dataset
    images_built: int  # samples encoded by this run
    quarantined: int  # distinct bad input rows
    elapsed_s: float
    images_per_s: float  # images_built / elapsed_s
    dashboard: str | None
    fingerprint: str
    exports: list[ExportSummary] = field(default_factory=list)  # released formats written after the shards
    mode: str = "grid"  # 'random': one folder, one drawn op per sample

    def describe(self) -> str:
        """A few human-readable lines for the CLI."""
        lines = [
            f"wrote {self.images_written} images in {self.shards} shards "
            + (f"({self.groups} op x severity folders)" if self.mode == "grid"
               else "(random mode: one drawn op per sample)") + f" to {self.out_dir}",
            f"inputs: {self.inputs}; quarantined: {self.quarantined}"
            + (f" (see {self.quarantine})" if self.quarantined else ""),
            f"shards built: {self.built}; resumed (verified): {self.resumed}"
            + (f"; rebuilt after failed verification: {self.rebuilt}" if self.rebuilt else ""),
            f"time: {self.elapsed_s:.1f} s; {self.images_per_s:.1f} images/s",
            f"manifest: {self.manifest}",
            *(e.describe() for e in self.exports),
        ]
        return "\n".join(lines)


def resolve_input(recipe: Recipe) -> tuple[str, str]:
    """(input path as fingerprints and the manifest name it, absolute path the workers open).

    'augforge:' paths stay symbolic in the name, so the same recipe fingerprints the same
    wherever augforge is installed; other paths are made absolute (relative = to the cwd)."""
    from augforge.resources import resolve_path

    raw = recipe.input.path
    if raw is None:
        raise RecipeError("input.path is not set: give it in the recipe or with --input PATH")
    if raw.startswith("pipe:"):  # a command, run by the reader only when input option allow_pipe is set
        return raw, raw
    real = str(Path(resolve_path(raw)).expanduser().resolve())
    return (raw if raw.startswith("augforge:") else real), real


def _open_input(recipe: Recipe, path: str) -> Any:
    from augforge.datasets.readers import open_reader

    try:
        return open_reader(recipe.input.reader, path, **recipe.input.options)
    except (AugforgeError, OSError, TypeError, ValueError) as exc:
        raise RecipeError(f"input: cannot open a {recipe.input.reader!r} reader on {path}: {exc}") from None


def share_keys(result: ShardResult, key_lists: dict[tuple[int, int], list[str]]) -> ShardResult:
    """Point `result.keys` at an equal list seen before for its input range: one list per range
    instead of one per (op, severity), so the client's memory grows with the inputs only."""
    same = key_lists.setdefault((result.start, result.stop), result.keys)
    if same is not result.keys and same == result.keys:
        result.keys = same
    return result


def check_existing(out_dir: Path, tasks: list[ShardTask], recorded: Mapping[str, str] | None = None,
                   ) -> tuple[dict[str, ShardResult], list[ShardTask], dict[str, str]]:
    """Verify shards already on disk (in parallel threads: hashing is I/O and releases the GIL),
    against their sidecars and the previous manifest's sha256 (`recorded`, path -> sha256).
    Returns (reusable results by path, tasks to build, why each existing shard is rebuilt)."""
    shas = dict(recorded or {})
    candidates = [t for t in tasks if (out_dir / t.path).exists()]
    verified: dict[str, ShardResult] = {}
    invalid: dict[str, str] = {}
    key_lists: dict[tuple[int, int], list[str]] = {}
    if candidates:
        with ThreadPoolExecutor(max_workers=min(8, 2 * (os.cpu_count() or 1))) as pool:
            checks = pool.map(lambda t: verify_shard(out_dir, t, shas.get(t.path)), candidates)
            for task, (res, why) in zip(candidates, checks, strict=True):
                if res is not None:
                    verified[task.path] = share_keys(res, key_lists)
                else:
                    invalid[task.path] = why
    todo = [t for t in tasks if t.path not in verified]
    return verified, todo, invalid


def _reason_kind(why: str) -> str:
    """verify_shard's reason without per-file details, so equal causes group together."""
    return why.split(" (", 1)[0] if why.startswith("unreadable sidecar record") else why


def rebuild_report(invalid: dict[str, str], examples: int = 3) -> list[str]:
    """One line per reason a shard failed verification: count and a few example paths."""
    by_reason: dict[str, list[str]] = {}
    for path, why in sorted(invalid.items()):
        by_reason.setdefault(_reason_kind(why), []).append(path)
    lines = []
    for reason, paths in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        more = f" and {len(paths) - examples} more" if len(paths) > examples else ""
        lines.append(f"  rebuild {len(paths)} shard(s): {reason} (e.g. {', '.join(paths[:examples])}{more})")
    return lines


def _connect(recipe: Recipe, n_tasks: int) -> tuple[Client, Any]:
    """A Client on the recipe's scheduler, or on a new LocalCluster (returned to be closed)."""
    from distributed import Client, LocalCluster

    address = recipe.execution.scheduler
    if address:
        try:
            if address.endswith(".json") and Path(address).is_file():
                return Client(scheduler_file=address, timeout="30s"), None
            return Client(address, timeout="30s"), None
        except OSError as exc:
            raise AugforgeError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    from augforge.pipelines.clusters import gpu_worker_options, start_cluster

    if recipe.execution.cluster is not None:  # batch jobs (dask-jobqueue) or one worker per GPU (dask-cuda)
        cluster = start_cluster(recipe.execution, n_tasks)
        return Client(cluster), cluster
    import dask

    workers = recipe.execution.workers or os.cpu_count() or 1
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
    # adaptive mmap threshold: every buffer over 128 KiB (zlib's state in each PNG encode, batch
    # tensors) is then mmap'ed and page-faulted afresh, ~30% more CPU per 32 x 32 picture. These
    # workers live for one run, so they keep glibc's defaults. Dask's statistical profiler (a
    # stack sample every 10 ms, for the dashboard's profile page) costs ~8% of a worker's CPU here.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(
            n_workers=max(1, min(workers, n_tasks)),
            threads_per_worker=1,  # one task at a time per process; torch threads set per task
            processes=True,
            dashboard_address=":0",
            # a failed shard comes back to the client, which reports it once (ShardFailedError);
            # the workers' own "Compute Failed" tracebacks would repeat it for every shard
            silence_logs=logging.CRITICAL,
            **gpu_worker_options(recipe.execution.device),  # GPU=1 so GPU tasks can run here
        )
    return Client(cluster), cluster


def _dashboard(client: Client) -> str | None:
    services = client.scheduler_info().get("services", {})
    return client.dashboard_link if "dashboard" in services else None


def _bokeh_note() -> str:
    """Dask serves dashboard pages only where bokeh is installed."""
    import importlib.util

    return "" if importlib.util.find_spec("bokeh") else " (its pages need `pip install bokeh`)"


def _run_tasks(
    client: Client, todo: list[ShardTask], cfg: ShardConfig, progress: Any, bar: Any
) -> tuple[dict[str, ShardResult], list[tuple[ShardTask, BaseException]]]:
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    # range by range (ops in plan order within a range): a worker's next task usually reads the
    # input rows it has just decoded, which it keeps (shards.read_range)
    todo = sorted(todo, key=lambda t: t.start)
    keys = [f"augforge-shard-{t.op}-{t.severity}-{t.shard:06d}-{run_id}" for t in todo]
    from augforge.pipelines.clusters import task_resources

    futures = client.map(run_shard, todo, cfg=cfg, key=keys, pure=False,
                         resources=task_resources(client, cfg.device))  # CUDA: GPU workers only
    by_key = dict(zip(keys, todo, strict=True))
    done: dict[str, ShardResult] = {}
    key_lists: dict[tuple[int, int], list[str]] = {}
    failed: list[tuple[ShardTask, BaseException]] = []
    for future in as_completed(futures):
        task = by_key[future.key]
        if future.status == "error":
            exc = future.exception()
            failed.append((task, exc if isinstance(exc, BaseException) else RuntimeError(str(exc))))
        else:
            result: ShardResult = share_keys(future.result(), key_lists)
            done[result.path] = result
        future.release()
        if progress is not None:
            progress.advance(bar)
    failed.sort(key=lambda item: item[0].path)  # report in a stable order, not completion order
    return done, failed


def generate(
    recipe: Recipe | str | Path | Mapping[str, Any],
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    seed: int | None = None,
    input_path: str | Path | None = None,
    formats: list[str] | None = None,
    progress: bool = True,
    console: Console | None = None,
    client: Client | None = None,
) -> GenerateSummary:
    """Write the dataset a recipe describes, then its released `formats` (default: the recipe's
    output.formats); return a summary. `client` reuses a running Dask Client (the recipe's
    scheduler and workers are then ignored)."""
    from rich.console import Console

    started = time.perf_counter()
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    recipe = apply_overrides(recipe, input_path=input_path, out=out, workers=workers, scheduler=scheduler,
                             seed=seed, formats=formats)
    console = console or Console(stderr=True)
    if recipe.output.dir is None:
        raise RecipeError("output.dir is not set: give it in the recipe or with --out DIR")
    input_name, input_real = resolve_input(recipe)
    out_dir = Path(recipe.output.dir).expanduser().resolve()
    n_inputs = len(_open_input(recipe, input_real))
    plan = make_plan(recipe, n_inputs, input_name)
    input_id = input_identity(recipe, input_name)
    if n_inputs == 0:
        console.print(f"[yellow]warning:[/yellow] the input {input_real} holds no samples")

    prepare_output_dir(out_dir)  # an unwritable output fails here, naming the folder and the cause
    recorded = recorded_shas(out_dir, plan.fingerprint)  # a shard must match its old manifest entry too
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # present only after a complete run
    remove_stale_temps(out_dir, "")
    for folder in sorted({Path(t.path).parent for t in plan.tasks}):  # <op>/<severity>, or random
        remove_stale_temps(out_dir / folder, "shard-")
    results, todo, invalid = check_existing(out_dir, plan.tasks, recorded)
    if results or invalid:
        console.print(f"resume: {len(results)} shard(s) verified and reused, {len(invalid)} failed "
                      f"verification and will be rebuilt")
        for line in rebuild_report(invalid):
            console.print(line)

    cfg = ShardConfig(
        out_dir=str(out_dir), reader=recipe.input.reader, path=input_real, options=dict(recipe.input.options),
        seed=recipe.seed, encoding=recipe.output.encoding, jpeg_quality=recipe.output.jpeg_quality,
        png_compress_level=recipe.output.png_compress_level,
        quantize=recipe.output.quantize, batch_size=recipe.execution.batch_size,
        device=recipe.execution.device, torch_threads=recipe.execution.threads_per_worker,
        plan_fingerprint=plan.fingerprint, run_id=uuid.uuid4().hex,
    )
    shown = console if progress else None
    if not todo:
        summary = _finish(recipe, plan, results, input_id, out_dir, started, invalid, None, console)
        summary.exports = _export(recipe, out_dir, client, shown)
        return summary
    own_client, cluster = (client, None) if client is not None else _connect(recipe, len(todo))
    try:
        dashboard = _dashboard(own_client)
        console.print(f"Dask dashboard: {dashboard or 'not served by this scheduler'}{_bokeh_note()}")
        console.print(f"building {len(todo)} of {len(plan.tasks)} shards "
                      f"({len(plan.groups)} op x severity, {n_inputs} inputs) in {out_dir}")
        built, failed = _execute(own_client, todo, cfg, plan, len(results), progress, console)
        results.update(built)
        for folder in sorted({Path(t.path).parent for t in todo}):  # left by workers killed mid-write
            remove_stale_temps(out_dir / folder, "shard-")
        if not failed:  # records are written before the (slow) worker shutdown, timed without it
            summary = _finish(recipe, plan, results, input_id, out_dir, started, invalid, dashboard, console)
            summary.exports = _export(recipe, out_dir, own_client, shown)
            return summary
    finally:
        if client is None:
            own_client.close()
            if cluster is not None:
                cluster.close()
    task, exc = failed[0]
    raise ShardFailedError(
        f"{len(failed)} of {len(todo)} shard(s) failed; first {task.path}: {type(exc).__name__}: {exc}. "
        "Finished shards are kept: rerun the same command to resume."
    ) from exc


def _export(recipe: Recipe, out_dir: Path, client: Client | None,
            console: Console | None) -> list[ExportSummary]:
    """Write the recipe's released formats from the finished shards (on `client` when given)."""
    done = []
    for fmt in recipe.output.formats:
        try:
            done.append(export_dataset(out_dir, fmt, client=client, workers=recipe.execution.workers,
                                       console=console))
        except ExportError as exc:
            raise ExportError(f"{exc}\nThe shards and manifest in {out_dir} are complete; once the cause is "
                              f"fixed, run `augforge export {out_dir} --format {fmt}`.") from exc
    return done


def _execute(client: Client, todo: list[ShardTask], cfg: ShardConfig, plan: Plan, reused: int,
             progress: bool, console: Console) -> tuple[dict[str, ShardResult],
                                                        list[tuple[ShardTask, BaseException]]]:
    if not progress:
        return _run_tasks(client, todo, cfg, None, None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar_view:
        bar = bar_view.add_task("shards", total=len(plan.tasks), completed=reused)
        return _run_tasks(client, todo, cfg, bar_view, bar)


def _finish(recipe: Recipe, plan: Plan, results: dict[str, ShardResult], input_id: dict[str, Any],
            out_dir: Path, started: float, invalid: dict[str, str],
            dashboard: str | None, console: Console) -> GenerateSummary:
    quarantine = merge_quarantine(results.values())
    built = [r for r in results.values() if not r.resumed]
    images_built = sum(r.count for r in built)
    elapsed = time.perf_counter() - started
    rate = images_built / elapsed if elapsed > 0 else 0.0
    run = {
        "elapsed_s": round(elapsed, 3), "images_per_s": round(rate, 2), "built": len(built),
        "resumed": len(results) - len(built), "rebuilt": len(invalid),
        "scheduler": recipe.execution.scheduler, "workers": recipe.execution.workers,
    }
    manifest = build_manifest(recipe, plan, results, input_id, quarantine, run)
    write_records(out_dir, manifest, quarantine)
    if quarantine:
        console.print(f"[yellow]{len(quarantine)} bad input(s) quarantined[/yellow]: "
                      f"see {out_dir / QUARANTINE_NAME}")
    return GenerateSummary(
        out_dir=out_dir, manifest=out_dir / MANIFEST_NAME, quarantine=out_dir / QUARANTINE_NAME,
        inputs=plan.n_inputs, groups=len(plan.groups), shards=len(plan.tasks), built=len(built),
        resumed=len(results) - len(built), rebuilt=len(invalid),
        images_written=manifest["accounting"]["total"]["written"], images_built=images_built,
        quarantined=len(quarantine), elapsed_s=elapsed, images_per_s=rate, dashboard=dashboard,
        fingerprint=plan.fingerprint, mode=recipe.mode,
    )

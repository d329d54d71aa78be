"""Recipes to datasets: schema, planning, Dask execution, WebDataset shards, manifest, resume.

    recipe = load_recipe("pipelines/quickstart.yaml")
    summary = generate(recipe, out="runs/quickstart", workers=2)

`generate` plans one shard per (index range, op, severity), builds them on a LocalCluster or
any Dask scheduler, reuses verified shards of an interrupted run, quarantines bad inputs and
writes `manifest.json` + `quarantine.jsonl`. `export_dataset` turns finished shards into the
released layouts ('imagenet-c' JPEG folders, 'cifar10-c' arrays); recipes ask for them with
`output.formats`.
"""

from augforge.pipelines.execute import GenerateSummary, ShardFailedError, generate
from augforge.pipelines.export import FORMATS, ExportError, ExportSummary, export_dataset
from augforge.pipelines.fsio import OutputWriteError
from augforge.pipelines.manifest import AccountingError, library_versions
from augforge.pipelines.plan import Plan, ShardTask, make_plan
from augforge.pipelines.recipe import Recipe, apply_overrides, load_recipe, parse_compact_op
from augforge.pipelines.shards import ShardConfig, ShardResult, run_shard, verify_shard
from augforge.pipelines.stream import StreamDataset, stream

__all__ = [
    "FORMATS",
    "AccountingError",
    "ExportError",
    "ExportSummary",
    "GenerateSummary",
    "OutputWriteError",
    "Plan",
    "Recipe",
    "ShardConfig",
    "ShardFailedError",
    "ShardResult",
    "ShardTask",
    "StreamDataset",
    "apply_overrides",
    "export_dataset",
    "generate",
    "library_versions",
    "load_recipe",
    "make_plan",
    "parse_compact_op",
    "run_shard",
    "stream",
    "verify_shard",
]

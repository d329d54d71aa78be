"""The run's records: manifest.json (recipe, versions, shards, accounting) and quarantine.jsonl.

Accounting is checked, not just reported: for every (op, severity) and in total, the rows read
must equal the samples written plus the inputs quarantined, and every row of the input must be
read once per (op, severity). A mismatch is an error, never a silently short dataset.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from augforge.core.errors import AugforgeError
from augforge.pipelines.fsio import atomic_write
from augforge.pipelines.plan import Plan
from augforge.pipelines.recipe import Recipe
from augforge.pipelines.shards import ShardResult

MANIFEST_FORMAT = "augforge-manifest/1"
MANIFEST_NAME = "manifest.json"
QUARANTINE_NAME = "quarantine.jsonl"
_DISTRIBUTIONS = ("torch", "dask", "distributed", "webdataset", "numpy", "pillow", "pydantic")


class AccountingError(AugforgeError, RuntimeError):
    """Rows read do not equal samples written plus inputs quarantined."""


def library_versions() -> dict[str, str]:
    """Versions of augforge, Python and the libraries that decide the output bytes."""
    from augforge import __version__

    versions = {"augforge": __version__, "python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def merge_quarantine(results: Iterable[ShardResult]) -> list[dict[str, Any]]:
    """One record per bad input row (the same row fails under every op), sorted by row, with the
    reason found under the first (op, severity) by name; `tasks` counts the shards it is missing from."""
    merged: dict[int, dict[str, Any]] = {}
    for result in sorted(results, key=lambda r: (r.op, r.severity, r.shard)):
        for rec in result.quarantined:
            index = int(rec["index"])
            if index in merged:
                merged[index]["tasks"] += 1
            else:
                merged[index] = {**rec, "tasks": 1}
    return [merged[i] for i in sorted(merged)]


def accounting(plan: Plan, results: dict[str, ShardResult]) -> dict[str, Any]:
    """Per (op, severity) and total read / written / quarantined; raises AccountingError when a
    planned shard has no result or the numbers do not reconcile."""
    missing = [t.path for t in plan.tasks if t.path not in results]
    if missing:
        raise AccountingError(f"{len(missing)} planned shard(s) have no result, e.g. {missing[:3]}")
    per_group: dict[tuple[str, int], dict[str, int]] = {
        g: {"read": 0, "written": 0, "quarantined": 0} for g in plan.groups
    }
    for task in plan.tasks:
        res = results[task.path]
        row = per_group[(task.op, task.severity)]
        row["read"] += task.stop - task.start
        row["written"] += res.count
        row["quarantined"] += len(res.quarantined)
    problems = []
    for (op, level), row in per_group.items():
        if row["read"] != row["written"] + row["quarantined"]:
            problems.append(f"{op}/{level}: read {row['read']} != written {row['written']} "
                            f"+ quarantined {row['quarantined']}")
        if row["read"] != plan.n_inputs:
            problems.append(f"{op}/{level}: read {row['read']} rows of {plan.n_inputs} inputs")
    total = {k: sum(r[k] for r in per_group.values()) for k in ("read", "written", "quarantined")}
    if total["read"] != total["written"] + total["quarantined"]:
        problems.append(f"total: read {total['read']} != written {total['written']} "
                        f"+ quarantined {total['quarantined']}")
    if problems:
        raise AccountingError("input accounting does not reconcile:\n  " + "\n  ".join(problems))
    groups = [{"op": op, "severity": level, **row} for (op, level), row in per_group.items()]
    return {"groups": groups, "total": total}


def build_manifest(
    recipe: Recipe,
    plan: Plan,
    results: dict[str, ShardResult],
    input_id: dict[str, Any],
    quarantine: list[dict[str, Any]],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The manifest document (shards in plan order)."""
    counts = accounting(plan, results)
    shards = []
    for task in plan.tasks:
        res = results[task.path]
        shards.append({
            "path": task.path, "op": task.op, "severity": task.severity, "shard": task.shard,
            "start": task.start, "stop": task.stop, "count": res.count, "size": res.size,
            "sha256": res.sha256, "quarantined": len(res.quarantined), "keys": res.keys,
        })
    return {
        "format": MANIFEST_FORMAT,
        "fingerprint": plan.fingerprint,
        "recipe": recipe.model_dump(mode="json"),
        "versions": library_versions(),
        "input": {**input_id, "count": plan.n_inputs},
        "layout": ("random/shard-NNNNNN.tar (WebDataset: <key>.<png|jpg> + <key>.json with the drawn op)"
                   if recipe.mode == "random" else
                   "<op>/<severity>/shard-NNNNNN.tar (WebDataset: <key>.<png|jpg> + <key>.json)"),
        "shards": shards,
        "accounting": counts,
        "quarantine": {"file": QUARANTINE_NAME, "inputs": len(quarantine)},
        "run": {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **run},
    }


def recorded_shas(out_dir: Path, fingerprint: str) -> dict[str, str]:
    """path -> sha256 of each shard in out_dir's manifest.json when the same plan (`fingerprint`)
    wrote it, else {} (no manifest, another recipe, unreadable): a shard that disagrees with its
    manifest entry is rebuilt even when its sidecar record agrees with it."""
    try:
        doc = json.loads((out_dir / MANIFEST_NAME).read_bytes())
        if doc.get("fingerprint") != fingerprint:
            return {}
        return {str(s["path"]): str(s["sha256"]) for s in doc["shards"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_records(out_dir: Path, manifest: dict[str, Any], quarantine: list[dict[str, Any]]) -> None:
    """Write quarantine.jsonl, then manifest.json, each atomically (the manifest last: its
    presence means the run completed)."""
    lines = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in quarantine)
    atomic_write(out_dir / QUARANTINE_NAME, lines.encode("utf-8"))
    atomic_write(out_dir / MANIFEST_NAME, (json.dumps(manifest, indent=1, sort_keys=False) + "\n").encode())

"""The `augforge` command line: thin typer commands over the library."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from augforge.core.errors import AugforgeError

app = typer.Typer(
    name="augforge",
    help="Faithful, batched, seeded data corruption: benchmarks (ImageNet-C, ...) and augmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn library errors into one red line and exit status 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AugforgeError as exc:  # the message is text, not markup: '[...]' in it is kept as is
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def parse_severities(text: str | None) -> list[int] | None:
    """'1-5', '1,3,5' or '3' -> list of ints; None stays None."""
    if text is None or text == "":
        return None
    levels: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                levels.extend(range(lo, hi + 1))
            else:
                levels.append(int(part))
    except ValueError:
        raise typer.BadParameter(f"severities must look like '1-5' or '1,3,5', got {text!r}") from None
    return levels


@app.command("ops")
@friendly_errors
def ops_command(
    family: Annotated[str | None, typer.Option(help="Only this family (e.g. image).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the registered operators."""
    from augforge.core.registry import list_ops

    specs = list_ops(family)
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in specs], indent=2))
        return
    table = Table("family", "severities", "presets", "random", "summary")
    table.columns.insert(0, Column("name", no_wrap=True))
    for s in specs:
        table.add_row(
            s.name,
            s.family,
            f"{s.severities[0]}-{s.severities[-1]}",
            ",".join(s.presets),
            "no" if s.deterministic else "yes",
            s.summary,
        )
    console.print(table)


@app.command("describe")
@friendly_errors
def describe_command(
    name: Annotated[str, typer.Argument(help="Operator name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one operator: reference, notes and its constants per preset and severity."""
    from augforge.core.registry import get_op

    spec = get_op(name)
    info = spec.as_dict()
    info["constants"] = {p: {str(s): spec.params(s, p) for s in spec.severities} for p in spec.presets}
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{spec.name}[/bold] ({spec.family}) — {spec.summary}")
    console.print(f"reference: {spec.reference}")
    console.print(f"random: {'no' if spec.deterministic else 'yes'}; reads {list(spec.reads)}")
    if spec.notes:
        console.print(f"notes: {spec.notes}")
    for preset, rows in info["constants"].items():
        table = Table("severity", *spec.param_names, title=f"preset {preset}")
        for level, params in rows.items():
            table.add_row(level, *[str(params[p]) for p in spec.param_names])
        console.print(table)


@app.command("preview")
@friendly_errors
def preview_command(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A picture file.")],
    ops: Annotated[str, typer.Option(help="Comma-separated op names.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the PNG grid.")] = Path(
        "preview.png"
    ),
    severities: Annotated[str | None, typer.Option(help="e.g. 1-5 or 1,3,5 (default: all).")] = None,
    preset: Annotated[str | None, typer.Option(help="Constant table (imagenet, cifar, tiny).")] = None,
    size: Annotated[int, typer.Option(min=8, help="Square side the picture is cropped to.")] = 224,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 0,
) -> None:
    """Write a picture of IMAGE under each op (rows) at each severity (columns)."""
    from augforge.preview import load_picture, preview_grid

    names = [n.strip() for n in ops.split(",") if n.strip()]
    grid = preview_grid(
        load_picture(image, size), names, parse_severities(severities), preset=preset, seed=seed
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    grid.save(output)
    console.print(f"preview written to {output}")


@app.command("generate")
@friendly_errors
def generate_command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file (or augforge:recipes/<name>).")],
    input_path: Annotated[
        str | None, typer.Option("--input", help="Override the recipe's input path.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Override the output directory.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local Dask workers.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the recipe's root seed.")] = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            help="Also write a released layout: imagenet-c or cifar10-c (repeatable; replaces the "
            "recipe's output.formats).",
        ),
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="Start a cluster: slurm, pbs, lsf, sge (batch jobs) or local-cuda.")
    ] = None,
    cluster_config: Annotated[
        Path | None, typer.Option(help="YAML file of execution.cluster keys (queue, cores, memory, ...).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(min=1, help="Refuse (quarantine) pictures with more pixels (input option).")
    ] = None,
    allow_pipe: Annotated[
        bool, typer.Option("--allow-pipe", help="Let webdataset inputs be 'pipe:CMD' (runs CMD in a shell).")
    ] = False,
) -> None:
    """Write a corrupted dataset as WebDataset shards with a manifest, as RECIPE says."""
    from augforge.pipelines import generate, load_recipe
    from augforge.pipelines.clusters import with_cluster
    from augforge.resources import resolve_path

    spec = with_cluster(load_recipe(Path(resolve_path(recipe))), cluster, cluster_config, scheduler)
    spec = with_input_options(spec, max_pixels=max_pixels, allow_pipe=allow_pipe or None)
    summary = generate(
        spec,
        out=out,
        workers=workers,
        scheduler=scheduler,
        seed=seed,
        input_path=input_path,
        formats=formats,
        console=console,
    )
    console.print(summary.describe() if hasattr(summary, "describe") else summary)
    print_accounting(summary.manifest)


def with_input_options(spec: Any, **options: Any) -> Any:
    """The recipe with these input options set (None values are left out), validated again."""
    from augforge.pipelines.recipe import validate_recipe

    given = {name: value for name, value in options.items() if value is not None}
    if not given:
        return spec
    data = spec.model_dump()
    data["input"]["options"].update(given)
    return validate_recipe(data, "<command line>")


def print_accounting(manifest: Path) -> None:
    """The manifest's input accounting as one line: read = written + quarantined."""
    total = json.loads(manifest.read_text(encoding="utf-8"))["accounting"]["total"]
    console.print(f"accounting (inputs x op/severity): read {total['read']} = written {total['written']} "
                  f"+ quarantined {total['quarantined']}")


@app.command("cluster-script")
@friendly_errors
def cluster_script_command(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file (or augforge:recipes/<name>).")],
    cluster: Annotated[str | None, typer.Option(help="Batch system: slurm, pbs, lsf or sge.")] = None,
    cluster_config: Annotated[
        Path | None, typer.Option(help="YAML file of execution.cluster keys (queue, cores, memory, ...).")
    ] = None,
) -> None:
    """Print the job script `generate --cluster` would submit for each batch job (submits nothing)."""
    from augforge.pipelines import load_recipe
    from augforge.pipelines.clusters import JOBQUEUE_KINDS, job_script, with_cluster
    from augforge.resources import resolve_path

    spec = with_cluster(load_recipe(Path(resolve_path(recipe))), cluster, cluster_config)
    kind = spec.execution.cluster.kind if spec.execution.cluster else None
    if kind not in JOBQUEUE_KINDS:
        raise AugforgeError(f"no batch cluster to show (execution.cluster.kind is {kind}): give --cluster "
                            f"{'|'.join(JOBQUEUE_KINDS)} or set it in the recipe")
    typer.echo(job_script(spec.execution), nl=False)


@app.command("export")
@friendly_errors
def export_command(
    root: Annotated[Path, typer.Argument(help="The --out folder of a finished `augforge generate`.")],
    fmt: Annotated[
        str, typer.Option("--format", help="imagenet-c (JPEG q85 folders) or cifar10-c (.npy arrays).")
    ],
    out: Annotated[Path | None, typer.Option(help="Write <out>/<format>/ (default: inside ROOT).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Processes (default: one per CPU).")] = None,
) -> None:
    """Convert generated shards into a released dataset layout (ImageNet-C or CIFAR-10-C)."""
    from augforge.pipelines import export_dataset

    console.print(export_dataset(root, fmt, out, workers=workers, console=console).describe())


@app.command("inspect")
@friendly_errors
def inspect_command(
    root: Annotated[Path, typer.Argument(help="The --out folder of `augforge generate`.")],
    verify: Annotated[bool, typer.Option(help="Re-hash every shard against the manifest.")] = True,
    grid: Annotated[Path | None, typer.Option(help="Also write a PNG of samples per op/severity.")] = None,
    per_group: Annotated[int, typer.Option(min=1, help="Samples per row of the --grid picture.")] = 4,
) -> None:
    """Summarise a generated dataset, verify its checksums, optionally draw samples."""
    from augforge.inspection import inspect_dataset, sample_grid

    report = inspect_dataset(root, verify=verify)
    table = Table("op", "severity", "shards", "samples")
    for g in report.groups:
        table.add_row(g["op"], str(g["severity"]), str(g["shards"]), str(g["samples"]))
    console.print(table)
    total = sum(g["samples"] for g in report.groups)
    console.print(
        f"{total} samples in {sum(g['shards'] for g in report.groups)} shards; "
        f"{report.quarantined} input(s) quarantined"
    )
    if grid is not None:
        sample_grid(root, per_group=per_group).save(grid)
        console.print(f"grid written to {grid}")
    if report.bad_shards:
        for line in report.bad_shards:
            err_console.print(f"[red]bad shard[/red] {line}")
        raise typer.Exit(1)
    console.print("checksums verified" if verify else "checksums not verified (--no-verify)")


@app.command("catalog")
@friendly_errors
def catalog_command(
    out: Annotated[Path, typer.Option(help="Catalog directory.")] = Path("ops"),
    pictures: Annotated[bool, typer.Option(help="Also render the preview pictures.")] = True,
) -> None:
    """Regenerate the operator catalog (ops/README.md and preview pictures) from the registry."""
    from augforge.catalog import write_catalog

    files = write_catalog(out, pictures=pictures)
    console.print(f"catalog written: {files[0]} (+{len(files) - 1} pictures)")


def main() -> None:
    """Console-script entry point."""
    app()

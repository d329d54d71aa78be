"""The CLI through typer's CliRunner: every command's --help, and each command for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from augforge.cli import app, parse_severities

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "datasets" / "samples" / "animals" / "chelsea.png"
runner = CliRunner()


@pytest.mark.parametrize(
    "command", ["ops", "describe", "preview", "generate", "export", "inspect", "catalog"]
)
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ops", "describe", "preview", "generate", "inspect", "catalog"):
        assert command in result.output


def test_ops_table_and_json():
    result = runner.invoke(app, ["ops"])
    assert result.exit_code == 0 and "gaussian_noise" in result.output
    data = json.loads(runner.invoke(app, ["ops", "--json", "--family", "image"]).output)
    names = {d["name"] for d in data}
    assert {"gaussian_noise", "jpeg_compression", "pixelate"} <= names
    assert all(d["family"] == "image" for d in data)


def test_describe_shows_constants():
    data = json.loads(runner.invoke(app, ["describe", "gaussian_noise", "--json"]).output)
    assert data["constants"]["imagenet"]["3"] == {"sigma": 0.18}
    result = runner.invoke(app, ["describe", "gaussian_noise"])
    assert result.exit_code == 0 and "0.38" in result.output


def test_unknown_op_is_one_clear_line():
    result = runner.invoke(app, ["describe", "gausian_noise"])
    assert result.exit_code == 2
    assert "did you mean gaussian_noise" in result.output
    assert "Traceback" not in result.output


def test_preview_writes_grid(tmp_path):
    out = tmp_path / "grid.png"
    result = runner.invoke(
        app,
        [
            "preview",
            str(SAMPLE),
            "--ops",
            "gaussian_noise,contrast",
            "--severities",
            "1,5",
            "--size",
            "48",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        # label column + (clean + 2 severities) x 48 px; header + 2 rows of 48 px
        assert im.width == 150 + 3 * 48 and im.height == 22 + 2 * 48


def test_parse_severities():
    assert parse_severities("1-3,5") == [1, 2, 3, 5]
    assert parse_severities(None) is None
    with pytest.raises(Exception, match="severities"):
        parse_severities("a-b")


def test_generate_then_inspect(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "input: {reader: folder, path: augforge:samples, options: {resize: 40, center_crop: 32}}\n"
        "ops: [gaussian_noise@1, contrast@5]\n"
        "output: {samples_per_shard: 5}\n"
        "execution: {workers: 1}\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["generate", str(recipe), "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["seed"] == 3
    assert (out / "gaussian_noise" / "1" / "shard-000000.tar").is_file()

    grid = tmp_path / "grid.png"
    result = runner.invoke(app, ["inspect", str(out), "--grid", str(grid)])
    assert result.exit_code == 0, result.output
    assert "checksums verified" in result.output and grid.is_file()

    shard = out / "contrast" / "5" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 1
    assert "sha256 mismatch" in result.output


def test_generate_bad_recipe_is_clear(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("ops: [gaussian_noise@9]\nnot_a_key: 1\n")
    result = runner.invoke(app, ["generate", str(recipe), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "not_a_key" in result.output and "Traceback" not in result.output


def test_inspect_missing_manifest(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "manifest.json" in result.output


def test_catalog_text_only(tmp_path):
    result = runner.invoke(app, ["catalog", "--out", str(tmp_path), "--no-pictures"])
    assert result.exit_code == 0, result.output
    assert "gaussian_noise" in (tmp_path / "README.md").read_text()


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "augforge", "ops", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert any(d["name"] == "contrast" for d in json.loads(proc.stdout))

"""The README's library example runs and its claims about the CLI hold."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_commented_results_are_true():
    import augforge

    assert augforge.get_op("contrast").params(3, "imagenet") == {"factor": 0.2}
    assert "{'factor': 0.2}" in README


def test_setup_commands_come_first():
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_block and "make run" in first_block.group(1) and "make test" in first_block.group(1)


def test_cli_commands_exist():
    from typer.main import get_command

    from augforge.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    cli_lines = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    mentioned = set(re.findall(r"^augforge ([\w-]+)", cli_lines, flags=re.M))
    assert mentioned and mentioned <= commands, mentioned - commands

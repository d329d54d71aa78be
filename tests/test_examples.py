"""The examples run end to end (short runs, in a subprocess like a user would start them)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_cifar_style_runs_two_steps():
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_cifar_style.py"), "--steps", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    losses = re.findall(r"step\s+(\d+)\s+loss (\d+\.\d+)\s+\(ce (\d+\.\d+), jsd (\d+\.\d+)\)", run.stdout)
    assert [int(s) for s, *_ in losses] == [1, 2], run.stdout
    for _, loss, ce, jsd in losses:
        # the printed loss is CE + 12·JSD, both finite and non-negative
        assert abs(float(loss) - (float(ce) + 12 * float(jsd))) < 2e-3
    assert "done: 2 steps" in run.stdout

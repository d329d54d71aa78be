"""Suite-wide settings: one torch thread per test process (CI has 2 cores, and the Dask worker
processes some tests start need the other), and no network calls from albumentations."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

torch.set_num_threads(1)

"""Base of the training-time transforms: torch modules seeded through the foundation contract.

Every random draw of sample i comes from a generator seeded by
`derive_seed(seed, key_i, name, "epoch<e>")`, so one epoch of a keyed stream is reproducible and
independent of batching, while each epoch differs. Without keys (plain DataLoader use) the keys
are "<call>/<i>" from a per-module call counter: reproducible for the same call sequence.

Inputs: float (B, C, H, W) or (C, H, W) tensors in [0, 1]; uint8 tensors and PIL images are
accepted too and returned in the same form, so a transform drops into torchvision.transforms.v2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from augforge.core.errors import InvalidInputError, InvalidParameterError
from augforge.core.seeding import sample_generators
from augforge.core.validation import check_image_batch


class SeededTransform(torch.nn.Module):
    """nn.Module base: input forms, validation, per-sample generators, epoch handling.

    Subclasses set `name` and implement `transform(x, gens)` on a validated float (B, C, H, W)
    batch, drawing sample i's randomness from gens[i] only (paired, batch-level transforms may
    also draw batch-wide choices from `self.batch_generator(gens)`).
    """

    name: str = "transform"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidParameterError(f"{self.name}: seed must be an int, got {seed!r}")
        self.seed = seed
        self.epoch = 0
        self._calls = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; draws change per epoch and repeat for the same epoch."""
        self.epoch = int(epoch)

    def generators(
        self, batch: int, device: torch.device, keys: Sequence[str] | None
    ) -> list[torch.Generator]:
        """One generator per sample from (seed, key, name, epoch)."""
        if keys is None:
            keys = [f"{self._calls}/{i}" for i in range(batch)]
            self._calls += 1
        elif isinstance(keys, str) or len(keys) != batch:
            raise InvalidInputError(f"{self.name}: expected {batch} keys, one per sample")
        return sample_generators(self.seed, list(keys), self.name, f"epoch{self.epoch}", device)

    @staticmethod
    def batch_generator(gens: Sequence[torch.Generator]) -> torch.Generator:
        """A generator for batch-level draws (permutations), derived from the samples' ones."""
        seed = 0
        for g in gens:
            seed = (
                seed * 1_000_003 + int(torch.randint(0, 2**31, (1,), generator=g, device=g.device))
            ) % 2**62
        return torch.Generator(device=gens[0].device).manual_seed(seed)

    def transform(self, x: torch.Tensor, gens: list[torch.Generator]) -> Any:
        raise NotImplementedError

    def forward(self, x: Any, keys: Sequence[str] | None = None) -> Any:
        """Transform a batch (B, C, H, W), one image (C, H, W), a uint8 tensor or a PIL image."""
        pil_mode = x.mode if isinstance(x, Image.Image) else None
        if pil_mode is not None:
            arr = np.asarray(x.convert("RGB") if pil_mode not in ("RGB", "L") else x)
            x = (
                torch.from_numpy(arr.copy()).permute(2, 0, 1)
                if arr.ndim == 3
                else torch.from_numpy(arr.copy())[None]
            )
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"{self.name}: expected a tensor or PIL image, got {type(x).__name__}")
        was_uint8 = x.dtype == torch.uint8
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        if was_uint8:
            batch = batch.float().div(255.0)
        check_image_batch(batch, name=self.name)
        work = batch if batch.dtype in (torch.float32, torch.float64) else batch.float()
        gens = self.generators(work.shape[0], work.device, keys)
        out = self.transform(work, gens)
        return self._restore(out, batch.dtype, single, was_uint8, pil_mode)

    def _restore(
        self, out: Any, dtype: torch.dtype, single: bool, was_uint8: bool, pil_mode: str | None
    ) -> Any:
        if isinstance(out, tuple):
            return tuple(self._restore(o, dtype, single, was_uint8, pil_mode) for o in out)
        out = out.to(dtype)
        if single:
            out = out[0]
        if was_uint8 or pil_mode is not None:
            out = out.clamp(0, 1).mul(255).round().to(torch.uint8)
        if pil_mode is not None:
            arr = out.permute(1, 2, 0).cpu().numpy()
            return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        return out

    def extra_repr(self) -> str:
        return f"seed={self.seed}, epoch={self.epoch}"

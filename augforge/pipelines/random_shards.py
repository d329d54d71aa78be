"""Mode random on the worker side: one drawn (op, severity) per sample, batched by what was drawn.

A sample's draw comes from `RandomOpChoice.draw` (recipe seed and p, epoch 0, the sample key)
and its pixels from `RandomOpChoice.apply_draws`: exactly what `augforge.stream(shards, recipe)`
yields for that key in epoch 0 (before quantization), whatever the batch, worker or shard. A
sample not drawn for corruption (p < 1) is written clean. Pictures wait in buckets of (shape,
entry, severity), so every op still runs on batches; `run_shard` writes them back in input order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from augforge.core.errors import InvalidInputError
from augforge.pipelines.plan import ShardTask
from augforge.pipelines.shards import ShardConfig, _record, dumps_sorted, encode_image
from augforge.transforms.choice import Draw, RandomOpChoice

EPOCH = 0  # the stream epoch whose draws an offline random-mode dataset holds

Pending = list[tuple[int, Any, Draw | None]]  # (input row, sample, its draw or None: clean)
CLEAN = (-1, 0)  # the (entry, severity) bucket of samples left clean


class RandomBatcher:
    """`_Batcher`'s interface (add, flush, done, quarantined) for a mode-random task."""

    def __init__(self, task: ShardTask, cfg: ShardConfig) -> None:
        import torch

        assert task.choices is not None  # planned by plan._random_plan
        self.choice = RandomOpChoice(task.choices, p=task.p, seed=cfg.seed)
        self.choice.set_epoch(EPOCH)
        self.device = torch.device(cfg.device)
        self.cfg = cfg
        self.pending: dict[tuple[tuple[int, ...], int, int], Pending] = {}
        self.done: dict[int, tuple[str, bytes, bytes]] = {}
        self.quarantined: list[dict[str, Any]] = []

    def add(self, index: int, sample: Any) -> None:
        draw = self.choice.draw([sample.key], self.device)[0]
        entry, severity = CLEAN if draw is None else (draw.entry, draw.severity)
        bucket_key = (tuple(sample.image.shape), entry, severity)
        bucket = self.pending.setdefault(bucket_key, [])
        bucket.append((index, sample, draw))
        if len(bucket) >= self.cfg.batch_size:
            self._run(self.pending.pop(bucket_key))

    def flush(self) -> None:
        for bucket_key in list(self.pending):
            self._run(self.pending.pop(bucket_key))

    def _corrupt(self, batch: Pending) -> np.ndarray:
        from augforge.core.tensors import to_float, to_uint8

        x = to_float([s.image for _, s, _ in batch]).to(self.device)
        draws = [d for _, _, d in batch if d is not None]
        out = x if not draws else self.choice.apply_draws(x, draws)  # a bucket is all clean or all drawn
        return to_uint8(out, mode=self.cfg.quantize)

    def _run(self, batch: Pending) -> None:
        try:
            pixels = self._corrupt(batch)
        except InvalidInputError as exc:
            if len(batch) > 1:  # find the offending picture(s); outputs do not depend on batching
                for item in batch:
                    self._run([item])
                return
            index, sample, _ = batch[0]
            self.quarantined.append(_record(index, sample.key, sample.source, str(exc), "op"))
            return
        for (index, sample, draw), arr in zip(batch, pixels, strict=True):
            data = encode_image(arr, self.cfg.encoding, self.cfg.jpeg_quality, self.cfg.png_compress_level)
            self.done[index] = (sample.key, data, self._meta(sample, draw, arr.shape))

    def _meta(self, sample: Any, draw: Draw | None, shape: tuple[int, ...]) -> bytes:
        """The sample's json member: grid mode's fields for the drawn op, plus the draw itself
        (op, severity, preset and draw null for a sample written clean)."""
        if draw is None:
            return dumps_sorted({"key": sample.key, "label": sample.label, "source": sample.source,
                                 "op": None, "severity": None, "preset": None, "params": {},
                                 "seed": self.cfg.seed, "draw": None})
        op = self.choice.op_for(draw.entry, draw.severity, shape[0], shape[1])
        return dumps_sorted({
            "key": sample.key, "label": sample.label, "source": sample.source, "op": draw.name,
            "severity": draw.severity, "preset": op.preset, "params": op.params, "seed": self.cfg.seed,
            "draw": {"entry": draw.entry, "op_seed": draw.seed, "epoch": EPOCH},
        })

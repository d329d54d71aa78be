"""Per-sample work spread over torch's CPU threads.

torch's random draws (normal_, uniform_, poisson, randint) and the CPU codecs some ops call
(PIL, OpenCV) run on one thread per call. Each sample has its own generator, so the samples of a
batch can be drawn or encoded concurrently (torch, PIL and OpenCV release the GIL) without
changing any result: which thread runs sample i does not matter, only gens[i] does.

Pool threads must only run serial kernels (the draws, codecs, small copies): a torch kernel that
goes parallel (OpenMP) on a pool thread gives that thread its own OpenMP team, and once more
OpenMP threads exist than cores, libgomp stops spinning between parallel regions, which makes
every later parallel kernel of the process several times slower.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")

MIN_WORK = 1 << 17  # numbers drawn per call below which threads do not pay off
SERIAL_CHUNK = 1 << 14  # elements: well below torch's parallel grain (32768), so kernels stay serial

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="augforge")
        return pool


def for_each_sample(fn: Callable[[int], T], n: int, device: torch.device | str = "cpu", *,
                    work: int | None = None) -> list[T]:
    """[fn(0), ..., fn(n − 1)], split into one contiguous run of samples per torch CPU thread (the
    first run on the calling thread), so a batch costs a couple of hand-offs, not one per sample.
    `work` (numbers drawn in all) below MIN_WORK keeps it on the calling thread: hand-offs would
    cost more than they save.

    `fn` must be a leaf task (no nested for_each_sample) whose result depends only on i."""
    threads = min(torch.get_num_threads(), n) if torch.device(device).type == "cpu" else 1
    small = work is not None and work < MIN_WORK
    if threads <= 1 or small or threading.current_thread().name.startswith("augforge"):
        return [fn(i) for i in range(n)]
    bounds = [n * k // threads for k in range(threads + 1)]

    def run(k: int) -> list[T]:
        return [fn(i) for i in range(bounds[k], bounds[k + 1])]

    others = [_pool(threads - 1).submit(run, k) for k in range(1, threads)]
    first = run(0)
    return first + [r for f in others for r in f.result()]


def draw(shape: tuple[int, ...], gens: list[torch.Generator], kind: str, *, device: torch.device,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, *shape) tensor, row i filled from gens[i] alone: 'normal' N(0, 1) (= torch.randn) or
    'uniform' U[0, 1) (= torch.rand) in `dtype`, or 'bits': int32 words whose 32 bits are all
    uniform and independent (`dtype` ignored), several samples at once.

    'bits' fills each row's words in pairs as full-range int64 draws (`random_(-2**63, None)`, all
    64 bits uniform), which costs about half as much per word as a float draw; a row of odd length
    gets one spare word, dropped."""
    if kind not in ("normal", "uniform", "bits"):
        raise ValueError(f"unknown draw kind {kind!r}")
    if kind == "bits":
        return _draw_bits(shape, gens, device)
    out = torch.empty((len(gens), *shape), device=device, dtype=dtype)

    def one(i: int) -> None:
        row = out[i]
        if kind == "normal":
            row.normal_(generator=gens[i])
        else:
            row.uniform_(generator=gens[i])

    for_each_sample(one, len(gens), device, work=out.numel())
    return out


def _draw_bits(shape: tuple[int, ...], gens: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """The 'bits' kind of `draw`."""
    n = math.prod(shape)
    pairs = (n + 1) // 2
    words = torch.empty((len(gens), pairs), device=device, dtype=torch.int64)

    def one(i: int) -> None:
        words[i].random_(-(2**63), None, generator=gens[i])

    for_each_sample(one, len(gens), device, work=words.numel())
    out = words.view(torch.int32)
    return (out if 2 * pairs == n else out[:, :n].contiguous()).view(len(gens), *shape)

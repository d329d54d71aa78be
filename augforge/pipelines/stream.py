"""`stream`: clean WebDataset shards -> safely decoded, corrupted-on-the-fly, batched tensors.

    ds = augforge.stream("data/train-{000000..000099}.tar", AugMix(jsd=True), seed=0, batch_size=128,
                         shuffle=1000)
    loader = ds.loader(num_workers=4)            # a DataLoader with batch_size=None
    for epoch in range(90):
        ds.set_epoch(epoch)                      # new draws (and a new order) per epoch
        for batch in loader: ...                 # {'image', 'label', 'key'}

The pipeline is a `webdataset.DataPipeline` (an IterableDataset) of six stages: shard list ->
split -> tar members -> sample split -> shuffle -> decode -> corrupt and batch.

Splitting. The readers of an epoch are `world_size` ranks × `num_workers` DataLoader workers;
reader r·num_workers + w reads every (world_size·num_workers)-th shard from its slot, after all
ranks permuted the list the same way (seed, epoch), so each sample comes exactly once per epoch.
When there are fewer shards than readers, `split='auto'` (default) falls back to a sample-level
split: every reader walks all shards and keeps every N-th sample (exact, but each reader reads
everything: meant for small data); `split='shard'` raises instead, `split='sample'` always
splits samples. rank/world_size are explicit, or read from torch.distributed, or from the RANK /
WORLD_SIZE environment variables. Every rank must use the same `num_workers`. Shard-level
splitting gives ranks unequal sample counts when shards differ in size (DDP needs equal batch
counts: write equal shards, or cut the epoch).

Safety. Shards are local files (paths, brace patterns, folders, lists); `http://` and other URLs
are refused, and `pipe:CMD` sources (CMD's output, through the shell) only with `allow_pipe=True`.
Samples whose member names are absolute or contain '..' are bad samples (raised or skipped).
Only image members (jpg, jpeg, png, webp, bmp, ppm) and .cls / .txt / .json are read; every
other member (.pyd, .pickle, .pth, ...) is skipped without reading its bytes, and nothing is ever
unpickled. Images go through augforge's PIL decoder (format allow-list, pixel limit, full decode).

Determinism. A sample's key is its member prefix (tar-safe as the WebDataset reader makes it), and
its corruption draws only from generators seeded by (seed, key, transform, epoch): the output does
not depend on rank, worker, shuffle order or batch size. Batch-level transforms (mode='paired')
are refused for that reason; run them on the collated batch in the training loop.
Epoch changes reach DataLoader workers when they start (each epoch), not persistent workers.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_expander

from augforge.core.errors import AugforgeError, BadInputError, InvalidParameterError, RecipeError
from augforge.core.seeding import derive_seed
from augforge.datasets.decode import DEFAULT_MAX_PIXELS, Preprocess
from augforge.datasets.keys import sanitize_key
from augforge.datasets.tar import IMAGE_EXTS, check_pipe, is_pipe, open_pipe, resolve_sources
from augforge.transforms.base import SeededTransform
from augforge.transforms.choice import RandomOpChoice

LABEL_EXTS = ("cls", "txt", "json")
READ_EXTS = frozenset(IMAGE_EXTS + LABEL_EXTS)
SPLITS = ("auto", "shard", "sample")
DECODES = ("float", "uint8")
NO_LABEL = -1
CHUNK = 64  # samples corrupted together when the stream yields single samples
_MAX_LABEL_BYTES = 1 << 20


@dataclass
class StreamConfig:
    """Everything the stages need; one object shared by the stages (and pickled with them)."""

    shards: list[str]
    transform: SeededTransform | None
    seed: int
    epoch: int
    rank: int
    world_size: int
    split: str
    shuffle: int
    batch_size: int | None
    partial: bool
    decode: str
    device: str
    preprocess: Preprocess
    on_error: str
    allow_pipe: bool = False


# --------------------------------------------------------------------------- splitting


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): explicit, else torch.distributed, else RANK/WORLD_SIZE, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise InvalidParameterError("stream: pass both rank and world_size, or neither")
    if rank is None or world_size is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        else:
            rank, world_size = 0, 1
    for name, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameterError(f"stream: {name} must be an int, got {value!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise InvalidParameterError(f"stream: need 0 <= rank < world_size, got rank={rank}, "
                                    f"world_size={world_size}")
    return rank, world_size


def reader_slot(cfg: StreamConfig) -> tuple[int, int]:
    """(this reader's index, number of readers) over ranks × DataLoader workers."""
    info = torch.utils.data.get_worker_info()
    worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
    return cfg.rank * workers + worker, cfg.world_size * workers


def split_level(cfg: StreamConfig, readers: int) -> str:
    """'shard' or 'sample' for this many readers (the same answer on every reader)."""
    if cfg.split != "auto":
        if cfg.split == "shard" and len(cfg.shards) < readers:
            raise AugforgeError(
                f"stream: {len(cfg.shards)} shard(s) cannot feed {readers} readers (world_size "
                f"{cfg.world_size} × DataLoader workers) with split='shard'; write more shards, use "
                "fewer workers, or pass split='auto' / 'sample' (every reader then reads all shards)")
        return cfg.split
    return "shard" if len(cfg.shards) >= readers else "sample"


def epoch_order(cfg: StreamConfig) -> list[str]:
    """The shard list of this epoch: as given, or permuted by (seed, epoch) when shuffling."""
    shards = list(cfg.shards)
    if cfg.shuffle > 0:
        random.Random(derive_seed(cfg.seed, "shards", "stream", f"epoch{cfg.epoch}")).shuffle(shards)
    return shards


class ShardList:
    """Stage 1: the shards this reader opens, as webdataset's {'url': ...} dicts."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self) -> Iterator[dict[str, str]]:
        slot, readers = reader_slot(self.cfg)
        shards = epoch_order(self.cfg)
        if split_level(self.cfg, readers) == "shard":
            shards = shards[slot::readers]
        for url in shards:
            yield {"url": url}


def wanted_member(name: str) -> bool:
    """Whether a tar member is read at all: image, .cls, .txt and .json members only."""
    _, ext = base_plus_ext(name)
    return ext is not None and ext.lower() in READ_EXTS


class TarSamples:
    """Stage 2: members of each shard grouped into samples (skipped members are never read)."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self, src: Iterator[dict[str, str]]) -> Iterator[dict[str, Any]]:
        handler = wds.reraise_exception if self.cfg.on_error == "raise" else wds.warn_and_continue
        for item in src:
            url = item["url"]
            if not is_pipe(url, self.cfg.allow_pipe):
                with open(url, "rb") as fh:
                    members = tar_file_expander([{"url": url, "stream": fh}], handler=handler,
                                                select_files=wanted_member)
                    yield from group_by_keys(members, handler=handler)
                continue
            proc = open_pipe(url)
            try:
                members = tar_file_expander([{"url": url, "stream": proc.stdout}], handler=handler,
                                            select_files=wanted_member)
                yield from group_by_keys(members, handler=handler)
            finally:
                if proc.stdout is not None:
                    proc.stdout.close()
            check_pipe(proc, url)


class SampleSplit:
    """Stage 3: in sample-level mode keep every N-th sample of the epoch's stream."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        slot, readers = reader_slot(self.cfg)
        if split_level(self.cfg, readers) == "shard":
            yield from src
            return
        for index, sample in enumerate(src):
            if index % readers == slot:
                yield sample


class Shuffle:
    """Stage 4: a sample buffer of `shuffle` entries, seeded by (seed, epoch, reader)."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.cfg.shuffle <= 1:
            yield from src
            return
        slot, _ = reader_slot(self.cfg)
        rng = random.Random(derive_seed(self.cfg.seed, f"reader{slot}", "stream", f"epoch{self.cfg.epoch}"))
        buffer: list[dict[str, Any]] = []
        for sample in src:
            buffer.append(sample)
            if len(buffer) >= self.cfg.shuffle:
                yield buffer.pop(rng.randrange(len(buffer)))
        while buffer:
            yield buffer.pop(rng.randrange(len(buffer)))


# --------------------------------------------------------------------------- decoding


def _int_label(data: bytes, ext: str) -> int | None:
    text = data.decode("utf-8", errors="replace").strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    if ext == "cls":
        raise BadInputError(f".cls is not an integer label: {data[:40]!r}")
    return None  # a .txt caption, not a label


def parse_label(sample: Mapping[str, Any]) -> int | None:
    """The WebDataset reader's rule: .cls, else an integer .txt, else .json 'label' / 'cls'."""
    for ext in LABEL_EXTS:
        if ext in sample and len(sample[ext]) > _MAX_LABEL_BYTES:
            raise BadInputError(f"label member .{ext} is larger than {_MAX_LABEL_BYTES} bytes")
    for ext in ("cls", "txt"):
        label = _int_label(sample[ext], ext) if ext in sample else None
        if label is not None:
            return label
    if "json" not in sample:
        return None
    try:
        doc = json.loads(sample["json"])
    except ValueError as exc:
        raise BadInputError(f"malformed .json member: {exc}") from None
    value = doc.get("label", doc.get("cls")) if isinstance(doc, dict) else None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise BadInputError(f".json label is not an integer: {value!r}")
    return value


def _unsafe_key(key: str) -> bool:
    return key.startswith("/") or ".." in key.replace("\\", "/").split("/")


class Decode:
    """Stage 5: {key, pixels (uint8 C×H×W tensor), label} from the raw members, safely."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in src:
            where = f"{Path(sample.get('__url__', '?')).name}:{sample['__key__']}"
            try:
                if _unsafe_key(sample["__key__"]):
                    raise BadInputError("unsafe member name (absolute or with '..')")
                ext = next((e for e in IMAGE_EXTS if e in sample), None)
                if ext is None:
                    members = sorted(k for k in sample if not k.startswith("__"))
                    raise BadInputError(f"no image member (has {members})")
                pixels, _ = self.cfg.preprocess.decode(sample[ext])
                label = parse_label(sample)
            except BadInputError as exc:
                if self.cfg.on_error == "raise":
                    raise BadInputError(f"{where}: {exc}") from None
                warnings.warn(f"stream: skipped {where}: {exc}", stacklevel=2)
                continue
            yield {"key": sanitize_key(sample["__key__"]),
                   "pixels": torch.from_numpy(pixels).permute(2, 0, 1),
                   "label": NO_LABEL if label is None else label}


# --------------------------------------------------------------------------- corrupt + batch


class Augment:
    """Stage 6: stack same-size samples, corrupt them as one batch, yield batches or samples."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        cfg = self.cfg
        if cfg.transform is not None:
            cfg.transform.set_epoch(cfg.epoch)
        size = cfg.batch_size or CHUNK
        group: list[dict[str, Any]] = []
        for sample in src:
            if cfg.batch_size is None and group and group[0]["pixels"].shape != sample["pixels"].shape:
                yield from self._emit(group)
                group = []
            group.append(sample)
            if len(group) == size:
                yield from self._emit(group)
                group = []
        if group and (cfg.partial or cfg.batch_size is None):
            yield from self._emit(group)

    def _emit(self, group: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        keys = [s["key"] for s in group]
        shapes = {tuple(s["pixels"].shape) for s in group}
        if len(shapes) > 1:
            raise AugforgeError(f"stream: a batch needs same-size images, got shapes {sorted(shapes)} "
                                f"(keys {keys[0]!r}...); pass resize= / center_crop=")
        x = torch.stack([s["pixels"] for s in group]).to(self.cfg.device)
        if self.cfg.decode == "float":
            x = x.float().div_(255.0)
        out = x if self.cfg.transform is None else self.cfg.transform(x, keys=keys)
        labels = torch.tensor([s["label"] for s in group], dtype=torch.long)
        if self.cfg.batch_size is not None:
            yield {"image": out, "label": labels, "key": keys}
            return
        for i, key in enumerate(keys):  # clones: a sample must not hold its whole chunk's storage
            image = tuple(o[i].clone() for o in out) if isinstance(out, tuple) else out[i].clone()
            yield {"image": image, "label": int(labels[i]), "key": key}


# --------------------------------------------------------------------------- the dataset


def pass_through(item: Any) -> Any:
    """The loader's collate_fn: items are batched already."""
    return item


class StreamDataset(wds.DataPipeline):
    """The webdataset pipeline `stream` returns; `set_epoch(e)` before each epoch's iteration."""

    def __init__(self, cfg: StreamConfig) -> None:
        super().__init__(ShardList(cfg), TarSamples(cfg), SampleSplit(cfg), Shuffle(cfg), Decode(cfg),
                         Augment(cfg))
        self.cfg = cfg

    @property
    def epoch(self) -> int:
        return self.cfg.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: its corruption draws, shard order and shuffle."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InvalidParameterError(f"stream: epoch must be an int >= 0, got {epoch!r}")
        self.cfg.epoch = epoch

    def loader(self, num_workers: int = 0, **kwargs: Any) -> torch.utils.data.DataLoader:
        """A DataLoader over this stream (batching happens in the pipeline: batch_size=None).

        It passes items through unchanged; DataLoader's default for batch_size=None would turn
        the (clean, aug1, aug2) tuple of a JSD transform into a list."""
        kwargs.setdefault("collate_fn", pass_through)
        return torch.utils.data.DataLoader(self, batch_size=None, num_workers=num_workers, **kwargs)

    def __repr__(self) -> str:
        c = self.cfg
        return (f"StreamDataset({len(c.shards)} shards, transform={c.transform!r}, seed={c.seed}, "
                f"epoch={c.epoch}, batch_size={c.batch_size}, rank={c.rank}/{c.world_size}, "
                f"split={c.split!r})")


OpsOrRecipe = SeededTransform | Sequence[Any] | str | os.PathLike[str] | Any | None


def load_random_recipe(source: Any) -> tuple[list[Any], int, dict[str, Any], float]:
    """(op entries, seed, decode options, p) of a mode-'random' recipe (YAML path, mapping or Recipe)."""
    from augforge.pipelines.recipe import OpEntry, Recipe

    if isinstance(source, Recipe):
        data: Any = source.model_dump()
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        import yaml

        path = Path(source)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise RecipeError(f"invalid recipe {path}: not valid (safe) YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise RecipeError(f"invalid recipe {source}: the top level must be a mapping")
    if data.get("mode") != "random":
        raise RecipeError(f"stream needs a recipe with mode: random (one draw per sample), got mode "
                          f"{data.get('mode', 'grid')!r}")
    ops = data.get("ops")
    if not isinstance(ops, list) or not ops:
        raise RecipeError(f"invalid recipe {source}: ops must be a non-empty list")
    try:
        entries = [OpEntry.model_validate(op) for op in ops]
    except ValueError as exc:
        raise RecipeError(f"invalid recipe {source}: {exc}") from None
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecipeError(f"invalid recipe {source}: seed must be an int, got {seed!r}")
    p = data.get("p", 1.0)
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise RecipeError(f"invalid recipe {source}: p must be a number in [0, 1], got {p!r}")
    options = (data.get("input") or {}).get("options") or {}
    decode = {k: options[k] for k in ("mode", "resize", "center_crop", "max_pixels") if k in options}
    chosen = [{"name": e.name, "severities": e.levels, "preset": e.preset, "params": e.params,
               "weight": e.weight} for e in entries]
    return chosen, seed, decode, float(p)


def resolve_transform(ops: OpsOrRecipe, seed: int, p: float) -> SeededTransform | None:
    """A transform instance, a list of ops ('fog@3', mappings) -> RandomOpChoice, or None."""
    if ops is None or isinstance(ops, SeededTransform):
        if ops is not None and getattr(ops, "mode", "single") == "paired":
            raise InvalidParameterError(
                f"stream: {type(ops).__name__}(mode='paired') mixes the samples of a batch, so its output "
                "would depend on workers and batching; use mode='single' here, or apply the paired "
                "transform to the collated batch in the training loop")
        return ops
    if isinstance(ops, Sequence) and not isinstance(ops, str):
        return RandomOpChoice(list(ops), p=p, seed=seed)
    raise InvalidParameterError(
        f"stream: ops_or_recipe must be a SeededTransform, a list of op names ('fog@3'), a recipe path "
        f"or None, got {ops!r}")


def _is_recipe(ops: Any) -> bool:
    from augforge.pipelines.recipe import Recipe

    if isinstance(ops, (Recipe, Mapping)):
        return True
    return isinstance(ops, os.PathLike) or (isinstance(ops, str) and ops.endswith((".yaml", ".yml")))


def stream(
    urls: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    ops_or_recipe: OpsOrRecipe = None,
    *,
    seed: int | None = None,
    epoch: int = 0,
    batch_size: int | None = None,
    shuffle: int = 0,
    decode: str = "float",
    device: str | torch.device = "cpu",
    rank: int | None = None,
    world_size: int | None = None,
    split: str = "auto",
    partial: bool = True,
    p: float | None = None,
    image_mode: str | None = None,
    resize: int | Sequence[int] | None = None,
    center_crop: int | Sequence[int] | None = None,
    max_pixels: int | None = None,
    on_error: str = "raise",
    allow_pipe: bool = False,
) -> StreamDataset:
    """A WebDataset pipeline over clean shards that corrupts samples on the fly (see module doc).

    urls: a shard path, brace pattern ('train-{000..009}.tar'), folder of .tar files, or a list.
    ops_or_recipe: a `SeededTransform` in single mode (AugMix, HybridAugmentPP, PRIME,
    RandomCorruption, ...), a list of ops ('fog', 'snow@3', 'contrast@1-5', or mappings) drawn
    one per sample with probability `p` (default 1; a recipe's own `p`), a mode-'random' recipe
    (path, mapping or Recipe), or None (clean). seed: the transform seed for lists and recipes
    (None: the recipe's, else 0); a transform instance keeps its own seed, and `seed` (default 0)
    then seeds the shuffles.
    batch_size: yield {'image': (B, C, H, W), 'label': (B,) long (-1 = none), 'key': [B]}; None
    yields one sample at a time (corrupted in chunks of the same size, same output). partial:
    keep the last, smaller batch. shuffle: sample buffer size (0: file order; > 0 also permutes the
    shards per epoch). decode: 'float' (float32 in [0, 1]) or 'uint8' (transform output rounded).
    device: where the batch is corrupted and returned ('cuda' only with num_workers=0 or a
    'spawn' DataLoader). image_mode ('RGB' or 'L'), resize, center_crop, max_pixels: decoding as
    the readers' mode/resize/center_crop/max_pixels options do it (a recipe's input options are
    the defaults).
    on_error: 'raise' on an unreadable sample, or 'skip' it with a warning.
    allow_pipe: accept `pipe:CMD` sources (CMD runs in a shell in each reader); refused by default.
    """
    recipe_decode: dict[str, Any] = {}
    if _is_recipe(ops_or_recipe):
        entries, recipe_seed, recipe_decode, recipe_p = load_random_recipe(ops_or_recipe)
        seed = recipe_seed if seed is None else seed
        transform = RandomOpChoice(entries, p=recipe_p if p is None else p, seed=seed)
    else:
        seed = 0 if seed is None else seed
        transform = resolve_transform(ops_or_recipe, seed, 1.0 if p is None else p)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidParameterError(f"stream: seed must be an int, got {seed!r}")
    for name, value, choices in (("split", split, SPLITS), ("decode", decode, DECODES),
                                 ("on_error", on_error, ("raise", "skip"))):
        if value not in choices:
            raise InvalidParameterError(f"stream: {name} must be one of {choices}, got {value!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("shuffle", shuffle, 0), ("epoch", epoch, 0)):
        if value is None and name == "batch_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidParameterError(f"stream: {name} must be an int >= {low}, got {value!r}")
    given = {"mode": image_mode, "resize": resize, "center_crop": center_crop, "max_pixels": max_pixels}
    options = {**recipe_decode, **{k: v for k, v in given.items() if v is not None}}
    options.setdefault("max_pixels", DEFAULT_MAX_PIXELS)
    preprocess = Preprocess.from_options(**options)
    rank, world_size = resolve_rank(rank, world_size)
    if not isinstance(allow_pipe, bool):
        raise InvalidParameterError(f"stream: allow_pipe must be True or False, got {allow_pipe!r}")
    shards = resolve_sources(urls, allow_pipe=allow_pipe)
    cfg = StreamConfig(shards=shards, transform=transform, seed=seed, epoch=epoch, rank=rank,
                       world_size=world_size, split=split, shuffle=shuffle, batch_size=batch_size,
                       partial=bool(partial), decode=decode, device=str(torch.device(device)),
                       preprocess=preprocess, on_error=on_error, allow_pipe=allow_pipe)
    return StreamDataset(cfg)

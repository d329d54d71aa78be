"""augforge.stream: exact coverage across ranks × workers, per-key determinism, safe decoding."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

import augforge
from augforge.core.errors import AugforgeError, BadInputError, InvalidParameterError, RecipeError
from augforge.pipelines.stream import StreamDataset
from augforge.transforms import AugMix, HybridAugmentPP, RandomCorruption

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"
N_SHARDS, PER_SHARD, SIDE = 5, 5, 32
OPS = ["gaussian_noise@2", "contrast@1-3", "pixelate@4"]


def _pictures(count: int) -> list[np.ndarray]:
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SAMPLES.rglob("*.png"))]
    return [photos[i % len(photos)][7 * i:7 * i + SIDE, 5 * i:5 * i + SIDE].copy() for i in range(count)]


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _write_shard(path: Path, samples: list[dict[str, Any]]) -> None:
    with wds.TarWriter(str(path)) as writer:
        for sample in samples:
            writer.write(sample)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """5 shards × 5 samples of 32×32 crops; labels stored as .cls, .txt or .json in turn."""
    root = tmp_path_factory.mktemp("clean")
    pics = _pictures(N_SHARDS * PER_SHARD)
    expected: dict[str, tuple[int, np.ndarray]] = {}
    for s in range(N_SHARDS):
        samples = []
        for j in range(PER_SHARD):
            i = s * PER_SHARD + j
            key, label = f"part{s}/img_{i:03d}", i % 7
            member = [("cls", str(label).encode()), ("txt", f"{label}\n".encode()),
                      ("json", json.dumps({"label": label, "source": "x"}).encode())][i % 3]
            samples.append({"__key__": key, "png": _png(pics[i]), member[0]: member[1]})
            expected[key] = (label, pics[i])
        _write_shard(root / f"clean-{s:06d}.tar", samples)
    return {"root": root, "pattern": str(root / "clean-{000000..000004}.tar"), "expected": expected,
            "paths": sorted(str(p) for p in root.glob("clean-*.tar"))}


def _collect(ds: StreamDataset, num_workers: int = 0) -> list[dict[str, Any]]:
    """Every sample of one epoch as {key, image, label} (unbatching batches)."""
    out = []
    for item in ds.loader(num_workers=num_workers):
        if isinstance(item["key"], list):
            for i, key in enumerate(item["key"]):
                image = item["image"]
                image = tuple(t[i] for t in image) if isinstance(image, tuple) else image[i]
                out.append({"key": key, "image": image, "label": int(item["label"][i])})
        else:
            out.append(item)
    return out


@pytest.mark.parametrize(("n_shards", "shuffle", "level"),
                         [(5, 0, "shard"), (4, 7, "shard"), (3, 0, "sample")])
def test_ranks_times_workers_cover_every_sample_once(shards, n_shards, shuffle, level):
    paths = shards["paths"][:n_shards]
    wanted = sorted(k for k in shards["expected"] if int(k[4]) < n_shards)
    seen: list[str] = []
    for rank in (0, 1):
        ds = augforge.stream(paths, None, batch_size=3, shuffle=shuffle, rank=rank, world_size=2, seed=5)
        got = [s["key"] for s in _collect(ds, num_workers=2)]
        assert got, f"rank {rank} got no samples"
        seen += got
    assert len(seen) == len(wanted)  # no duplicates ...
    assert sorted(seen) == wanted  # ... and no gaps
    from augforge.pipelines.stream import split_level

    assert split_level(ds.cfg, 4) == level


def test_shard_split_refuses_too_few_shards(shards):
    ds = augforge.stream(shards["paths"][:3], None, rank=0, world_size=2, split="shard")
    with pytest.raises(AugforgeError, match="3 shard"):
        _collect(ds, num_workers=2)


def _same(a: torch.Tensor | tuple[torch.Tensor, ...], b: torch.Tensor | tuple[torch.Tensor, ...]) -> bool:
    pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
    return all(torch.equal(u, v) for u, v in pairs)


@pytest.mark.parametrize("ops", [lambda: HybridAugmentPP(mode="single", seed=3), lambda: OPS,
                                 lambda: AugMix(jsd=True, seed=3)], ids=["happ", "op-list", "augmix-jsd"])
def test_output_depends_only_on_seed_epoch_key(shards, ops):
    reference = {s["key"]: s["image"] for s in _collect(augforge.stream(shards["pattern"], ops(), seed=3,
                                                                       batch_size=7))}
    assert len(reference) == N_SHARDS * PER_SHARD
    changed = [k for k, img in reference.items()
               if not torch.equal(img[-1] if isinstance(img, tuple) else img,
                                  torch.from_numpy(shards["expected"][k][1]).permute(2, 0, 1) / 255)]
    assert len(changed) > len(reference) // 2, "the transform left most samples unchanged"
    spread = []
    for rank in (0, 1):
        ds = augforge.stream(shards["pattern"], ops(), seed=3, batch_size=None, shuffle=6, rank=rank,
                             world_size=2, split="sample")
        spread += _collect(ds, num_workers=2)
    assert sorted(s["key"] for s in spread) == sorted(reference)
    for s in spread:
        assert _same(s["image"], reference[s["key"]]), s["key"]


def test_new_epoch_changes_draws_and_old_epoch_repeats(shards):
    ds = augforge.stream(shards["pattern"], OPS, seed=1, batch_size=4)
    first = {s["key"]: s["image"] for s in _collect(ds)}
    ds.set_epoch(1)
    second = {s["key"]: s["image"] for s in _collect(ds)}
    differ = sum(not torch.equal(first[k], second[k]) for k in first)
    assert differ > len(first) // 2
    ds.set_epoch(0)
    again = {s["key"]: s["image"] for s in _collect(ds, num_workers=2)}
    assert all(torch.equal(first[k], again[k]) for k in first)
    other_seed = {s["key"]: s["image"] for s in _collect(augforge.stream(shards["pattern"], OPS, seed=2))}
    assert sum(not torch.equal(first[k], other_seed[k]) for k in first) > len(first) // 2


def test_op_list_draws_like_random_corruption(shards):
    names = ["gaussian_noise", "contrast", "pixelate"]
    ds = augforge.stream(shards["pattern"], names, seed=4, epoch=2, p=0.5, batch_size=25)
    batch = next(iter(ds))
    clean = torch.stack([torch.from_numpy(shards["expected"][k][1]).permute(2, 0, 1) for k in batch["key"]])
    rc = RandomCorruption(ops=names, p=0.5, seed=4)
    rc.set_epoch(2)
    assert torch.equal(batch["image"], rc(clean.float() / 255, keys=batch["key"]))


def test_labels_keys_and_pixels_come_through(shards):
    got = _collect(augforge.stream(shards["pattern"], decode="uint8", batch_size=4), num_workers=2)
    assert len(got) == len(shards["expected"])
    for s in got:
        label, pixels = shards["expected"][s["key"]]
        assert s["label"] == label
        assert s["image"].dtype == torch.uint8
        assert np.array_equal(s["image"].permute(1, 2, 0).numpy(), pixels)


class _Payload:
    """Unpickling this writes a file: proof that a member was executed."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def test_pickle_members_are_never_executed(tmp_path):
    pic = _pictures(2)
    probe = tmp_path / "probe.txt"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.read_text() == "pwned", "the payload must be able to write its file"
    target = tmp_path / "written_by_unpickling.txt"
    evil = pickle.dumps(_Payload(target))
    _write_shard(tmp_path / "evil.tar", [
        {"__key__": "a", "png": _png(pic[0]), "cls": b"1", "pyd": evil, "pickle": evil, "pth": evil},
        {"__key__": "b", "pyd": evil},
        {"__key__": "c", "png": _png(pic[1]), "json": b'{"label": 2}', "pickle": evil},
    ])
    from augforge.pipelines.stream import wanted_member

    names = ("a.png", "a.JPG", "d/a.cls", "a.json", "a.txt", "a.pyd", "a.pickle", "a.pth", "a.npy", "a")
    assert [wanted_member(n) for n in names] == [True] * 5 + [False] * 5
    got = _collect(augforge.stream(tmp_path / "evil.tar", OPS, batch_size=None))
    assert [(s["key"], s["label"]) for s in got] == [("a", 1), ("c", 2)]
    assert not target.exists()


def test_bad_samples_raise_or_are_skipped_with_a_warning(tmp_path):
    pic = _pictures(2)
    _write_shard(tmp_path / "bad.tar", [
        {"__key__": "good", "png": _png(pic[0])},
        {"__key__": "broken", "png": _png(pic[1])[:60]},
        {"__key__": "nolabel", "png": _png(pic[1]), "cls": b"cat"},
    ])
    with pytest.raises(BadInputError, match="broken"):
        _collect(augforge.stream(tmp_path / "bad.tar"))
    with pytest.warns(UserWarning) as caught:
        got = _collect(augforge.stream(tmp_path / "bad.tar", on_error="skip"))
    assert [(s["key"], s["label"]) for s in got] == [("good", -1)]
    reasons = [str(w.message) for w in caught]
    assert len(reasons) == 2 and "broken" in reasons[0] and "not an integer label" in reasons[1]


def test_recipe_in_random_mode(shards, tmp_path):
    recipe = tmp_path / "train.yaml"
    recipe.write_text("mode: random\nseed: 9\nops: [gaussian_noise@2, contrast@1-3, pixelate@4]\n"
                      "input: {reader: folder, options: {resize: 40, center_crop: 32}}\n")
    ds = augforge.stream(shards["pattern"], recipe, batch_size=25)
    assert ds.cfg.seed == 9 and ds.cfg.preprocess.center_crop == (32,)
    batch = next(iter(ds))
    from augforge.transforms.choice import RandomOpChoice

    resized = augforge.stream(shards["pattern"], None, batch_size=25, resize=40, center_crop=32)
    clean = next(iter(resized))["image"]
    # recipe entries carry the op's first preset, as the offline pipeline resolves them
    expected = RandomOpChoice([{"name": n, "severities": s, "preset": "imagenet"} for n, s in
                               (("gaussian_noise", [2]), ("contrast", [1, 2, 3]), ("pixelate", [4]))], seed=9)
    assert torch.equal(batch["image"], expected(clean, keys=batch["key"]))
    grid = tmp_path / "grid.yaml"
    grid.write_text("ops: [fog@3]\n")
    with pytest.raises(RecipeError, match="mode: random"):
        augforge.stream(shards["pattern"], grid)


def test_rank_from_environment_and_argument_checks(shards, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = augforge.stream(shards["pattern"])
    assert (ds.cfg.rank, ds.cfg.world_size) == (1, 3)
    assert sorted(s["key"] for s in _collect(ds)) == sorted(k for k in shards["expected"] if k[4] in "14")
    with pytest.raises(InvalidParameterError, match="paired"):
        augforge.stream(shards["pattern"], HybridAugmentPP(mode="paired"))
    with pytest.raises(InvalidParameterError, match="rank"):
        augforge.stream(shards["pattern"], rank=2, world_size=2)
    with pytest.raises(AugforgeError, match="refused unless explicitly allowed"):
        augforge.stream("pipe:cat /etc/passwd")


def test_import_augforge_does_not_import_webdataset():
    import subprocess
    import sys

    code = "import sys, augforge; assert callable(augforge.stream); print('webdataset' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"

"""The shard writer's 8-bit path: ops with `apply_uint8` skip the float round trip under 'truncate'
quantisation, and the shards stay byte-identical to the float path's; the batch conversions
equal the plain formulas they replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from augforge.core.op import Op
from augforge.core.registry import list_ops
from augforge.core.tensors import to_float, to_uint8, to_uint8_batch, uint8_to_numpy
from augforge.pipelines import ShardConfig, load_recipe, make_plan, run_shard
from tests.pipelines.conftest import recipe_dict, small_pictures

pytestmark = pytest.mark.timeout(120)

UINT8_OPS = [spec for spec in list_ops() if spec.cls.takes_uint8()]


def _inputs(tmp_path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(reader, path, options): RGB pictures of two sizes, and grey ones of an odd size."""
    folder = tmp_path / "rgb"
    small_pictures(folder / "a", 5, side=40)
    small_pictures(folder / "b", 4, side=33)
    grey = np.random.default_rng(3).integers(0, 256, (7, 35, 29), dtype=np.uint8)
    np.save(tmp_path / "grey.npy", grey)
    return [("folder", str(folder), {}), ("numpy", str(tmp_path / "grey.npy"), {})]


def _shards(tmp_path: Path, name: str, reader: str, path: str, options: dict[str, Any],
            quantize: str, tag: str) -> list[bytes]:
    """Every shard of `name` at all its severities over the input, as bytes (batch 3, 4 per shard)."""
    out = tmp_path / tag
    recipe = load_recipe(recipe_dict(out, input_path=path, ops=[f"{name}@1-5"],
                                     input={"reader": reader, "path": path, "options": options},
                                     output={"samples_per_shard": 4, "quantize": quantize}))
    n = 9 if reader == "folder" else 7
    plan = make_plan(recipe, n, path)
    cfg = ShardConfig(out_dir=str(out), reader=reader, path=path, options=options, seed=11,
                      quantize=quantize, batch_size=3, plan_fingerprint=plan.fingerprint)
    return [(out / run_shard(t, cfg).path).read_bytes() for t in plan.tasks]


def test_the_uint8_ops_include_the_codec_ops() -> None:
    names = {spec.name for spec in UINT8_OPS}
    assert {"jpeg_compression", "pixelate"} <= names


@pytest.mark.parametrize("spec", UINT8_OPS, ids=lambda s: s.name)
def test_uint8_path_writes_the_float_paths_bytes(tmp_path: Path, spec: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.dtype] = []
    original = spec.cls.apply_uint8

    def spying(self: Op, x: torch.Tensor, gens: Any) -> torch.Tensor:
        calls.append(x.dtype)
        return original(self, x, gens)

    monkeypatch.setattr(spec.cls, "apply_uint8", spying)
    for reader, path, options in _inputs(tmp_path):
        fast = _shards(tmp_path, spec.name, reader, path, options, "truncate", f"{reader}-u8")
        assert calls and set(calls) == {torch.uint8}  # the 8-bit kernel ran
        calls.clear()
        _shards(tmp_path, spec.name, reader, path, options, "round", f"{reader}-round")
        assert not calls  # 'round' quantisation needs the float result
        with monkeypatch.context() as m:
            m.setattr(spec.cls, "takes_uint8", classmethod(lambda cls: False))
            slow = _shards(tmp_path, spec.name, reader, path, options, "truncate", f"{reader}-float")
        assert not calls
        assert len(fast) == len(slow) > 1
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
            assert a == b, f"{spec.name} over {reader}: shard {i} differs between the uint8 and float paths"


def _plain_to_uint8(x: torch.Tensor, mode: str) -> np.ndarray:
    """The formula to_uint8 implements: clip to [0, 1], x255 in float64, +1e-4 then floor (truncate)
    or round, NHWC."""
    s = x.to(torch.float64).clamp(0, 1) * 255.0
    s = torch.floor(s + 1e-4) if mode == "truncate" else torch.round(s)
    return s.to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_uint8_equals_the_plain_formula(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (6, 3, 9, 7), generator=gen).to(torch.float64)
    near = levels / 255 + torch.randn(levels.shape, generator=gen, dtype=torch.float64) * 1e-6  # at the edges
    x = near.to(dtype)
    x.view(-1)[:4] = torch.tensor([-0.25, 1.75, 1.0, 0.0], dtype=dtype)  # out of range and the ends
    for v in (x, x[:, :1], x.permute(0, 1, 3, 2), x[:, :, ::2]):  # grey, transposed, strided
        for mode in ("truncate", "round"):
            got = to_uint8(v, mode=mode)
            assert got.flags.c_contiguous and got.shape == (v.shape[0], v.shape[2], v.shape[3], v.shape[1])
            np.testing.assert_array_equal(got, _plain_to_uint8(v, mode))
    assert to_uint8(torch.full((1, 3, 2, 2), 183 / 255, dtype=torch.float32)).max() == 183  # the slack


def test_to_float_and_uint8_batches_equal_the_plain_formulas() -> None:
    rng = np.random.default_rng(1)
    rgb = [rng.integers(0, 256, (5, 7, 3), dtype=np.uint8) for _ in range(4)]
    grey = rng.integers(0, 256, (2, 6, 4, 1), dtype=np.uint8)
    flipped = rgb[0][:, ::-1]  # not contiguous
    cases = ((rgb, np.stack(rgb)), (grey, grey), (list(grey), grey), ([flipped], flipped[None]))
    for images, nhwc in cases:
        plain = torch.from_numpy(np.ascontiguousarray(nhwc)).permute(0, 3, 1, 2)
        got = to_float(images)
        assert got.dtype == torch.float32 and got.is_contiguous()
        assert torch.equal(got, plain.float() / 255.0)
        u8 = to_uint8_batch(images)
        assert u8.dtype == torch.uint8 and u8.is_contiguous() and torch.equal(u8, plain)
        back = uint8_to_numpy(u8)
        assert back.flags.c_contiguous
        np.testing.assert_array_equal(back, nhwc)
    frozen = np.stack(rgb)
    frozen.flags.writeable = False
    assert torch.equal(to_float(frozen), to_float(rgb))


def test_input_batches_are_converted_once_per_run_and_copied_per_use(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import augforge.core.tensors as tensors
    from augforge.core.registry import get_op
    from augforge.pipelines import shards

    recipe = load_recipe(recipe_dict(tmp_path, ops=["brightness@3", "contrast@2", "defocus_blur@1"],
                                     output={"samples_per_shard": 5}))
    plan = make_plan(recipe, 10, recipe.input.path)
    first = [t for t in plan.tasks if t.start == 0]  # three ops over rows 0-4
    cfg = ShardConfig(out_dir=str(tmp_path / "plain"), reader="folder", path=str(recipe.input.path),
                      options=dict(recipe.input.options), seed=7, batch_size=2)
    plain = [(tmp_path / "plain" / run_shard(t, cfg).path).read_bytes() for t in first]  # no run id: no cache

    conversions: list[str] = []
    for name in ("to_float", "to_uint8_batch"):
        original = getattr(tensors, name)

        def counting(images: Any, _original: Any = original) -> torch.Tensor:
            conversions.append(_original.__name__)
            return _original(images)

        counting.__name__ = name
        monkeypatch.setattr(tensors, name, counting)
    brightness = get_op("brightness").cls
    for kernel in ("apply", "apply_uint8"):  # an op that writes into its input must not spoil the cache
        inner = getattr(brightness, kernel)

        def spoiling(self: Op, x: torch.Tensor, gens: Any, _inner: Any = inner) -> torch.Tensor:
            out = _inner(self, x.clone(), gens)
            x.zero_()
            return out

        monkeypatch.setattr(brightness, kernel, spoiling)
    cached_cfg = ShardConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "cached"), "run_id": "run-1"})
    cached = []
    for task in first:
        before = len(conversions)
        cached.append((tmp_path / "cached" / run_shard(task, cached_cfg).path).read_bytes())
        kinds = conversions[before:]
        if task.op == "brightness":  # first use of the rows: 3 batches (2 + 2 + 1 pictures)
            assert kinds == ["to_uint8_batch"] * 3
        elif task.op == "contrast":  # the same batches, same kind: from the cache
            assert kinds == []
        else:  # a float op: converted once as floats
            assert kinds == ["to_float"] * 3
    assert cached == plain
    assert shards._BATCH_CACHE  # kept for the next tasks of the run

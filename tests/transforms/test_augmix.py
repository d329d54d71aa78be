"""AugMix module: mixing distributions, chain structure, end-to-end equality with a PIL re-implementation
driven by the same draws, presets and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from augforge.core.errors import InvalidParameterError
from augforge.ops.frequency.augmix_ops import IDENTITY, OPS
from augforge.ops.frequency.sampling import TRIES, beta_from_draws, dirichlet_from_draws, gamma_from_draws
from augforge.transforms._common import normals, uniforms
from augforge.transforms.augmix import AugMix, augmix_draw_count, augmix_plan
from tests.transforms.conftest import to_tensor
from tests.transforms.test_augmix_ops import pil_op

N = 20000


def _draws(n_u: int, n_z: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(N, n_u, generator=g, dtype=torch.float64),
            torch.randn(N, n_z, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_gamma_draws_follow_gamma(alpha):
    u, z = _draws(TRIES + 1, TRIES, seed=int(alpha * 10))
    g = gamma_from_draws(alpha, u, z).numpy()
    assert stats.kstest(g, stats.gamma(alpha).cdf).pvalue > 1e-3
    assert abs(g.mean() - alpha) < 4 * np.sqrt(alpha / N)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 4.0])
def test_dirichlet_and_beta_moments(alpha):
    """Weights ~ Dirichlet(α·1_3): mean 1/3, var 2/(9(3α+1)); m ~ Beta(α, α): mean 1/2, var 1/(4(2α+1))."""
    k = 3
    u, z = _draws(k * (TRIES + 1), k * TRIES, seed=1)
    w = dirichlet_from_draws(alpha, k, u, z)
    torch.testing.assert_close(w.sum(1), torch.ones(N, dtype=torch.float64))
    assert (w > 0).all()
    torch.testing.assert_close(w.mean(0), torch.full((k,), 1 / k, dtype=torch.float64), atol=0.01, rtol=0)
    var = (k - 1) / (k * k * (k * alpha + 1))
    assert torch.allclose(w.var(0), torch.full((k,), var, dtype=torch.float64), rtol=0.06)
    cov01 = float(((w[:, 0] - 1 / k) * (w[:, 1] - 1 / k)).mean())
    assert abs(cov01 - (-1 / (k * k * (k * alpha + 1)))) < 0.1 * var
    u2, z2 = _draws(2 * (TRIES + 1), 2 * TRIES, seed=2)
    m = beta_from_draws(alpha, alpha, u2, z2)
    assert abs(float(m.mean()) - 0.5) < 0.01
    assert abs(float(m.var()) - 1 / (4 * (2 * alpha + 1))) < 0.06 / (4 * (2 * alpha + 1))


def _plan(width=3, depth=-1, alpha=1.0, severity=3, n_ops=9, seed=3):
    nu, nz = augmix_draw_count(width, depth)
    u, z = _draws(nu, nz, seed)
    return augmix_plan(u, z, width=width, depth=depth, alpha=alpha, n_ops=n_ops, severity=severity)


def test_plan_mixing_weights_change_with_alpha():
    var = {a: float(_plan(alpha=a).weights.var()) for a in (0.5, 1.0, 4.0)}
    assert var[0.5] > 1.3 * var[1.0] > 1.3 * 1.3 * var[4.0]
    m_var = {a: float(_plan(alpha=a).mix.var()) for a in (0.5, 1.0)}
    assert abs(m_var[1.0] - 1 / 12) < 0.005 and abs(m_var[0.5] - 1 / 8) < 0.007


def test_chain_depth_uniform_and_ops_with_replacement():
    plan = _plan()
    depths = plan.depths.flatten()
    freq = torch.bincount(depths, minlength=4)[1:].double() / depths.numel()
    torch.testing.assert_close(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01, rtol=0)
    active = plan.ops != IDENTITY
    assert torch.equal(active.sum(-1), plan.depths)  # steps past the depth are identity
    op_freq = torch.bincount(plan.ops[active], minlength=9).double() / int(active.sum())
    torch.testing.assert_close(op_freq, torch.full((9,), 1 / 9, dtype=torch.float64), atol=0.006, rtol=0)
    two = plan.depths >= 2
    repeat = float((plan.ops[..., 0] == plan.ops[..., 1])[two].double().mean())
    assert abs(repeat - 1 / 9) < 0.01  # drawn with replacement: a repeat is as likely as any op
    lv = plan.levels[active]
    assert lv.min() >= 0.1 and lv.max() < 3 and abs(float(lv.mean()) - 1.55) < 0.02
    assert abs(float(plan.negate[active].double().mean()) - 0.5) < 0.01


def test_fixed_depth_and_all_ops():
    plan = _plan(depth=2, n_ops=13, severity=1)
    assert (plan.depths == 2).all() and plan.ops.shape[-1] == 2 and (plan.ops != IDENTITY).all()
    assert set(plan.ops.unique().tolist()) == set(range(13))
    assert plan.levels.max() < 1


def _pil_augmix(pictures: np.ndarray, plan, image_size: int) -> torch.Tensor:
    """AugMix's augment_and_mix re-done with PIL, one image and one op at a time."""
    out = []
    for i, a in enumerate(pictures):
        clean = torch.from_numpy(a).permute(2, 0, 1).float() / 255
        mix = torch.zeros_like(clean)
        for j in range(plan.weights.shape[1]):
            img = Image.fromarray(a)
            for s in range(int(plan.depths[i, j])):
                name = OPS[int(plan.ops[i, j, s])]
                lv, sign = float(plan.levels[i, j, s]), -1 if bool(plan.negate[i, j, s]) else 1
                param = {
                    "posterize": 4 - int(lv * 4 / 10), "solarize": 256 - int(lv * 256 / 10),
                    "rotate": sign * int(lv * 30 / 10), "shear_x": sign * lv * 0.3 / 10,
                    "shear_y": sign * lv * 0.3 / 10, "translate_x": sign * int(lv * (image_size / 3) / 10),
                    "translate_y": sign * int(lv * (image_size / 3) / 10),
                }.get(name, lv * 1.8 / 10 + 0.1)
                img = pil_op(img, name, param)
            mix += float(plan.weights[i, j]) * torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1) / 255
        m = float(plan.mix[i])
        out.append((1 - m) * clean + m * mix)
    return torch.stack(out)


@pytest.mark.parametrize(("preset", "all_ops", "jsd"), [("cifar", False, False), ("imagenet", True, True)])
def test_augmix_equals_pil_reimplementation(pictures32, preset, all_ops, jsd):
    """The module's output equals PIL AugMix driven by the same per-sample draws."""
    t = AugMix(preset=preset, all_ops=all_ops, jsd=jsd, seed=11)
    keys = [f"img{i}" for i in range(len(pictures32))]
    out = t(to_tensor(pictures32), keys=keys)
    nu, nz = augmix_draw_count(3, -1)
    gens = t.generators(len(keys), torch.device("cpu"), keys)
    n_aug = 2 if jsd else 1
    u, z = uniforms(gens, n_aug * nu, torch.device("cpu")), normals(gens, n_aug * nz, torch.device("cpu"))
    severity = 3 if preset == "cifar" else 1
    outs = out[1:] if jsd else (out,)
    if jsd:
        assert torch.equal(out[0], to_tensor(pictures32))
    for a, got in enumerate(outs):
        plan = augmix_plan(u[:, a * nu:(a + 1) * nu], z[:, a * nz:(a + 1) * nz], width=3, depth=-1, alpha=1.0,
                           n_ops=13 if all_ops else 9, severity=severity)
        torch.testing.assert_close(got, _pil_augmix(pictures32, plan, 32), atol=2e-6, rtol=0)


def test_presets_and_defaults():
    c, i = AugMix(), AugMix(preset="imagenet")
    assert (c.severity, c.width, c.depth, c.alpha, c.all_ops, c.jsd) == (3, 3, -1, 1.0, False, False)
    assert (i.severity, i.width, i.depth, i.alpha) == (1, 3, -1, 1.0)
    assert len(c.op_names) == 9 and len(AugMix(all_ops=True).op_names) == 13
    assert AugMix(preset="imagenet", severity=4).severity == 4


@pytest.mark.parametrize(("kwargs", "word"), [
    ({"preset": "svhn"}, "preset"), ({"severity": 0}, "severity"), ({"severity": 11}, "severity"),
    ({"severity": 2.5}, "severity"), ({"width": 0}, "width"), ({"depth": 0}, "depth"),
    ({"depth": -2}, "depth"),
    ({"alpha": 0.0}, "alpha"), ({"alpha": float("nan")}, "alpha"), ({"all_ops": 1}, "all_ops"),
    ({"jsd": "yes"}, "jsd"), ({"image_size": 0}, "image_size"), ({"seed": 1.5}, "seed"),
])
def test_bad_arguments(kwargs, word):
    with pytest.raises(InvalidParameterError, match=word):
        AugMix(**kwargs)

import pytest
import torch

from augforge.core import registry
from augforge.core.errors import InvalidInputError, InvalidParameterError
from augforge.core.op import Op
from augforge.core.registry import register_op


@pytest.fixture
def noisy():
    @register_op("toy_noise", family="image", reference="test", deterministic=False)
    class ToyNoise(Op):
        """Add noise."""

        PARAMS = ("sigma",)
        TABLES = {"p": [(0.1,), (0.2,), (0.3,), (0.4,), (0.5,)]}  # noqa: RUF012

        def apply(self, x, gens):
            noise = torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype) for g in gens])
            return x + self.params["sigma"] * noise

    yield ToyNoise
    registry._REGISTRY.pop("toy_noise")


def test_rng_forms(noisy):
    op = noisy(2)
    x = torch.full((3, 3, 8, 8), 0.5)
    assert torch.equal(op(x, 1), op(x, 1))
    assert not torch.equal(op(x, 1), op(x, 2))
    by_key = op(x, 1, keys=["a", "b", "c"])
    assert torch.equal(op(x[1:2], 1, keys=["b"]), by_key[1:2])
    g = torch.Generator().manual_seed(3)
    first = op(x, g)
    assert first.shape == x.shape
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    assert op(x, gens).shape == x.shape


def test_rng_errors(noisy):
    op = noisy(2)
    x = torch.full((2, 3, 8, 8), 0.5)
    with pytest.raises(InvalidParameterError, match="is random"):
        op(x)
    with pytest.raises(InvalidParameterError):
        op(x, [torch.Generator()])
    with pytest.raises(InvalidParameterError):
        op(x, True)
    with pytest.raises(InvalidInputError, match="keys"):
        op(x, 0, keys=["a"])


def test_dtype_round_trip_and_clamp(noisy):
    op = noisy(5)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        out = op(torch.full((1, 3, 8, 8), 0.5, dtype=dtype), 0)
        assert out.dtype == dtype and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.zeros(3, 8, 8), "shape"),
        (torch.zeros(1, 2, 8, 8), "channels"),
        (torch.zeros(1, 3, 7, 8), "at least"),
        (torch.zeros(0, 3, 8, 8), "empty"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float"),
        (torch.full((1, 3, 8, 8), 2.0), r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
    ],
)
def test_input_validation(noisy, x, match):
    with pytest.raises(InvalidInputError, match=match):
        noisy(1)(x, 0)
    with pytest.raises(InvalidInputError):
        noisy(1)([[0.0]], 0)  # type: ignore[arg-type]


def test_repr(noisy):
    assert "sigma=0.3" in repr(noisy(3))

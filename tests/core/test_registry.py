import pytest
import torch

from augforge.core import registry
from augforge.core.errors import InvalidParameterError, InvalidSeverityError, UnknownOpError
from augforge.core.op import Op
from augforge.core.registry import build_op, get_op, list_ops, register_op


@pytest.fixture
def toy_op():
    """A throwaway registered op (removed afterwards) to test the machinery itself."""

    @register_op("toy_scale", family="image", reference="test", deterministic=True)
    class ToyScale(Op):
        """Scale pixel values."""

        PARAMS = ("factor",)
        TABLES = {  # noqa: RUF012
            "a": [(0.9,), (0.8,), (0.7,), (0.6,), (0.5,)],
            "b": [(1.0,), (0.5,), (0.4,), (0.3,), (0.2,)],
        }

        def check_params(self, params):
            if params["factor"] < 0:
                raise InvalidParameterError("factor must be >= 0")
            return params

        def apply(self, x, gens):
            return x * self.params["factor"]

    yield ToyScale
    registry._REGISTRY.pop("toy_scale")


def test_register_and_build(toy_op):
    spec = get_op("toy_scale")
    assert spec.cls is toy_op and spec.presets == ("a", "b") and spec.param_names == ("factor",)
    assert spec.summary == "Scale pixel values."
    assert spec.params(2) == {"factor": 0.8} and spec.params(2, "b") == {"factor": 0.5}
    op = build_op("toy_scale", 5, preset="b")
    assert op.params == {"factor": 0.2}
    assert torch.allclose(op(torch.ones(1, 3, 8, 8)), torch.full((1, 3, 8, 8), 0.2))
    assert build_op("toy_scale", 1, factor=0.25).params == {"factor": 0.25}
    assert "toy_scale" in [s.name for s in list_ops("image")]


def test_construction_errors(toy_op):
    with pytest.raises(InvalidSeverityError, match="choose one of"):
        build_op("toy_scale", 6)
    with pytest.raises(InvalidSeverityError):
        build_op("toy_scale", 2.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="unknown preset"):
        build_op("toy_scale", 1, preset="zzz")
    with pytest.raises(InvalidParameterError, match="unknown parameter"):
        build_op("toy_scale", 1, sigma=1.0)
    with pytest.raises(InvalidParameterError, match=">= 0"):
        build_op("toy_scale", 1, factor=-1.0)


def test_duplicate_registration_is_refused(toy_op):
    with pytest.raises(ValueError, match="already registered"):
        register_op("toy_scale", family="image", reference="x", deterministic=True)(type("Other", (Op,), {}))


def test_table_rows_must_match_levels():
    with pytest.raises(ValueError, match="rows"):
        register_op("bad_rows", family="image", reference="x", deterministic=True)(
            type("Bad", (Op,), {"PARAMS": ("a",), "TABLES": {"p": [(1,)]}})
        )


def test_unknown_name_suggests_closest():
    names = [s.name for s in list_ops()]
    assert names, "no operator registered"
    typo = names[0][:-1] + "x"
    with pytest.raises(UnknownOpError, match="did you mean"):
        get_op(typo)
    with pytest.raises(UnknownOpError, match="augforge ops"):
        get_op("qqqqqqqqqq")

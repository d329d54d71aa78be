"""Core pieces every family shares: registry, op base, seeding, validation, errors, tensors."""

from augforge.core.errors import (
    AugforgeError,
    BadInputError,
    InvalidInputError,
    InvalidParameterError,
    InvalidSeverityError,
    RecipeError,
    UnknownOpError,
)
from augforge.core.op import Op
from augforge.core.registry import OpSpec, build_op, get_op, list_ops, register_op
from augforge.core.seeding import derive_seed, generator_for, sample_generators
from augforge.core.tensors import to_float, to_uint8
from augforge.core.validation import check_image_batch

__all__ = [
    "AugforgeError",
    "BadInputError",
    "InvalidInputError",
    "InvalidParameterError",
    "InvalidSeverityError",
    "Op",
    "OpSpec",
    "RecipeError",
    "UnknownOpError",
    "build_op",
    "check_image_batch",
    "derive_seed",
    "generator_for",
    "get_op",
    "list_ops",
    "register_op",
    "sample_generators",
    "to_float",
    "to_uint8",
]

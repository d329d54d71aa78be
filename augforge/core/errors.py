"""Exceptions raised by augforge: one base class so callers can catch everything we raise."""

from __future__ import annotations


class AugforgeError(Exception):
    """Base class of every error augforge raises on purpose."""


class UnknownOpError(AugforgeError, KeyError):
    """An operator name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(AugforgeError, ValueError):
    """A tensor or sample that breaks the operator contract (shape, dtype, range, NaN)."""


class InvalidSeverityError(AugforgeError, ValueError):
    """A severity level the operator does not define."""


class InvalidParameterError(AugforgeError, ValueError):
    """A bad constructor argument or an unknown keyword argument."""


class BadInputError(AugforgeError):
    """An input record that cannot be read; pipelines quarantine it instead of failing."""


class RecipeError(AugforgeError, ValueError):
    """A recipe that does not validate."""

"""Operator families, one sub-package each; `augforge.core.registry.FAMILIES` imports them lazily."""

"""Exceptions shared across layers: a bad configuration is reported the same way whether
``datasets.yaml``, a stage's parameters or a ``--set`` override is at fault.

Examples
--------
>>> try:
...     raise ConfigError("datasets.demo.recipe.n_fft: must be a power of two")
... except ValueError as err:
...     print(err)
datasets.demo.recipe.n_fft: must be a power of two
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration problem, with the key path(s) and the reason."""

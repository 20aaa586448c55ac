"""Exceptions of the store that more than one of its modules raises.

Examples
--------
>>> issubclass(TableMissing, LookupError)
True
"""

from __future__ import annotations

__all__ = ["TableMissing"]


class TableMissing(LookupError):
    """A table the pinned run recorded a version of is not on storage (deleted, or lost in a
    copy): the dataset is broken, and reading the table would silently give no rows (raised
    by :mod:`audiopipe.store.dataset`, and by a vacuum that refuses over it)."""

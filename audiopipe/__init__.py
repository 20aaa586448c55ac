"""audiopipe: audio corpora to analysis-ready datasets.

>>> import audiopipe
>>> ds = audiopipe.open_dataset("data/out", "demo")   # doctest: +SKIP
"""

__version__ = "0.1.0"


def open_dataset(root: str, name: str, run_id: str | None = None):  # noqa: ANN201
    """Open a published dataset; see :func:`audiopipe.store.open_dataset`."""
    from audiopipe.store import open_dataset as _open

    return _open(root, name, run_id)


__all__ = ["__version__", "open_dataset"]

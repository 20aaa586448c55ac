"""audiopipe: audio corpora to analysis-ready datasets."""

__version__ = "0.1.0"

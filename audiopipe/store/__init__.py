"""Storage: Delta Lake tables and Zarr frame parts, and the reader analysts use."""

from audiopipe.store.dataset import Dataset, DatasetNotFound, TableMissing, open_dataset
from audiopipe.store.location import Location

__all__ = ["Dataset", "DatasetNotFound", "Location", "TableMissing", "open_dataset"]

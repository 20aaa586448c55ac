"""Reading features for model stages at scale: part-by-part pooling and Arrow list columns
give what the whole-dataset reads gave."""

from __future__ import annotations

import numpy as np

from audiopipe.stages._common import feature_matrix
from audiopipe.stages._frames import map_frames, read_frames_many, segment_pool


def test_map_frames_equals_reading_every_clip(demo_ds):
    ids = demo_ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()[::-2]  # any order
    whole = read_frames_many(demo_ds, ids, "mfcc")
    pooled, width = map_frames(demo_ds, ids, "mfcc", lambda a: segment_pool(a, 3))
    assert width == whole[0].shape[1]
    np.testing.assert_array_equal(np.stack(pooled), np.stack([segment_pool(a, 3) for a in whole]))
    lengths, _ = map_frames(demo_ds, ids, "mfcc", len)
    assert lengths == [len(a) for a in whole]


def test_feature_matrix_reads_list_columns_as_the_rows_hold_them(demo_ds):
    X, ids, names = feature_matrix(demo_ds, ["mfcc"])
    ft = demo_ds.table("features").to_pandas().set_index("clip_id")
    row = np.concatenate([np.asarray(ft.loc[ids[3], "mfcc_mean"]), np.asarray(ft.loc[ids[3], "mfcc_std"])])
    np.testing.assert_array_equal(X[3], row.astype(np.float32))
    assert names[0] == "mfcc_mean[0]" and len(names) == X.shape[1]

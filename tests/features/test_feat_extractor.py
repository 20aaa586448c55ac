"""extractor: recipe outputs equal the functional API (hence librosa), and streaming in
blocks equals whole-clip extraction."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F

ALL_LIBROSA = {
    "mfcc": {"deltas": 2, "top_db": 80.0},
    "melspectrogram": {"log": True, "top_db": 80.0},
    "spectral_centroid": {}, "spectral_bandwidth": {}, "spectral_rolloff": {},
    "spectral_flatness": {}, "zero_crossing_rate": {}, "rms": {},
}


def test_extractor_matches_librosa_definitions(librosa, clips):
    L = librosa.feature
    for clip, y, sr in clips:
        out = F.Extractor({"compute": ALL_LIBROSA}, sr=sr)(y)
        m = L.mfcc(y=y, sr=sr)
        refs = {"mfcc": m}
        if m.shape[-1] >= 9:  # librosa raises on fewer frames than the delta width
            refs.update(mfcc_delta=L.delta(m), mfcc_delta2=L.delta(m, order=2))
        refs.update({
            "melspectrogram": librosa.power_to_db(L.melspectrogram(y=y, sr=sr)),
            "spectral_centroid": L.spectral_centroid(y=y, sr=sr),
            "spectral_bandwidth": L.spectral_bandwidth(y=y, sr=sr),
            "spectral_flatness": L.spectral_flatness(y=y),
            "zero_crossing_rate": L.zero_crossing_rate(y), "rms": L.rms(y=y),
        })
        for k, ref in refs.items():
            assert_rel(out[k], ref, 1e-4, f"{k} {clip}")
        r = L.spectral_rolloff(y=y, sr=sr)
        assert (out["spectral_rolloff"] != r).mean() < 0.002, clip


def _split(y, n_cuts, seed):
    cuts = np.sort(np.random.default_rng(seed).integers(0, len(y), n_cuts))
    return np.split(y, cuts)  # includes empty and tiny blocks


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_equals_whole_clip(music_clip, seed):
    _, y, sr = music_clip
    recipe = {"compute": {**{k: {**v, "top_db": None} if "top_db" in v else v
                             for k, v in ALL_LIBROSA.items()}}}
    ex = F.Extractor(recipe, sr=sr)
    full = ex(y)
    parts = list(ex.stream(iter(_split(y, 30, seed))))
    assert all(len({p[k].shape[-1] for k in ex.names}) == 1 for p in parts)
    for k in ex.names:
        got = np.concatenate([p[k] for p in parts], axis=-1)
        assert got.shape == full[k].shape, k
        assert_rel(got, full[k], 1e-5, k)


def test_stream_short_clip_and_single_sample_blocks():
    ex = F.Extractor(F.DEFAULT_RECIPE, sr=8000)
    y = noise(3000)
    full = ex(y)
    parts = list(ex.stream(list(y[:40, None].reshape(-1, 1)) + [y[40:]]))
    for k in ex.names:
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts], -1), full[k],
                                   atol=1e-4, err_msg=k)


def test_stream_with_whole_clip_constants_needs_two_passes(music_clip):
    _, y, sr = music_clip
    ex = F.Extractor({"compute": {"mfcc": {"top_db": 80.0}}}, sr=sr)
    blocks = _split(y, 10, 3)
    with pytest.raises(ValueError, match="two passes"):
        list(ex.stream(iter(blocks)))
    full = ex(y)
    for src in (blocks, lambda: iter(blocks)):
        got = np.concatenate([p["mfcc"] for p in ex.stream(src)], -1)
        assert_rel(got, full["mfcc"], 1e-5)

"""extractor: recipe outputs equal the functional API (hence librosa), and streaming in
blocks equals whole-clip extraction."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F
from audiopipe.features.extractor import BLOCK_FRAMES

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


def _all_features(top_db=None, tuning=0.0):
    comp = {name: {} for name in F.FEATURES}
    comp["real_cepstrum"] = {"n_ceps": 30}
    comp["mfcc"] = {"deltas": 2, "top_db": top_db}
    comp["gfcc"] = {"deltas": 1}
    comp["pncc"] = {"deltas": 2}
    comp["chroma_stft"] = {"tuning": tuning}
    comp["onset_strength"] = {"top_db": top_db}
    comp["tempogram"] = {"win_length": 64, "top_db": top_db}
    comp["spectral_contrast"] = {"top_db": top_db}
    comp["melspectrogram"] = {"log": True, "top_db": top_db}
    return {"compute": comp}


@pytest.mark.parametrize("frame_local", [True, False])
def test_stream_equals_whole_clip_for_every_feature(music_clip, frame_local):
    _, y, sr = music_clip
    y = y[: sr * 6]
    recipe = _all_features() if frame_local else _all_features(top_db=80.0, tuning=None)
    ex = F.Extractor(recipe, sr=sr)
    full = ex(y)
    blocks = _split(y, 25, 7)
    src = iter(blocks) if frame_local else (lambda: iter(blocks))
    parts = list(ex.stream(src))
    for k in ex.names:
        got = np.concatenate([p[k] for p in parts], axis=-1)
        assert got.shape == full[k].shape, k
        assert_rel(got, full[k], 1e-5, k)


def test_recipe_features_equal_functional_api(music_clip):
    """The extractor's block computation equals the functional API on the shared spectrum."""
    _, y, sr = music_clip
    y = y[: sr * 6]
    out = F.Extractor(_all_features(top_db=80.0, tuning=None), sr=sr)(y)
    P = np.abs(F.stft(y)) ** 2
    M = np.sqrt(P)
    env = F.onset_strength(y=y, sr=sr)
    refs = {
        "spectrogram": P, "gfcc": F.gfcc(S=P, sr=sr), "bfcc": F.bfcc(S=P, sr=sr),
        "lpcc": F.lpcc(S=P, sr=sr), "pncc": F.pncc(S=P, sr=sr),
        "real_cepstrum": F.real_cepstrum(S=M, n_ceps=30),
        "spectral_contrast": F.spectral_contrast(S=M, sr=sr),
        "spectral_entropy": F.spectral_entropy(S=M), "spectral_flux": F.spectral_flux(S=M),
        "energy": F.energy(y, frame_length=2048, hop_length=512, center=True),
        "energy_entropy": F.energy_entropy(y, frame_length=2048, hop_length=512, center=True),
        "chroma_stft": F.chroma_stft(S=P, sr=sr), "onset_strength": env[None],
        "tempogram": F.tempogram(onset_envelope=env, sr=sr, win_length=64),
        "mfcc": F.mfcc(y=y, sr=sr), "mfcc_delta": F.delta(F.mfcc(y=y, sr=sr)),
    }
    for k, ref in refs.items():
        assert_rel(out[k], ref, 1e-4, k)


def test_stream_memory_is_bounded_by_blocks():
    """Output starts long before the input ends and the extractor's buffer stays small:
    10 minutes at 22.05 kHz in 0.5 s blocks."""
    ex = F.Extractor(F.DEFAULT_RECIPE, sr=22050)
    consumed = []

    def blocks():
        rng = np.random.default_rng(0)
        for i in range(1200):
            consumed.append(i)
            yield (0.1 * rng.standard_normal(11025)).astype(np.float32)

    frames = 0
    for i, part in enumerate(ex.stream(blocks())):
        if i == 0:  # the first block of frames needs BLOCK_FRAMES hops of input
            assert len(consumed) <= 2 + BLOCK_FRAMES * 512 // 11025
        frames += part["mfcc"].shape[1]
        assert part["mfcc"].shape[1] <= BLOCK_FRAMES + 30  # one block (+ held-back frames)
    assert frames == 1 + 1200 * 11025 // 512


def test_interleaved_passes_do_not_share_scratch_and_scratch_is_reused():
    """Two streams of one Extractor advanced in turn (one thread) each get their own scratch
    memory and the same numbers as alone; finished passes give their scratch back."""
    ex = F.Extractor(F.DEFAULT_RECIPE, sr=22050)
    a, b = noise(22050 * 14, seed=1), noise(22050 * 14, seed=2, amp=0.05)
    alone = [list(ex.stream(_split(y, 5, 0))) for y in (a, b)]
    pairs = list(zip(ex.stream(_split(a, 5, 0)), ex.stream(_split(b, 5, 0)), strict=True))
    for i, parts in enumerate(zip(*pairs, strict=True)):
        for k in ex.names:
            np.testing.assert_array_equal(np.concatenate([p[k] for p in parts], axis=-1),
                                          np.concatenate([p[k] for p in alone[i]], axis=-1))
    assert len(ex._scratch_pool) == 2  # two passes ran at once, both gave theirs back
    for _ in range(3):
        ex(a)
    assert len(ex._scratch_pool) == 2  # later calls reuse them

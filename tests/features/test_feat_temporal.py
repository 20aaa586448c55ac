"""temporal: RMS and ZCR against librosa and known answers."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import assert_rel, noise, tone

import audiopipe.features as F
from audiopipe.features.temporal import frame_crossings


def test_rms_zcr_parity_with_librosa(librosa, clips):
    for clip, y, _sr in clips:
        assert_rel(F.rms(y=y), librosa.feature.rms(y=y), 1e-4, f"rms {clip}")
        assert_rel(F.zero_crossing_rate(y), librosa.feature.zero_crossing_rate(y), 1e-6,
                   f"zcr {clip}")


@pytest.mark.parametrize("kw", [dict(frame_length=1000, hop_length=300),
                                dict(frame_length=512, hop_length=128, center=False)])
def test_rms_zcr_options(librosa, music_clip, kw):
    _, y, _ = music_clip
    assert_rel(F.rms(y=y, **kw), librosa.feature.rms(y=y, **kw), 1e-4)
    assert_rel(F.zero_crossing_rate(y, **kw), librosa.feature.zero_crossing_rate(y, **kw), 1e-6)


def test_rms_from_S_matches_librosa(librosa, music_clip):
    _, y, _ = music_clip
    S = np.abs(librosa.stft(y))
    assert_rel(F.rms(S=S), librosa.feature.rms(S=S), 1e-5)


def test_known_answers():
    sr = 16000
    y = tone(1000.0, sr, 1.0, amp=0.5)
    np.testing.assert_allclose(F.rms(y=y)[0, 4:-4], 0.5 / np.sqrt(2), rtol=2e-3)
    z = F.zero_crossing_rate(y)[0, 4:-4]
    np.testing.assert_allclose(z, 2 * 1000 / sr, atol=1.5 / 2048)
    assert np.all(F.zero_crossing_rate(np.full(5000, -0.3, np.float32)) == 0)
    assert F.zero_crossing_rate(noise(20000)).mean() > 0.4


# pyAudioAnalysis (not installed): energy and energy entropy written from its
# ShortTermFeatures.py, per frame, on its normalised signal and 50 ms / 25 ms frames.
EPS = 1e-8


def _paa_energy(x, sr):
    x = x.astype(np.float64)
    x = (x - x.mean()) / (np.abs(x - x.mean()).max() + 1e-10)
    win, step = int(0.050 * sr), int(0.025 * sr)
    en, ent, pos = [], [], 0
    while pos + win - 1 < len(x):
        fr = x[pos : pos + win]
        en.append(np.sum(fr**2) / len(fr))
        total = np.sum(fr**2)
        sub = len(fr) // 10
        s = np.sum(fr[: sub * 10].reshape(sub, 10, order="F") ** 2, axis=0) / (total + EPS)
        ent.append(-np.sum(s * np.log2(s + EPS)))
        pos += step
    return np.array(en), np.array(ent)


def test_energy_and_entropy_match_pyaudioanalysis_formulas(clips):
    for clip, y, sr in clips:
        en, ent = _paa_energy(y, sr)
        yn = (y - y.mean()) / np.abs(y - y.mean()).max()
        np.testing.assert_allclose(F.energy(yn, sr=sr)[0], en, rtol=1e-4, atol=1e-9,
                                   err_msg=clip)
        np.testing.assert_allclose(F.energy_entropy(yn, sr=sr)[0], ent, atol=1e-4,
                                   err_msg=clip)


def test_energy_entropy_detects_abrupt_change():
    sr = 8000
    steady = F.energy_entropy(noise(sr), sr=sr)[0]
    burst = np.zeros(sr, np.float32)
    burst[::400] = 1.0  # one click per 50 ms frame: energy in a single sub-block
    assert steady.min() > 3.2 and F.energy_entropy(burst, sr=sr)[0].max() < 0.1
    np.testing.assert_allclose(F.energy(noise(sr), sr=sr),
                               F.rms(y=noise(sr), frame_length=400, hop_length=200,
                                     center=False) ** 2, rtol=1e-5)


@pytest.mark.parametrize("L,hop", [(2048, 512), (800, 400), (1000, 300), (64, 64), (7, 3)])
def test_frame_crossings_equals_counting_each_frame(L, hop):
    """The chunked / cumulative counts equal counting sign changes frame by frame."""
    rng = np.random.default_rng(L + hop)
    for n_frames, lo, hi, thr in [(1, 0, 10**9, 0.0), (9, 5, 10**9, 0.0), (20, 0, 3 * L, 0.1),
                                  (33, L // 2, L * 5, 1e-10)]:
        seg = rng.standard_normal((2, (n_frames - 1) * hop + L + int(rng.integers(0, 3))))
        seg[:, ::7] = 0.0
        seg = seg.astype(np.float32)
        got = frame_crossings(seg, n_frames, L, hop, thr, lo, hi)
        s = seg < -np.float32(thr) if thr > 0 else np.signbit(seg)
        want = np.zeros((2, n_frames), np.int64)
        for t in range(n_frames):
            for i in range(t * hop, t * hop + L - 1):  # pairs (i, i + 1) inside the frame
                if lo <= i and i + 1 < hi:
                    want[:, t] += s[:, i] != s[:, i + 1]
        np.testing.assert_array_equal(got, want)

"""Transcription: generated tones with known notes, real singing/piano/trumpet, bad input, run()."""

from __future__ import annotations

import os

import mir_eval
import numpy as np
import pytest

from audiopipe.stages import run_stage
from audiopipe.stages._mir import midi_bytes, read_midi_notes
from audiopipe.stages.transcribe import (
    HarmonicNMF,
    hz_to_midi,
    midi_to_hz,
    notes_from_pitch,
    pitch_track,
    transcribe,
)
from tests.stages.mir_data import build_dataset, clip_ids_by_stem, read_audio

SR = 22050


def _melody(notes, sr=SR, n_harm=4, gap=0.05):
    """Harmonic tones ``(onset, offset, midi)`` with 10 ms fades; returns audio."""
    dur = max(n[1] for n in notes) + 0.3
    y = np.zeros(int(dur * sr))
    for on, off, m in notes:
        t = np.arange(int((off - on) * sr)) / sr
        f = float(midi_to_hz(m))
        tone = sum(0.6**h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(n_harm))
        env = np.minimum(1, np.minimum(t / 0.01, (t[-1] - t) / 0.01))
        y[int(on * sr) : int(on * sr) + t.size] += 0.3 * tone * env
    return y.astype(np.float32)


def _f_onset(ref, est, offsets=False):
    ri = np.array([[a, b] for a, b, _ in ref])
    rp = midi_to_hz(np.array([m for _, _, m in ref]))
    if not est:
        return 0.0
    ei = np.array([[a, b] for a, b, _, _ in est])
    ep = midi_to_hz(np.array([n[2] for n in est]))
    return mir_eval.transcription.precision_recall_f1_overlap(
        ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=0.2 if offsets else None
    )[2]


MELODY = [(0.2, 0.6, 60), (0.7, 1.1, 62), (1.2, 1.6, 64), (1.7, 2.3, 67), (2.5, 3.0, 72)]


def test_pitch_track_sine_and_voicing():
    t = np.arange(SR) / SR
    y = np.r_[np.zeros(SR // 2), 0.5 * np.sin(2 * np.pi * 196.0 * t), np.zeros(SR // 2)]
    f0, voiced, prob = pitch_track(y.astype(np.float32), SR, hop_length=256)
    mid = slice(int(0.7 * SR / 256), int(1.3 * SR / 256))
    assert voiced[mid].all() and np.allclose(f0[mid], 196.0, rtol=0.005)
    assert not voiced[: int(0.4 * SR / 256)].any() and not voiced[-int(0.4 * SR / 256) :].any()
    assert prob[mid].mean() > 0.8


def test_generated_melody_notes():
    y = _melody(MELODY)
    notes = transcribe(y, SR, "mono")
    assert [n[2] for n in notes] == [m for _, _, m in MELODY]
    assert _f_onset(MELODY, notes) == 1.0 and _f_onset(MELODY, notes, offsets=True) >= 0.8


def test_generated_chord_poly():
    chord = [(0.3, 1.3, 60), (0.3, 1.3, 64), (0.3, 1.3, 67), (1.6, 2.4, 55)]
    y = _melody(chord)
    notes = transcribe(y, SR, "poly")
    assert sorted(n[2] for n in notes) == [55, 60, 64, 67]  # no sub-octave ghost (C3 under C-E-G)
    assert _f_onset(chord, notes) >= 0.7  # onsets from a 186 ms window: one may be > 50 ms late


def test_vocadito_excerpt(corpora):
    base = corpora / "notes" / "vocadito"
    y = read_audio(base / "vocadito_1.flac", dur_s=15.0)
    f0, voiced, _ = pitch_track(y, SR, hop_length=256)
    ref = np.loadtxt(base / "vocadito_1_f0.csv", delimiter=",")
    ref = ref[ref[:, 0] < 15.0]
    t = np.arange(f0.size) * 256 / SR
    m = mir_eval.melody.evaluate(ref[:, 0], ref[:, 1], t, np.where(voiced, f0, 0.0))
    assert m["Raw Pitch Accuracy"] > 0.8 and m["Voicing Recall"] > 0.85
    r = np.loadtxt(base / "vocadito_1_notesA1.csv", delimiter=",")
    r = r[r[:, 0] + r[:, 2] < 15.0]
    ref_notes = [(a, a + d, float(hz_to_midi(p))) for a, p, d in r]
    notes = notes_from_pitch(f0, voiced, sr=SR, hop_length=256, y=y)
    assert _f_onset(ref_notes, [n for n in notes if n[0] < 15.0]) > 0.45


def test_trumpet_contour_sanity(corpora):
    y = read_audio(corpora / "music" / "sorohanro_-_solo-trumpet-06.ogg")
    f0, voiced, _ = pitch_track(y, SR, fmin=100, fmax=1500, hop_length=256)
    midi = hz_to_midi(f0[voiced])
    assert voiced.mean() > 0.6
    assert 55 < np.median(midi) < 80 and np.percentile(midi, 95) - np.percentile(midi, 5) < 24


def test_stereo_sample_piano_poly(corpora):
    base = corpora / "beats"
    y = read_audio(base / "stereo_sample.flac")
    r = np.loadtxt(base / "stereo_sample.notes", comments="#")
    ref = [(a, a + d, m) for a, m, d, _ in r]
    assert _f_onset(ref, transcribe(y, SR, "poly")) > 0.3  # measured 0.38 (benchmarks/mir.py)


def test_silence_short_stereo_and_determinism():
    assert transcribe(np.zeros(SR, np.float32), SR) == []
    assert transcribe(np.zeros(SR, np.float32), SR, "poly") == []
    assert transcribe(0.1 * np.ones(300, np.float32), SR) == []  # shorter than a frame
    assert isinstance(transcribe(0.1 * np.ones(300, np.float32), SR, "poly"), list)
    y = _melody(MELODY[:2])
    assert transcribe(np.stack([y, y]), SR) == transcribe(y, SR)
    noisy = y + 0.05 * np.random.default_rng(1).standard_normal(y.size).astype(np.float32)
    assert transcribe(noisy, SR) == transcribe(noisy, SR)
    assert np.array_equal(
        HarmonicNMF().fit_transform(noisy, SR), HarmonicNMF().fit_transform(noisy, SR)
    )
    with pytest.raises(ValueError):
        transcribe(y, SR, "nope")


def test_midi_roundtrip():
    notes = [(0.0, 0.5, 60, 100), (0.25, 1.0, 64, 50), (1.0, 1.5, 67, 127)]
    back = read_midi_notes(midi_bytes(notes))
    assert [(n[2], n[3]) for n in back] == [(n[2], n[3]) for n in notes]
    assert np.allclose([n[:2] for n in back], [n[:2] for n in notes], atol=0.002)


def test_run_writes_notes_and_midi(tmp_path):
    y = _melody(MELODY)
    ds = build_dataset(
        tmp_path,
        {
            "melody.wav": (y, SR),
            "stereo.wav": (np.stack([y, y], axis=1), SR),
            "silence.wav": (np.zeros(SR, np.float32), SR),
            "short.wav": (0.1 * np.ones(200, np.float32), SR),
        },
    )
    ids = clip_ids_by_stem(ds)
    rep = run_stage(ds, "transcribe", {"method": "mono"})
    notes = ds.table("notes").to_pandas()
    mel = notes[notes.clip_id == ids["melody"]].sort_values("onset_s")
    assert mel.midi.tolist() == [m for _, _, m in MELODY]
    assert notes[notes.clip_id == ids["silence"]].empty
    assert notes.error.isna().all()
    midi = ds.table("midi").to_pandas().set_index("clip_id")
    assert set(midi.index) == set(ids.values())  # one file per clip, even without notes
    mid = midi.loc[ids["melody"], "uri"]
    assert rep["run_id"] in mid
    with open(mid, "rb") as f:
        assert [n[2] for n in read_midi_notes(f.read())] == [m for _, _, m in MELODY]
    assert rep["plots"][0].endswith(".png") and os.path.isfile(rep["plots"][0])
    # clips without notes count as done: nothing to redo
    assert run_stage(ds, "transcribe", {"method": "mono"}, force=False)["skipped"]

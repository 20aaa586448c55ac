"""segment: the NoSound rule at any level and length, and periodic mode's per-clip errors
(review 12 findings 1, 2, 5)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.signal import butter, lfilter, sosfiltfilt

import audiopipe
from audiopipe.stages import run_stage
from audiopipe.stages.segment.heart import NoSound, check_sound
from audiopipe.stages.segment.periodic import synthetic_pcg

SR = 4000


def brown(seconds: float, seed: int) -> np.ndarray:
    """Stationary brown noise (a pole at 0.995), unit RMS."""
    y = lfilter([1.0], [1.0, -0.995], np.random.default_rng(seed).standard_normal(int(seconds * SR)))
    return y / np.sqrt(np.mean(y**2))


def test_stationary_noise_is_nosound_at_any_level_and_length():
    """Version 8 applied the contrast test only below -60 dBFS: the same brown noise 30 dB
    louder passed, and periodic mode invented 39 segments in it at confidence 1.00. Noise
    of any colour, level (-80 to -10 dBFS) or length (10 minutes) is NoSound; heart sounds
    at the same levels, or in that loud noise, are not."""
    rng = np.random.default_rng(0)
    white = rng.standard_normal(10 * SR)
    for noise in (brown(20, 1), white):
        for db in (-80, -50, -30, -10):
            with pytest.raises(NoSound, match="noise floor"):
                check_sound(noise * 10 ** (db / 20), SR)
    with pytest.raises(NoSound, match="noise floor"):
        check_sound(0.03 * rng.standard_normal(600 * SR), SR)  # 10 min at -30 dBFS
    y = synthetic_pcg(duration=10.0, bpm=70, noise=0.0, seed=1)[0].astype(float)
    for gain in (1e-3, 0.1, 1.0):
        check_sound(gain * (y + 0.05 * white), SR)  # (floor at -86 to -26 dBFS)
    check_sound(0.5 * y + 10 ** (-30 / 20) * brown(10, 2), SR)  # in the loud brown noise


def test_periodic_mode_records_an_unreadable_clip_and_segments_the_others(tmp_path):
    """Periodic mode caught only NoSound: one clip whose source can no longer be read failed
    the whole run and no clip got segments. It is an errors row; the others are segmented."""
    from tests.stages.mir_data import build_dataset

    files = {f"p{i}.wav": synthetic_pcg(duration=8.0, bpm=70 + 10 * i, seed=i)[:2]
             for i in range(3)}
    ds = build_dataset(tmp_path, files, sample_rate=SR)
    cid = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"]
           for r in ds.table("clips", ["clip_id", "uri"]).to_pylist()}
    (tmp_path / "corpus" / "p1.wav").write_bytes(b"RIFF0000WAVEjunk")  # damaged since
    rep = run_stage(ds, "segment", {"mode": "periodic"})
    assert rep["clips_failed"] == 1
    seg = ds.table("segments").to_pandas()
    assert set(seg.clip_id) == {cid["p0.wav"], cid["p2.wav"]}
    assert {"S1", "S2"} <= set(seg.label)
    errs = [e for e in audiopipe.open_dataset(ds.location.root, "d").table("errors").to_pylist()
            if e["run_id"] == rep["run_id"]]
    assert [(e["clip_id"], e["step"]) for e in errs] == [(cid["p1.wav"], "segment")]
    assert errs[0]["error_type"] == "decode", errs[0]
    assert errs[0]["uri"] == ds.clip_uri(cid["p1.wav"]) and errs[0]["uri"].endswith("p1.wav")


def band_db(y: np.ndarray) -> float:
    """The test's own measure: RMS of ``y`` band-passed to 25-400 Hz, dBFS."""
    sos = butter(4, [25.0, 400.0], "bandpass", fs=SR, output="sos")
    return float(20 * np.log10(np.sqrt(np.mean(sosfiltfilt(sos, y) ** 2))))


def test_a_short_clip_is_judged_on_the_frames_it_has():
    """A clip shorter than 0.5 s was judged on no frames: loud sound was refused with
    'its loudest 0.5 s at -240 dBFS'. The refusal of 0.4 s of loud noise names its measured
    level, the same with 9.6 s of digital silence before it; 0.4 s holding one heart sound
    is a sound."""
    rng = np.random.default_rng(0)
    burst = 0.2 * rng.standard_normal(int(0.4 * SR))
    for y in (burst, np.r_[np.zeros(int(9.6 * SR)), burst]):
        with pytest.raises(NoSound, match="noise floor") as err:
            check_sound(y, SR)
        level = float(re.search(r"at (-?\d+) dBFS", str(err.value)).group(1))
        assert abs(level - band_db(burst)) < 3, str(err.value)
    t = np.arange(int(0.1 * SR)) / SR
    one = 1e-3 * rng.standard_normal(int(0.4 * SR))
    one[600:1000] += 0.5 * np.sin(2 * np.pi * 50 * t) * np.sin(np.pi * t / 0.1) ** 2
    check_sound(one, SR)
    with pytest.raises(NoSound, match="too short") as err:  # (no frame to measure)
        check_sound(burst[: int(0.05 * SR)], SR)
    assert "nan" not in str(err.value) and "inf" not in str(err.value)

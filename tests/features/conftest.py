"""Fixtures for the feature tests: a few real clips and one warmed-up librosa per session.

librosa's first call JIT-compiles numba code (tens of seconds on a cold cache), so every
parity test takes the ``librosa`` fixture, which pays that once per session. Real audio
comes from the ``corpora`` fixture (skips without the corpora, fails under CI); a few clips
only, cut to keep the whole feature suite well under a minute and a half.
"""

from __future__ import annotations

import numpy as np
import pytest

MUSIC = "music/Kevin_MacLeod_-_Vibe_Ace.ogg"
MUSIC2 = "music/sorohanro_-_solo-trumpet-06.ogg"
FSDD = ["fsdd/recordings/0_george_0.wav", "fsdd/recordings/7_jackson_12.wav",
        "fsdd/recordings/3_nicolas_5.wav"]


@pytest.fixture(scope="session")
def librosa():
    """librosa, imported and warmed up (numba JIT) once per session."""
    lr = pytest.importorskip("librosa")
    y = np.random.default_rng(0).standard_normal(8192).astype(np.float32)
    lr.feature.mfcc(y=y, sr=22050)
    lr.feature.chroma_stft(y=y, sr=22050)
    lr.feature.tempogram(y=y, sr=22050)
    return lr


def _read(path, sr_out=None, start=0.0, dur=None):
    sf = pytest.importorskip("soundfile")
    info = sf.info(str(path))
    a = int(start * info.samplerate)
    b = None if dur is None else a + int(dur * info.samplerate)
    y, sr = sf.read(str(path), start=a, stop=b, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr_out is not None and sr_out != sr:
        soxr = pytest.importorskip("soxr")
        y = soxr.resample(y, sr, sr_out)
        sr = sr_out
    return np.ascontiguousarray(y, dtype=np.float32), sr


@pytest.fixture(scope="session")
def fsdd_clips(corpora):
    """Three spoken digits at their native 8 kHz: list of (name, y, sr)."""
    return [(p.split("/")[-1], *_read(corpora / p)) for p in FSDD]


@pytest.fixture(scope="session")
def music_clip(corpora):
    """12 s of music, 44.1 kHz resampled to 22.05 kHz: (name, y, sr)."""
    return ("vibe_ace", *_read(corpora / MUSIC, 22050, start=20.0, dur=12.0))


@pytest.fixture(scope="session")
def clips(fsdd_clips, music_clip):
    """The real clips every parity test runs on."""
    return [*fsdd_clips, music_clip]


@pytest.fixture(scope="session")
def speech16k(corpora):
    """A spoken digit resampled to 16 kHz (spafe's default rate)."""
    return _read(corpora / FSDD[1], 16000)


@pytest.fixture(scope="session")
def spafe():
    """spafe, the oracle for GFCC and the auditory banks (skips when not installed)."""
    return pytest.importorskip("spafe")

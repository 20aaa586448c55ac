"""A deterministic, labelled demo corpus with ground truth, made from formulas.

``audiopipe demo-corpus PATH`` writes a few hundred short clips (WAV, FLAC and
MP3) of six classes, so the default dataset works on a fresh machine with no
download:

========  ==========================================  ==========================
class     what                                        ground truth
========  ==========================================  ==========================
tone      harmonic tone, f0 110–880 Hz                f0_hz, tags tonal;harmonic
noise     white or pink noise burst                   tags noisy
clicks    click track at a known tempo (60–180 BPM)   tempo_bpm, beats.csv
chirp     exponential sweep                           tags tonal;sweep
event     a tone or noise event padded by silence     events.csv (onset, offset)
mix       harmonic tone over a click track            tempo, beats, tags
========  ==========================================  ==========================

Files: ``labels.csv`` (path, label, tags, tempo_bpm, f0_hz, speaker-like
``group`` for grouped CV, split), ``beats.csv`` (path, time_s), ``events.csv``
(path, onset_s, offset_s, label).

Examples
--------
>>> import tempfile
>>> out = make_demo_corpus(tempfile.mkdtemp(), n_per_class=2)
>>> sorted(p.name for p in out.iterdir())[:3]
['beats.csv', 'chirp', 'clicks']
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from audiopipe.config import Config

__all__ = ["make_demo_corpus", "ensure_demo_corpus", "CLASSES"]

SR = 22050
CLASSES = ("tone", "noise", "clicks", "chirp", "event", "mix")
FORMATS = (("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("mp3", "MP3", "MPEG_LAYER_III"))
TAGS = {
    "tone": "tonal;harmonic",
    "noise": "noisy",
    "clicks": "rhythmic;percussive",
    "chirp": "tonal;sweep",
    "mix": "tonal;harmonic;rhythmic;percussive",
}


def _harmonic(f0: float, n: int, dur: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    y = np.zeros_like(t)
    n_harm = int(rng.integers(3, 8))
    for k in range(1, n_harm + 1):
        if f0 * k < sr / 2:
            y += (0.6 ** (k - 1)) * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    env = np.minimum(1.0, np.minimum(t / 0.02, (dur - t) / 0.05).clip(0))
    return y * env


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / (np.abs(y).max() + 1e-9)


def _clicks(
    tempo: float, dur: float, rng: np.random.Generator, sr: int = SR
) -> tuple[np.ndarray, np.ndarray]:
    period = 60.0 / tempo
    first = float(rng.uniform(0.05, 0.3))
    beats = np.arange(first, dur - 0.05, period)
    y = np.zeros(int(dur * sr))
    click_len = int(0.03 * sr)
    t = np.arange(click_len) / sr
    for i, b in enumerate(beats):
        f = 1500.0 if i % 4 == 0 else 1000.0
        c = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.006)
        s = int(b * sr)
        e = min(s + click_len, y.size)
        y[s:e] += c[: e - s]
    return y, beats


def _chirp(dur: float, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    f0, f1 = rng.uniform(100, 400), rng.uniform(2000, 6000)
    k = np.log(f1 / f0) / dur
    return np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def make_demo_corpus(path: str | Path, n_per_class: int = 50, seed: int = 0) -> Path:
    """Write the demo corpus under ``path`` (created); returns the path.

    ``n_per_class`` clips of each of the six classes, formats cycling WAV, FLAC,
    MP3. The same ``seed`` writes the same samples.
    """
    if n_per_class < 1:  # (checked before any folder is made)
        raise ValueError(f"n_per_class: must be >= 1, got {n_per_class}")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels, beats_rows, events_rows = [], [], []
    for cls in CLASSES:
        (out / cls).mkdir(exist_ok=True)
        for i in range(n_per_class):
            ext, fmt, subtype = FORMATS[i % len(FORMATS)]
            rel = f"{cls}/{cls}_{i:03d}.{ext}"
            gain = float(rng.uniform(0.2, 0.8))
            tempo = f0 = ""
            tags = TAGS.get(cls, "")
            if cls == "tone":
                f0v = float(110 * 2 ** rng.uniform(0, 3))
                y = _harmonic(f0v, 5, float(rng.uniform(1.0, 2.5)), rng)
                f0 = f"{f0v:.2f}"
            elif cls == "noise":
                n = int(rng.uniform(1.0, 2.5) * SR)
                y = _pink(n, rng) if i % 2 else rng.uniform(-1, 1, n)
            elif cls == "clicks":
                tv = float(rng.uniform(60, 180))
                y, b = _clicks(tv, 6.0, rng)
                tempo = f"{tv:.2f}"
                beats_rows += [(rel, f"{x:.4f}") for x in b]
            elif cls == "chirp":
                y = _chirp(float(rng.uniform(1.0, 2.5)), rng)
            elif cls == "event":
                dur = float(rng.uniform(2.0, 3.0))
                y = np.zeros(int(dur * SR))
                on = float(rng.uniform(0.3, 0.8))
                off = on + float(rng.uniform(0.4, 1.0))
                kind = "tonal" if i % 2 == 0 else "noisy"
                seg_n = int(off * SR) - int(on * SR)
                seg = (
                    _harmonic(float(rng.uniform(200, 800)), 4, seg_n / SR, rng)
                    if kind == "tonal"
                    else rng.uniform(-1, 1, seg_n)
                )
                y[int(on * SR) : int(on * SR) + seg.size] = seg
                y += 1e-3 * rng.standard_normal(y.size)
                tags = f"event;{kind}"
                events_rows.append((rel, f"{on:.4f}", f"{off:.4f}", kind))
            else:  # mix
                tv = float(rng.uniform(70, 160))
                c, b = _clicks(tv, 6.0, rng)
                f0v = float(110 * 2 ** rng.uniform(0, 2))
                y = 0.4 * _harmonic(f0v, 5, 6.0, rng)[: c.size] + c
                tempo, f0 = f"{tv:.2f}", f"{f0v:.2f}"
                beats_rows += [(rel, f"{x:.4f}") for x in b]
            y = gain * y / (np.abs(y).max() + 1e-9)
            sf.write(out / rel, y.astype(np.float32), SR, format=fmt, subtype=subtype)
            split = "test" if i % 10 == 9 else ("valid" if i % 10 == 8 else "train")
            labels.append(
                {
                    "path": rel,
                    "label": cls,
                    "tags": tags,
                    "tempo_bpm": tempo,
                    "f0_hz": f0,
                    "group": f"g{i % 5}",
                    "split": split,
                }
            )
    with open(out / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(labels[0]))
        w.writeheader()
        w.writerows(labels)
    with open(out / "beats.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "time_s"])
        w.writerows(beats_rows)
    with open(out / "events.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "onset_s", "offset_s", "label"])
        w.writerows(events_rows)
    return out


def ensure_demo_corpus(cfg: Config, dataset: str | None) -> Path | None:
    """Write the demo corpus of a dataset marked ``demo_corpus: true`` if its folder has none.

    Returns the folder written, or None when nothing was needed.
    """
    ds = cfg.dataset(dataset)
    if not ds.demo_corpus:
        return None
    folder = Path(cfg.resolve(ds.source[0].split("*")[0].rstrip("/")))
    if folder.is_dir() and any(folder.rglob("*.wav")):
        return None
    print(f"generating the demo corpus in {folder} ...", file=sys.stderr)
    return make_demo_corpus(folder)

"""Real multi-label material: mixtures of 2-3 real clips of different classes, tags known.

Sources (all recorded by people, from ../shared/corpora): ``speech`` = fsdd digits,
ESC-10 categories (dog, rooster, rain, crying_baby, chainsaw, clock_tick), ``music`` =
excerpts of the music/ tracks. Source clips are split between 5 groups (the ``group``
column), so grouped CV never tests on a source clip it trained on (music excerpts of
one track can fall in two groups). Each mixture is ``duration`` seconds at ``sr``; every
source is RMS-normalised, given a random gain in [-6, 0] dB and placed at a random offset.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ESC_TAGS = ("dog", "rooster", "rain", "crying_baby", "chainsaw", "clock_tick")
MUSIC = (
    "Kevin_MacLeod_-_Vibe_Ace.ogg",
    "Kevin_MacLeod_-_Limit_70.ogg",
    "Kevin_MacLeod_-_Morning.ogg",
    "Jason_Shaw_-_Thought_Bot.ogg",
    "Rafael_Krux_-_Inspiration_and_Success.ogg",
    "admiralbob77_-_Choice_-_Drum-bass.ogg",
)


def _read(path: Path, sr: int, start_s: float = 0.0, dur_s: float | None = None) -> np.ndarray:
    info = sf.info(str(path))
    start = int(start_s * info.samplerate)
    frames = -1 if dur_s is None else int(dur_s * info.samplerate)
    y, r = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return soxr.resample(y, r, sr) if r != sr else y


def _pool(corpora: Path, sr: int, per_tag: int, rng: np.random.Generator) -> dict[str, list]:
    pool: dict[str, list[np.ndarray]] = {}
    fsdd = sorted((corpora / "fsdd" / "recordings").glob("*.wav"))
    pool["speech"] = [_read(p, sr) for p in rng.choice(fsdd, per_tag, replace=False)]
    rows = list(csv.DictReader((corpora / "esc10" / "esc10.csv").open()))
    for tag in ESC_TAGS:
        files = sorted(r["filename"] for r in rows if r["category"] == tag)
        pool[tag] = [
            _read(corpora / "esc10" / "audio" / f, sr, 0, 3.0)
            for f in rng.choice(files, per_tag, replace=False)
        ]
    pool["music"] = []
    for j in range(per_tag):
        m = corpora / "music" / MUSIC[j % len(MUSIC)]
        length = sf.info(str(m)).duration
        start = float(rng.uniform(0, max(0.0, length - 3.5)))
        pool["music"].append(_read(m, sr, start, 3.0))
    assert all(len(c) > sr // 10 for v in pool.values() for c in v)
    return pool


def make_mixtures(
    corpora: Path, out: Path, n: int = 80, sr: int = 16000, duration: float = 3.0, seed: int = 0
) -> Path:
    """Write ``n`` FLAC mixtures and ``labels.csv`` (path, tags, group) under ``out``."""
    rng = np.random.default_rng(seed)
    n_groups = 5
    pool = _pool(corpora, sr, 2 * n_groups, rng)
    names = sorted(pool)
    out.mkdir(parents=True, exist_ok=True)
    L = int(duration * sr)
    rows = []
    for i in range(n):
        tags = sorted(rng.choice(names, int(rng.integers(2, 4)), replace=False))
        y = np.zeros(L, np.float32)
        g = i % n_groups  # source clip j is used only by mixtures of group j % n_groups
        for t in tags:
            choices = [j for j in range(len(pool[t])) if j % n_groups == g]
            src = pool[t][int(rng.choice(choices))][:L]
            src = src / (np.sqrt(np.mean(src**2)) + 1e-9) * 10 ** (rng.uniform(-6, 0) / 20)
            off = int(rng.integers(0, L - len(src) + 1))
            y[off : off + len(src)] += src
        y = 0.9 * y / (np.abs(y).max() + 1e-9)
        name = f"mix_{i:03d}.flac"
        sf.write(str(out / name), y, sr, subtype="PCM_16")
        rows.append({"path": name, "tags": ";".join(tags), "group": f"g{g}"})
    with (out / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "tags", "group"])
        w.writeheader()
        w.writerows(rows)
    return out

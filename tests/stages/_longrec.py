"""Long recordings made by concatenating real clips, with known boundaries.

Blocks alternate between ``speech`` (4-7 fsdd digits of one speaker, short gaps),
``music`` (a 4-8 s excerpt of a music/ track) and silence (1-2 s of faint noise, the
background). ``events.csv`` has one row per speech/music block: path, onset_s, offset_s, label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from ._mixtures import MUSIC, _read


def make_long_recordings(
    corpora: Path, out: Path, n: int = 6, duration: float = 40.0, sr: int = 16000, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    fsdd = sorted((corpora / "fsdd" / "recordings").glob("*.wav"))
    out.mkdir(parents=True, exist_ok=True)
    events = []
    for k in range(n):
        parts: list[np.ndarray] = []
        t = 0.0
        last = "silence"
        while t < duration - 3:
            kind = rng.choice([x for x in ("speech", "music", "silence") if x != last])
            if kind == "silence":
                block = 0.003 * rng.standard_normal(int(rng.uniform(1.0, 2.0) * sr))
            elif kind == "speech":
                spk = rng.choice(["george", "jackson", "lucas", "nicolas"])
                files = [f for f in fsdd if f"_{spk}_" in f.name]
                pieces = []
                for f in rng.choice(files, int(rng.integers(4, 8)), replace=False):
                    d = _read(f, sr)
                    pieces += [
                        d / (np.abs(d).max() + 1e-9) * 0.5,
                        0.003 * rng.standard_normal(int(rng.uniform(0.1, 0.3) * sr)),
                    ]
                block = np.concatenate(pieces[:-1])
            else:
                m = corpora / "music" / MUSIC[int(rng.integers(len(MUSIC)))]
                length = sf.info(str(m)).duration
                dur = float(rng.uniform(4, 8))
                block = _read(m, sr, float(rng.uniform(0, length - dur - 0.5)), dur)
                block = block / (np.abs(block).max() + 1e-9) * 0.5
            if kind != "silence":
                events.append((f"long_{k}.flac", t, t + len(block) / sr, str(kind)))
            parts.append(block.astype(np.float32))
            t += len(block) / sr
            last = kind
        sf.write(str(out / f"long_{k}.flac"), np.concatenate(parts), sr, subtype="PCM_16")
    with (out / "events.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "onset_s", "offset_s", "label"])
        w.writerows([(p, f"{a:.4f}", f"{b:.4f}", lab) for p, a, b, lab in events])
    return out

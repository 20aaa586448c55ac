"""Tuning of the segment stage's "is there a heart sound at all" check (``NoSound``, issue 12;
review 8 #6): :func:`audiopipe.stages.segment.heart.sound_contrast` and its threshold
``SOUND_CONTRAST``.

Before, only digital silence (every sample within one 16-bit step of zero) was refused: a
silent recording with a real preamp's noise floor (-80 dBFS noise) got 10 invented segments
in heart mode and 11 at confidence 1.00 in periodic mode. The check now asks whether the loud
frames stand out of the recording's own noise floor, so it does not depend on the level.

Tuning part: split A's tuning recordings of ``benchmarks/heart.py`` (CirCor patient 85343 +
PASCAL recordings 1-5; each must keep being segmented) and generated noises with seeds 0-2
(white, pink, brown, blue; 5 s and 20 s; each also with three clicks, handling bumps of a
silent recording; each must be refused). Report part, read once for what was chosen: split
A's report recordings (85345 + PASCAL 6-10) and noises of seeds 100-102.

The rule: of the candidate statistics (``CANDIDATES``: 20 or 50 ms frames, 90th/95th/99th
percentile of the frames' RMS over their median), the one whose weakest tuning heart
recording stands furthest (ratio) over the strongest tuning noise; the threshold is the
geometric mean of those two, rounded down to a tenth.

Round 1 (review 8). Tuning part, weakest heart recording / strongest noise (gap):
20 ms p90 2.11 (85343_AV) / 1.65 (brown 5 s + clicks) (1.28); p95 2.54 / 5.45 (0.47);
p99 3.14 / 74.5 (0.04); 50 ms p90 1.77 / 1.63 (1.08); p95 2.04 / 8.40 (0.24); p99 2.69 /
51.4 (0.05). Without the clicks the 95th and 99th percentiles had separated them too
(20 ms p95: 2.54 / 1.62), but three bumps of a stethoscope moved in 5 s of brown noise
(whose 25-400 Hz floor is far under its full-band level) lift the frames above the 90th
percentile. Chosen: 20 ms frames, 90th percentile, threshold 1.8. Report part, once: the 7
held-out heart recordings are all kept (weakest 85345_AV 2.49; then 201103151912 3.27),
0 of 48 noises kept (strongest 1.70: the margin under 1.8 is small for noise with clicks;
on the tuning part, noise without clicks stayed under 1.5).

Round 2 (review 10, 2026-12-02). Round 1's rule refused real heart sounds: 5 s of a real
recording followed by 35 s of its own noise floor (contrast over the whole 1.30-1.94: 14 of 16
refused), hard-clipped heart recordings (gain 15: 3 of 16), and 6 of 19 music and speech
recordings peaking at -1 to -5 dBFS, all as "no sound"; a DC offset after the noise (frames of
silence were found before the band-pass) let -80 dBFS noise through. Changed, by argument,
not tuned: the contrast decides only for a recording whose loudest ``SOUND_LOUD_S`` = 0.5 s
of 20 ms frames in 25-400 Hz (a few beats' S1 and S2) are under ``SOUND_QUIET_DBFS`` = -60
dBFS (the bottom of a 10-bit range: a take recorded with any gain is louder there), and
silent frames are those whose band RMS is under 1 % of a 16-bit step (digital silence, or a
DC offset alone). Loud noise, music or speech is a sound (the models segment it as version 6
did); a bird song with nothing under 400 Hz is refused, its message naming the band. A first
form took the loudest frame alone: one 20 ms bump in a -80 dBFS floor passed (review 11); the
loud tenth of the frames refused 5 of 16 long quiet takes. Tuning part: heart recordings'
level -42.7 dBFS at the least (201103140132), 0 of 9 refused; noises -82.8 dBFS at the most,
0 of 48 kept. Report part, once: hearts -53.8 dBFS at the least (201103221214, contrast
7.92), 0 of 7 refused; noises 0 of 48 kept. Review 10's and 11's probes: long quiet takes 0
of 16 refused, clipped (gain 8/15/30) 0 of 16, music and speech 18 of 19 kept (the bird song),
DC after noise and a floor with one bump (-50 to -26 dBFS) refused. (Rounds 1-2's statistic
and verdict are kept here, ``contrast_v7`` and ``refused_v8``; the stage no longer uses them.)

Round 3 (review 12, 2026-12-03). Round 2's level gate let loud stationary noise through:
brown noise at -50 and -30 dBFS (contrast 1.45) passed and periodic mode invented 39 segments
in it at confidence 1.00 (version 8 keeps 15 of 15 of the loud noises below); and round 1's
contrast at every level cannot come back: below, the heart takes reach down to 1.46 (whole)
or 1.61 (loudest 5 s window) and noise up to 1.69 / 1.72. New statistic (``sound_contrast``,
no level gate): the recording at 1 kHz band-passed to 25-400 Hz, Hann-windowed frames every
20 ms; per frame, the mean over the band's bins of the bin's power over its floor (a low
percentile of that bin over the frames); its value in the loudest 0.5 s of frames (at least
1 % of a long recording's frames, a quarter of a short one's). Each bin is measured against
itself, so stationary noise of any colour and level stays near 1 / 0.22 = 4.5 (p20), while a
heart sound stands over its own diastole. Candidates (``ROUND3``): 32 or 64 ms windows, floor
percentile 20 or 50; rounds 1-2's contrast, whole and in its loudest 5 s window, as
baselines. Tuning part: split A's 9 tuning recordings, each also as its first 5 s followed
by 35 s of white noise at its own floor and hard-clipped at gains 8, 15 and 30 (45 takes,
:func:`takes`); round 1's 48 noises plus 15 loud ones (:func:`loud_noises`: brown at -50,
-30, -10 dBFS, white at -10 dBFS clipped, 10 minutes of white at -30 dBFS). Rule as round 1
(the best gap; the threshold the geometric mean rounded down to a tenth).

Tuning part, weakest heart take / strongest noise (gap): 64 ms p20 23.89 (201102081321
clipped x30; as recorded 40.3, long takes 160.9) / 8.27 (blue 20 s + clicks) (2.89); 32 ms
p20 27.49 / 9.92 (10 min of white) (2.77); 64 ms p50 7.02 / 2.63 (2.67); 32 ms p50 7.98 /
3.21 (2.49); baselines 1.46 / 1.69 (0.86) and 1.61 / 1.72 (0.94). Chosen: 64 ms, p20,
threshold 14.0. The stage's verdicts: 0 of 45 heart takes refused, 0 of 63 noises kept; the
corpora's music, speech and beat excerpts (music/, speech/, beats/ with mdb_drums: 38 files
at their own rates) 1 of 38 refused, the bird song with nothing under 400 Hz (7.1, as in
round 2), the next lowest 31.6 (beats/sample.wav). Two forms were dropped on the tuning part:
the loudest 0.5 s whatever the length (10 minutes of white noise reached 9.96 by chance over
30 000 frames; with the 1 %: 8.1, an hour of brown noise 8.05), and silent frames by a
peak-to-peak under one 16-bit step (slow brown noise at -80 dBFS taken for silence: noise up
to 5003). Silent frames are those over which the recording stays constant (digital silence,
a DC offset, and the band-pass filter's ringing into them: 0.4 s of loud noise after 9.6 s of
digital silence measured 11.7 against that ringing, 4.9 alone; now 10.2) or whose band RMS is
under 1 % of a 16-bit step. Cost: 0.5 s for 10 minutes at 4 kHz, 2.3 s at 44.1 kHz.

Report part (split A's 7 report recordings as 35 takes; noises of seeds 100-102, 63): 64 ms
p20 26.01 (201105021654 clipped x30; as recorded 120.1, long takes 117.7) / 8.87 (brown 20 s
+ clicks) (2.93): 0 of 35 heart takes refused, 0 of 63 noises kept. It was read three times:
with silence by band RMS alone (the same figures), with the peak-to-peak form (1 of 63 noises
kept; its fault already showed on the tuning part), and with the final form; the candidate
and threshold were chosen on the tuning part and did not change. Review 12's probes: brown
noise at -80, -50 and -30 dBFS NoSound (7.46); 0.4 s of loud noise NoSound at -21 dBFS.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, lfilter, sosfiltfilt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import heart as H  # noqa: E402

from audiopipe.stages.segment.heart import (  # noqa: E402
    SILENCE_PEAK,
    SOUND_LOUD_S,
    NoSound,
    check_sound,
    sound_contrast,
)

SR = H.SR
CANDIDATES = [(f, q) for f in (0.02, 0.05) for q in (90.0, 95.0, 99.0)]
COLOURS = {"white": 0.0, "pink": 0.5, "brown": 1.0, "blue": -0.5}
#: round 3's candidates: (name, statistic(y, sr)); the stage's statistic with its window
#: (32 or 64 ms) and floor percentile (20 or 50), and rounds 1-2's, whole or in 5 s windows
ROUND3 = [(f"bins over floor, {w * 1000:.0f} ms, p{q:.0f}",
           lambda y, sr, w=w, q=q: sound_contrast(y, sr, window_s=w, floor_q=q))
          for w in (0.032, 0.064) for q in (20.0, 50.0)] + [
    ("rounds 1-2's contrast (20 ms p90 over median)", lambda y, sr: contrast_v7(y, sr)),
    ("rounds 1-2's contrast, loudest 5 s window", lambda y, sr: windowed_v7(y, sr)),
]


def windowed_v7(y: np.ndarray, sr: int, window_s: float = 5.0) -> float:
    """The largest :func:`contrast_v7` of the ``window_s`` windows of ``y`` (1 s apart)."""
    if len(y) <= window_s * sr:
        return contrast_v7(y, sr)
    starts = np.arange(0.0, len(y) / sr - window_s + 1e-9, 1.0)
    return float(np.nanmax([contrast_v7(y[int(t * sr) : int((t + window_s) * sr)], sr)
                            for t in starts]))


def noise(colour: str, seconds: float, seed: int, clicks: int = 0) -> np.ndarray:
    """Stationary noise of a colour at -80 dBFS RMS, with ``clicks`` short bumps 20 dB up."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    y = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / f ** COLOURS[colour], n)
    y = 1e-4 * y / y.std()
    for at in rng.integers(0, n - 40, clicks):
        y[at : at + 40] += 1e-3 * np.hanning(40) * rng.choice([-1, 1])
    return y


def noises(seeds: range) -> dict[str, np.ndarray]:
    return {f"{c} {s:g}s{' clicks' if k else ''} #{seed}": noise(c, s, seed, k)
            for c in COLOURS for s in (5.0, 20.0) for k in (0, 3) for seed in seeds}


def contrast_v7(y: np.ndarray, sr: int, frame_s: float = 0.02, q: float = 90.0) -> float:
    """Rounds 1-2's statistic (the stage's in versions 7-8): the ``q``-th percentile of the
    RMS of ``frame_s`` frames in 25-400 Hz over their median (silent frames left out)."""
    rms = band_rms_v7(y, sr, frame_s)
    floor = float(np.median(rms)) if rms.size else 0.0
    return float(np.percentile(rms, q)) / floor if floor > 0 else float("nan")


def band_rms_v7(y: np.ndarray, sr: int, frame_s: float = 0.02) -> np.ndarray:
    """RMS of the ``frame_s`` frames of ``y`` in 25-400 Hz, less the silent ones (versions
    7-8's ``band_frame_rms``)."""
    y = np.asarray(y, dtype=np.float64)
    n = max(int(round(frame_s * sr)), 1)
    if len(y) < 2 * n:
        return np.zeros(0)
    sos = butter(4, [25.0, min(400.0, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    k = len(y) // n
    band = sosfiltfilt(sos, y, padlen=min(3 * (2 * len(sos) + 1), len(y) - 1))
    rms = np.sqrt(np.mean(band[: k * n].reshape(k, n) ** 2, axis=1))
    return rms[rms > 0.01 * SILENCE_PEAK]


def table(hearts: dict, floors: dict) -> dict[tuple, tuple[float, float]]:
    """Per candidate: (weakest heart recording, strongest noise)."""
    out = {}
    for f, q in CANDIDATES:
        h = [contrast_v7(y, SR, f, q) for y in hearts.values()]
        n = [contrast_v7(y, SR, f, q) for y in floors.values()]
        out[(f, q)] = (min(h), max(n))
        print(f"{f * 1000:.0f} ms p{q:.0f}: heart min {min(h):.2f} "
              f"({list(hearts)[int(np.argmin(h))]}), noise max {max(n):.2f} "
              f"({list(floors)[int(np.argmax(n))]}), gap {min(h) / max(n):.2f}")
    return out


def loudest_db(y: np.ndarray) -> float:
    """The level of the loudest ``SOUND_LOUD_S`` of 20 ms frames in the heart sounds' band
    (dBFS; round 2's first form took the loudest frame)."""
    r = band_rms_v7(y, SR)
    k = max(int(round(SOUND_LOUD_S / 0.02)), 1)
    loud = float(np.partition(r, -k)[-k]) if r.size >= k else 0.0
    return float(20 * np.log10(max(loud, 1e-12)))


def refused_v8(y: np.ndarray) -> bool:
    """Round 2's verdict (stage version 8): quiet under -60 dBFS and contrast under 1.8."""
    return loudest_db(y) < -60.0 and not contrast_v7(y, SR) >= 1.8


def refused(y: np.ndarray, sr: int = SR) -> bool:
    """The stage's verdict now (``check_sound``)."""
    try:
        check_sound(y, sr)
    except NoSound:
        return True
    return False


def round2(hearts: dict, floors: dict) -> None:
    """Round 2: the loudest band level of each, and its verdict."""
    h = {k: loudest_db(y) for k, y in hearts.items()}
    n = {k: loudest_db(y) for k, y in floors.items()}
    print(f"  heart loudest band: min {min(h.values()):.1f} dBFS ({min(h, key=h.get)}); "
          f"refused {sum(refused_v8(y) for y in hearts.values())} of {len(h)}")
    print(f"  noise loudest band: max {max(n.values()):.1f} dBFS ({max(n, key=n.get)}); "
          f"kept {sum(not refused_v8(y) for y in floors.values())} of {len(n)}")


def takes(hearts: dict) -> dict[str, np.ndarray]:
    """Round 3: each heart recording as is, its first 5 s followed by 35 s of white noise at
    its own floor (the 30th percentile of its 20 ms frames' RMS), and hard-clipped at gains
    8, 15 and 30 (review 10's long quiet takes and clipped recordings)."""
    out = dict(hearts)
    for k, y in hearts.items():
        z = y[: 5 * SR]
        floor = np.sqrt(np.percentile(z[: len(z) // 80 * 80].reshape(-1, 80).var(axis=1), 30))
        rng = np.random.default_rng(1)
        out[f"{k} + 35 s floor"] = np.r_[z, floor * rng.standard_normal(35 * SR)]
        for g in (8, 15, 30):
            out[f"{k} clipped x{g}"] = np.clip(g * y, -1, 1)
    return out


def loud_noises(seeds: range) -> dict[str, np.ndarray]:
    """Round 3: loud stationary noise (review 12: accepted above -60 dBFS, and periodic mode
    invented segments in it): 20 s of brown noise (a pole at 0.995) at -50, -30 and -10
    dBFS RMS, 10 s of white noise at -10 dBFS hard-clipped at full scale, and 10 minutes of
    white noise at -30 dBFS (the loudest 0.5 s of a long noise reach higher by chance)."""
    out = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        brown = lfilter([1.0], [1.0, -0.995], rng.standard_normal(20 * SR))
        brown /= np.sqrt(np.mean(brown**2))
        for db in (-50, -30, -10):
            out[f"brown {db} dBFS #{seed}"] = brown * 10 ** (db / 20)
        out[f"white -10 dBFS clipped #{seed}"] = np.clip(0.3 * rng.standard_normal(10 * SR), -1, 1)
        out[f"white 10 min #{seed}"] = 0.03 * rng.standard_normal(600 * SR)
    return out


def music_and_speech() -> dict[str, tuple[np.ndarray, int]]:
    """The corpora's music, speech and beat excerpts (read at their own rate, mixed to mono):
    each must stay a sound (periodic mode segments music)."""
    c = H.CORPORA
    paths = (sorted((c / "music").glob("*.ogg")) + sorted((c / "speech").glob("*.flac"))
             + sorted((c / "beats").glob("*.wav")) + sorted((c / "beats").glob("*.flac"))
             + sorted((c / "beats" / "mdb_drums").rglob("*.flac")))
    out = {}
    for p in paths:
        y, sr = sf.read(str(p), dtype="float64", always_2d=True)
        out[p.stem[:40]] = (y.mean(axis=1), sr)
    return out


def round3(hearts: dict, floors: dict, pick: tuple | None = None) -> tuple[int, float]:
    """Round 3: per candidate, the weakest heart take over the strongest noise (or, with
    ``pick`` = (candidate, threshold), that one's verdicts only); returns the choice."""
    res = {}
    for i, (name, stat) in enumerate(ROUND3):
        if pick is not None and i != pick[0]:
            continue
        h = {k: stat(y, SR) for k, y in hearts.items()}
        n = {k: stat(y, SR) for k, y in floors.items()}
        hk, nk = min(h, key=h.get), max(n, key=n.get)
        res[i] = (h[hk], n[nk])
        print(f"  {name}: heart min {h[hk]:.2f} ({hk}), noise max {n[nk]:.2f} ({nk}), "
              f"gap {h[hk] / n[nk]:.2f}")
        if pick is not None:
            print(f"  heart takes refused: {sum(v < pick[1] for v in h.values())} of {len(h)}; "
                  f"noises kept: {sum(v >= pick[1] for v in n.values())} of {len(n)}")
    if pick is not None:
        return pick
    best = max(res, key=lambda i: res[i][0] / res[i][1])
    threshold = float(np.floor(10 * np.sqrt(res[best][0] * res[best][1])) / 10)
    print(f"  chosen: {ROUND3[best][0]}, threshold {threshold:.1f}")
    return best, threshold


def verdicts(hearts: dict, floors: dict, others: dict | None = None) -> None:
    """The stage's verdicts (``check_sound``) on round 3's sets."""
    print(f"  stage: heart takes refused {sum(refused(y) for y in hearts.values())} of "
          f"{len(hearts)}; noises kept {sum(not refused(y) for y in floors.values())} of "
          f"{len(floors)}")
    if others:
        out = [k for k, (y, sr) in others.items() if refused(y, sr)]
        print(f"  stage: music/speech/beats refused {len(out)} of {len(others)}: {out}")
        low = sorted((sound_contrast(y, sr), k) for k, (y, sr) in others.items())[:4]
        print("  lowest:", ", ".join(f"{k} {v:.1f}" for v, k in low))


def main() -> None:
    recs = H.load_circor() + H.load_pascal()
    sp = H.splits([r for r in recs if r.corpus == "circor"],
                  [r for r in recs if r.corpus == "pascal"])
    tune = {r.name: r.y for r in sp["A"]["tune"]}
    print("tuning part")
    res = table(tune, noises(range(3)))
    best = max(res, key=lambda k: res[k][0] / res[k][1])
    lo, hi = res[best][1], res[best][0]
    threshold = np.floor(10 * np.sqrt(lo * hi)) / 10
    print(f"chosen: {best[0] * 1000:.0f} ms, p{best[1]:.0f}, threshold {threshold:.1f}")
    round2(tune, noises(range(3)))
    print("round 3, tuning part")
    floors3 = {**noises(range(3)), **loud_noises(range(3))}
    pick = round3(takes(tune), floors3)
    verdicts(takes(tune), floors3, music_and_speech())
    if "--report" in sys.argv:
        print("report part (read once)")
        hearts = {r.name: r.y for r in sp["A"]["report"]}
        floors = noises(range(100, 103))
        f, q = best
        h = {k: contrast_v7(y, SR, f, q) for k, y in hearts.items()}
        n = {k: contrast_v7(y, SR, f, q) for k, y in floors.items()}
        print("  heart:", ", ".join(f"{k} {v:.2f}" for k, v in h.items()))
        print(f"  heart refused: {sum(v < threshold for v in h.values())} of {len(h)}; "
              f"noise kept: {sum(v >= threshold for v in n.values())} of {len(n)} "
              f"(max {max(n.values()):.2f})")
        round2(hearts, floors)
        print("round 3, report part")
        floors3 = {**floors, **loud_noises(range(100, 103))}
        round3(takes(hearts), floors3, pick)
        verdicts(takes(hearts), floors3)


if __name__ == "__main__":
    main()

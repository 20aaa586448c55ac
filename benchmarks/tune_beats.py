"""Choose the beat tracker's onset envelope by leave-one-track-out over the MDB Drums tracks.

Candidates (a small, fixed set): the mel-mean onset envelope (the previous default) and the
band envelope (:func:`audiopipe.stages.beats.band_onset_strength`) with the cymbal band
weighted 0, 0.25, 0.5 or 1. Material: the seven MDB Drums drum-only recordings, each also
played 0.7, 0.85, 1.2 and 1.4 times as fast (soxr resampling: tempo and pitch change
together, beat times known exactly), so that a choice that only works near 110 BPM (where
six of the seven sit) does not win. For each held-out track, the candidate with the best mean
F-measure on the other six tracks (all rates) is chosen, then scored on the held-out track
(native rate, and all rates); nothing about the held-out track enters its choice.
``librosa.beat.beat_track`` is scored on the same audio. F-measure: mir_eval.beat
(+-70 ms), beats in the first 5 s ignored (``trim_beats``).

Run from the repository root (about 2 minutes on one core)::

    python benchmarks/tune_beats.py [--corpora ../shared/corpora] [--no-librosa]

Prints a table and writes ``benchmarks/results/tune_beats.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiopipe.stages.beats import _onset_envelope, band_onset_strength, beat_track  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning, module="mir_eval")
SR = 22050
HOP = 512
RATES = (0.7, 0.85, 1.0, 1.2, 1.4)
#: candidate name -> high_weight (None: mel-mean envelope, the previous default)
CANDIDATES: dict[str, float | None] = {
    "mel-mean": None, "bands h=0": 0.0, "bands h=0.25": 0.25, "bands h=0.5": 0.5,
    "bands h=1": 1.0,
}


def load(path: Path) -> np.ndarray:
    y, s = sf.read(str(path), dtype="float32", always_2d=True)
    return soxr.resample(y.mean(axis=1), s, SR).astype(np.float32)


def fmeasure(ref: np.ndarray, est: np.ndarray) -> float:
    return float(
        mir_eval.beat.f_measure(mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
    ap.add_argument("--corpora", default=os.environ.get("AUDIOPIPE_CORPORA", str(default)))
    ap.add_argument("--no-librosa", action="store_true")
    a = ap.parse_args()
    mdb = Path(a.corpora) / "beats" / "mdb_drums"
    with open(mdb / "tracks.csv") as f:
        tracks = [r["track"] for r in csv.DictReader(f)]
    # scores[candidate][track][rate]
    scores: dict[str, dict[str, dict[float, float]]] = {c: {} for c in CANDIDATES}
    lib: dict[str, dict[float, float]] = {}
    for t in tracks:
        ref = np.loadtxt(mdb / "annotations" / "beats" / f"{t}.beats", ndmin=2)[:, 0]
        y0 = load(mdb / "audio_drums" / f"{t}_Drum.flac")
        for r in RATES:
            y = y0 if r == 1.0 else soxr.resample(y0, SR * r, SR).astype(np.float32)
            rr = ref / r
            for c, w in CANDIDATES.items():
                env = _onset_envelope(y, SR, HOP) if w is None else band_onset_strength(y, SR, HOP, w)
                _, b = beat_track(onset_envelope=env, sr=SR, hop_length=HOP)
                scores[c].setdefault(t, {})[r] = fmeasure(rr, b)
            if not a.no_librosa:
                import librosa

                _, lb = librosa.beat.beat_track(y=y, sr=SR, hop_length=HOP, units="time")
                lib.setdefault(t, {})[r] = fmeasure(rr, lb)
        print(f"scored {t}", flush=True)

    def mean_over(c: str, ts: list[str]) -> float:
        return float(np.mean([v for t in ts for v in scores[c][t].values()]))

    folds = []
    for held in tracks:
        rest = [t for t in tracks if t != held]
        tune = {c: mean_over(c, rest) for c in CANDIDATES}
        best = max(tune, key=lambda c: (tune[c], c == "mel-mean"))  # ties: keep the old
        folds.append({
            "held_out": held, "chosen": best, "tuning_f": tune,
            "f_native": scores[best][held][1.0], "f_all_rates": mean_over(best, [held]),
            "baseline_f_native": scores["mel-mean"][held][1.0],
            "baseline_f_all_rates": mean_over("mel-mean", [held]),
            "librosa_f_native": lib.get(held, {}).get(1.0),
            "librosa_f_all_rates": float(np.mean(list(lib[held].values()))) if lib else None,
        })
    print("\n## leave-one-track-out, MDB Drums drum-only (F, +-70 ms)")
    hdr = f"{'held-out track':<20} {'chosen':<13} {'F native':>8} {'F rates':>8} " \
          f"{'old nat':>8} {'old rates':>9} {'librosa nat':>11} {'librosa rates':>13}"
    print(hdr + "\n" + "-" * len(hdr))
    for f in folds:
        lo = f"{f['librosa_f_native']:11.3f} {f['librosa_f_all_rates']:13.3f}" if lib else ""
        print(f"{f['held_out']:<20} {f['chosen']:<13} {f['f_native']:8.3f} {f['f_all_rates']:8.3f} "
              f"{f['baseline_f_native']:8.3f} {f['baseline_f_all_rates']:9.3f} {lo}")
    summ = {k: float(np.mean([f[k] for f in folds])) for k in
            ("f_native", "f_all_rates", "baseline_f_native", "baseline_f_all_rates")}
    if lib:
        summ.update({k: float(np.mean([f[k] for f in folds]))
                     for k in ("librosa_f_native", "librosa_f_all_rates")})
    print(f"{'MEAN held-out':<20} {'':<13} {summ['f_native']:8.3f} {summ['f_all_rates']:8.3f} "
          f"{summ['baseline_f_native']:8.3f} {summ['baseline_f_all_rates']:9.3f} "
          + (f"{summ['librosa_f_native']:11.3f} {summ['librosa_f_all_rates']:13.3f}" if lib else ""))
    overall = {c: mean_over(c, tracks) for c in CANDIDATES}
    print("\nall seven tracks (the default is chosen here):",
          ", ".join(f"{c} {v:.3f}" for c, v in overall.items()))
    out = {"folds": folds, "summary": summ, "all_tracks": overall, "rates": RATES,
           "scores": {c: {t: {str(r): v for r, v in d.items()} for t, d in s.items()}
                      for c, s in scores.items()}}
    res = Path(__file__).resolve().parent / "results"
    res.mkdir(exist_ok=True)
    (res / "tune_beats.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {res / 'tune_beats.json'}")


if __name__ == "__main__":
    main()

"""Tuning of the polyphonic transcription (and of its baseline) on the tuning part only.

The tuning part is the GuitarSet excerpt's first 11 s (66 notes; ``PARTS`` in
``benchmarks/transcribe.py``): only its audio (``[0, 11.5 s)``) and the notes with an onset
before 11 s are read here. The objective is mir_eval's onset-only F-measure (+-50 ms).

* audiopipe's harmonic NMF path (``min_note_duration`` stays the stage's 0.1 s, shared
  with the monophonic path): coordinate ascent from the previous defaults (``START``)
  over ``SPACE`` (up to three passes; every value of one parameter is tried with the
  others held at the current best; ties keep the current value). Activations are cached
  per NMF setting, so the note-extraction settings cost little.
* the onset + CQT-peak baseline: full grid over ``BASELINE_SPACE``.

The chosen values became the defaults of :class:`HarmonicNMF`,
:func:`notes_from_activations` / :func:`onset_frames` and ``BASELINE`` in
``transcribe.py``. Writes ``benchmarks/results/transcribe_tuning.json``. Run:
``python benchmarks/tune_transcribe.py`` (a few minutes on one core).
"""

from __future__ import annotations

import json
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transcribe import (  # noqa: E402
    PARTS,
    RESULTS,
    SR,
    in_part,
    load,
    onset_cqt_baseline,
    onset_prf,
)

from audiopipe.stages.transcribe import HarmonicNMF, hz_to_midi  # noqa: E402
from audiopipe.stages.transcribe.poly import notes_from_activations, onset_frames  # noqa: E402

HOP = 256
FMIN, FMAX = 70.0, 1400.0  # as transcribe.py runs the guitar
#: the defaults before this tuning (onset handling off: reattack inf, snap 0)
START = {
    "n_fft": 4096,
    "sparsity": 0.1,
    "fundamental_gate": 0.1,
    "harmonic_decay": 1.0,
    "onset_threshold": 0.2,
    "frame_threshold": 0.05,
    "min_note_duration": 0.1,
    "reattack": float("inf"),
    "snap": 0.0,
    "onset_delta": 0.05,
}
SPACE = {
    "n_fft": [2048, 4096],
    "sparsity": [0.03, 0.1, 0.3, 0.6, 1.0],
    "fundamental_gate": [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0],
    "harmonic_decay": [0.5, 1.0, 1.5, 2.0, 2.5],
    "onset_threshold": [0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3],
    "frame_threshold": [0.02, 0.05, 0.1, 0.15, 0.2],
    "reattack": [1.1, 1.2, 1.5, 2.0, 3.0, float("inf")],
    "snap": [0.0, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2],
    "onset_delta": [0.02, 0.05, 0.1],
}
NMF_KEYS = ("n_fft", "sparsity", "fundamental_gate", "harmonic_decay")
BASELINE_SPACE = {"peak_db": [6.0, 9.0, 12.0, 15.0, 20.0], "max_notes": [1, 2, 3, 4, 5, 6]}


def tuning_data(C: Path) -> tuple[np.ndarray, list, tuple[float, float]]:
    w = PARTS["guitar"]["tune"]
    y = load(C / "notes" / "guitarset" / "00_BN1-129-Eb_comp_mic.flac")[: int((w[1] + 0.5) * SR)]
    g = np.genfromtxt(C / "notes" / "guitarset" / "notes.csv", delimiter=",", names=True)
    ref = [(float(a), float(b), float(m)) for a, b, m in zip(
        g["onset_s"], g["offset_s"], g["midi_pitch"], strict=True)]
    return y, in_part(ref, w), w


def main() -> None:
    C = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
    if len(sys.argv) > 1:
        C = Path(sys.argv[1])
    y, ref, w = tuning_data(C.resolve())
    t0 = time.perf_counter()
    H_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    ons_cache: dict[float, np.ndarray] = {}

    def score(p: dict) -> float:
        key = tuple(p[k] for k in NMF_KEYS)
        if key not in H_cache:
            est = HarmonicNMF(
                midi_min=int(np.ceil(hz_to_midi(FMIN))), midi_max=int(np.floor(hz_to_midi(FMAX))),
                hop_length=HOP, n_fft=p["n_fft"], sparsity=p["sparsity"],
                fundamental_gate=p["fundamental_gate"], harmonic_decay=p["harmonic_decay"],
            )
            H_cache[key] = (est.fit_transform(y, SR), est.midi_numbers())
        if p["onset_delta"] not in ons_cache:
            ons_cache[p["onset_delta"]] = onset_frames(y, SR, HOP, delta=p["onset_delta"])
        H, mids = H_cache[key]
        use_onsets = np.isfinite(p["reattack"]) or p["snap"] > 0
        notes = notes_from_activations(
            H, mids, sr=SR, hop_length=HOP, onset_threshold=p["onset_threshold"],
            frame_threshold=p["frame_threshold"], min_note_duration=p["min_note_duration"],
            onsets=ons_cache[p["onset_delta"]] if use_onsets else None,
            reattack=p["reattack"] if np.isfinite(p["reattack"]) else None, snap=p["snap"],
        )
        return onset_prf(ref, in_part([(a, b, float(m)) for a, b, m, _ in notes], w))[2]

    best = dict(START)
    best_f = score(best)
    trace = [{"pass": 0, "params": dict(best), "f": best_f}]
    print(f"start: F = {best_f:.3f}  {best}")
    for it in range(3):
        changed = False
        for k, values in SPACE.items():
            for v in values:
                if v == best[k]:
                    continue
                f = score({**best, k: v})
                if f > best_f + 1e-9:
                    best, best_f, changed = {**best, k: v}, f, True
                    trace.append({"pass": it + 1, "params": dict(best), "f": f})
                    print(f"pass {it + 1}: {k} = {v}: F = {f:.3f}")
        if not changed:
            break
    print(f"chosen: F = {best_f:.3f}  {best}  ({time.perf_counter() - t0:.0f} s)")

    grid = []
    for pdb, mx in product(BASELINE_SPACE["peak_db"], BASELINE_SPACE["max_notes"]):
        est = onset_cqt_baseline(y, SR, peak_db=pdb, max_notes=mx, fmin=FMIN, fmax=FMAX)
        grid.append(({"peak_db": pdb, "max_notes": mx}, onset_prf(ref, in_part(est, w))[2]))
    b_params, b_f = max(grid, key=lambda t: t[1])
    print(f"baseline chosen: F = {b_f:.3f}  {b_params}")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "tuning_part": {"recording": "guitar", "window_s": list(w), "n_ref": len(ref)},
        "audiopipe": {"start": START, "start_f": trace[0]["f"], "chosen": best, "f": best_f,
                      "trace": trace},
        "baseline": {"chosen": b_params, "f": b_f, "grid": grid},
        "seconds": time.perf_counter() - t0,
    }
    (RESULTS / "transcribe_tuning.json").write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {RESULTS / 'transcribe_tuning.json'}")


if __name__ == "__main__":
    main()

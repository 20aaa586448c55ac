"""Transcription on the development recordings, with a tuning split, next to baselines.

Run from the repository root::

    python benchmarks/transcribe.py [--corpora ../shared/corpora] [--part report|tune|all]
                                    [--no-basic-pitch]

Polyphonic: mir_eval.transcription onset-only F-measure (+-50 ms, pitch within 50 cents)
of ``transcribe(method="poly")`` (harmonic NMF) and of a simple baseline written with
librosa (onsets by ``librosa.onset.onset_detect``, then the peaks of the CQT column just
after each onset within ``BASELINE['peak_db']`` dB of its maximum, at most
``BASELINE['max_notes']`` per onset, each lasting to the next onset; its two settings are
chosen on the tuning part by ``tune_transcribe.py`` like ours).

The split (:data:`PARTS`): the development corpora hold two note-annotated polyphonic
recordings (GuitarSet 00_BN1-129-Eb_comp, 22.3 s, 133 notes; madmom's stereo_sample piano,
4.4 s, 8 notes). Parameters are chosen on **tune** = the guitar's first 11 s (66 notes);
figures are reported on **report** = the guitar from 11 s to the end (67 notes, same player
and piece: a weak held-out part) and the piano recording (nothing was chosen on piano),
plus the two TinySOL single notes. Notes are attributed to a part by their onset; the whole
recording is transcribed once.

Monophonic f0 (nothing here was tuned: the pitch tracker keeps pYIN's published
parameters): mir_eval.melody raw pitch accuracy, voicing recall / false alarm and overall
accuracy on vocadito_1 (33 s of solo singing), ours next to ``librosa.pyin`` with the same
range and hop, both timed.

Optional (``basic-pitch`` and ``onnxruntime`` importable, e.g. ``pip install --no-deps
basic-pitch==0.4.0 onnxruntime pretty_midi "resampy<0.4.3"``): Spotify's basic-pitch ONNX
model (Apache-2.0) on the same parts. It is *not* an audiopipe dependency: GuitarSet is
one of its training sets, so its guitar figures are not held-out figures; on the piano
(nothing tuned, not in its training data as far as we know) it scored 0.737 against the
harmonic NMF path's 0.769 (8 notes); its default install pulls TensorFlow < 2.15.1 (the
``--no-deps`` route needs onnxruntime, 78 MB, and pretty_midi/resampy), and it ran ~2.5x
slower than the NMF path here (its own file loading and resampling included).

Prints tables and writes ``benchmarks/results/transcribe.json``. About 1-2 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiopipe.stages.transcribe import pitch_track, transcribe  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="mir_eval")

SR, HOP = 22050, 256
RESULTS = Path(__file__).resolve().parent / "results"
#: the onset+CQT-peak baseline's settings, chosen on the tuning part (tune_transcribe.py)
BASELINE = {"peak_db": 9.0, "max_notes": 2}

#: recording -> {part: (t0, t1)} onset windows of the split (seconds)
PARTS = {
    "guitar": {"tune": (0.0, 11.0), "report": (11.0, 1e9)},
    "piano": {"report": (0.0, 1e9)},
    "tinysol_Cb_A2": {"report": (0.0, 1e9)},
    "tinysol_Fl_C4": {"report": (0.0, 1e9)},
}

Note = tuple[float, float, float]  # onset_s, offset_s, midi


def load(path: Path | str, sr: int = SR) -> np.ndarray:
    y, s = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return (soxr.resample(y, s, sr) if s != sr else y).astype(np.float32)


def recordings(C: Path) -> dict[str, tuple[np.ndarray, list[Note], dict]]:
    """name -> (audio at SR, reference notes, transcribe() keyword arguments)."""
    out = {}
    g = np.genfromtxt(C / "notes" / "guitarset" / "notes.csv", delimiter=",", names=True)
    out["guitar"] = (
        load(C / "notes" / "guitarset" / "00_BN1-129-Eb_comp_mic.flac"),
        [(float(a), float(b), float(m)) for a, b, m in zip(
            g["onset_s"], g["offset_s"], g["midi_pitch"], strict=True)],
        {"fmin": 70.0, "fmax": 1400.0},  # a guitar's range (E2 82 Hz .. ~ E6)
    )
    r = np.loadtxt(C / "beats" / "stereo_sample.notes", comments="#")
    out["piano"] = (
        load(C / "beats" / "stereo_sample.flac"),
        [(float(a), float(a + d), float(m)) for a, m, d, _ in r],
        {},  # default range C2..C7
    )
    for key, fn, midi in (
        ("tinysol_Cb_A2", "Cb-ord-A2-mf-2c-N.flac", 45),
        ("tinysol_Fl_C4", "Fl-ord-C4-mf-N-T14d.flac", 60),
    ):
        y = load(C / "notes" / "tinysol" / fn)
        on = _first_onset(y)
        out[key] = (y, [(on, y.size / SR, float(midi))], {"fmin": 40.0})
    return out


def _first_onset(y: np.ndarray) -> float:
    """Where a single note starts: the first frame within 20 dB of the peak RMS."""
    rms = np.sqrt(np.convolve(y.astype(np.float64) ** 2, np.ones(256) / 256, mode="same"))
    return float(np.argmax(rms > 0.1 * rms.max()) / SR)


def in_part(notes: list, window: tuple[float, float]) -> list:
    return [n for n in notes if window[0] <= n[0] < window[1]]


def onset_prf(ref: list, est: list) -> tuple[float, float, float]:
    """mir_eval.transcription onset-only precision, recall, F (+-50 ms, 50 cents)."""
    if not ref:
        return float("nan"), float("nan"), float("nan")
    if not est:
        return 0.0, 0.0, 0.0
    ri = np.array([[a, max(b, a + 1e-3)] for a, b, *_ in ref])
    ei = np.array([[a, max(b, a + 1e-3)] for a, b, *_ in est])
    rp = 440.0 * 2 ** ((np.array([n[2] for n in ref], float) - 69) / 12)
    ep = 440.0 * 2 ** ((np.array([n[2] for n in est], float) - 69) / 12)
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ri, rp, ei, ep, onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None
    )
    return float(p), float(r), float(f)


def pooled(per_rec: dict[str, tuple[list, list]]) -> dict[str, float]:
    """Onset P/R/F pooled over recordings (note counts add), and the per-recording F."""
    tp = n_ref = n_est = 0
    out: dict[str, float] = {}
    for name, (ref, est) in per_rec.items():
        p, r, f = onset_prf(ref, est)
        out[f"f_{name}"] = f
        if ref:
            tp += r * len(ref)
            n_ref += len(ref)
            n_est += len(est)
    p = tp / n_est if n_est else 0.0
    r = tp / n_ref if n_ref else 0.0
    out.update(
        precision=p, recall=r, f=2 * p * r / (p + r) if p + r else 0.0, n_ref=n_ref, n_est=n_est
    )
    return out


# --------------------------------------------------------------------------- baselines


def onset_cqt_baseline(
    y: np.ndarray, sr: int = SR, peak_db: float = 12.0, max_notes: int = 4,
    fmin: float = 65.0, fmax: float = 2093.0,
) -> list[Note]:
    """The thirty-line librosa baseline: onsets, then CQT peaks just after each onset."""
    import librosa
    import scipy.signal

    # float64 envelope: librosa 0.11's peak_pick segfaults on float32 with numba 0.68 here
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP).astype(np.float64)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=HOP)
    midi_lo = int(np.ceil(librosa.hz_to_midi(fmin)))
    n_bins = int(np.floor(librosa.hz_to_midi(fmax))) - midi_lo + 1
    C = np.abs(librosa.cqt(y, sr=sr, hop_length=HOP, fmin=librosa.midi_to_hz(midi_lo),
                           n_bins=n_bins, bins_per_octave=12))
    D = librosa.amplitude_to_db(C, ref=np.max)
    ends = np.r_[onsets[1:], D.shape[1] - 1]
    notes = []
    for o, e in zip(onsets, ends, strict=True):
        col = D[:, min(o + 3, D.shape[1] - 1)]  # ~35 ms after the onset
        peaks, _ = scipy.signal.find_peaks(np.r_[-120, col, -120])
        peaks = peaks - 1
        peaks = peaks[col[peaks] >= col.max() - peak_db]
        peaks = peaks[np.argsort(-col[peaks])][:max_notes]
        for b in peaks:
            notes.append((o * HOP / sr, max(e, o + 1) * HOP / sr, float(midi_lo + b)))
    return notes


def ours(y: np.ndarray, kw: dict, **over) -> list[Note]:
    return [(a, b, float(m)) for a, b, m, _ in transcribe(y, SR, "poly", **{**kw, **over})]


def ours_before(y: np.ndarray, kw: dict) -> list[Note]:
    """The poly path with the defaults it had before tune_transcribe.py (no onset snapping)."""
    from audiopipe.stages.transcribe import HarmonicNMF, hz_to_midi
    from audiopipe.stages.transcribe.poly import notes_from_activations

    est = HarmonicNMF(
        midi_min=int(np.ceil(hz_to_midi(kw.get("fmin", 65.0)))),
        midi_max=int(np.floor(hz_to_midi(kw.get("fmax", 2093.0)))),
        hop_length=HOP, n_fft=4096, sparsity=0.1, fundamental_gate=0.1, harmonic_decay=1.0,
    )
    notes = notes_from_activations(
        est.fit_transform(y, SR), est.midi_numbers(), sr=SR, hop_length=HOP,
        onset_threshold=0.2, frame_threshold=0.05, min_note_duration=0.1,
    )
    return [(a, b, float(m)) for a, b, m, _ in notes]


def basic_pitch_notes() -> Callable[[np.ndarray], list[Note]] | None:
    """basic-pitch's ONNX model through its own inference code, if importable (not a dependency)."""
    try:
        import logging

        logging.disable(logging.WARNING)  # its import warns about every absent backend
        import basic_pitch
        import onnxruntime  # noqa: F401
        from basic_pitch.inference import Model, predict
    except Exception:  # noqa: BLE001
        return None
    finally:
        import logging

        logging.disable(logging.NOTSET)
    model = Model(Path(basic_pitch.__file__).parent / "saved_models/icassp_2022/nmp.onnx")

    def run(y: np.ndarray) -> list[Note]:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            sf.write(f.name, y, SR)
            _, _, events = predict(f.name, model)
        return [(float(a), float(b), float(m)) for a, b, m, *_ in events]

    return run


# --------------------------------------------------------------------------- runs


def poly_table(C: Path, part: str, use_bp: bool) -> dict:
    recs = recordings(C)
    methods: dict[str, Callable[[np.ndarray, dict], list[Note]]] = {
        "audiopipe poly (harmonic NMF)": lambda y, kw: ours(y, kw),
        "audiopipe poly, defaults before tuning": ours_before,
        "onset + CQT peaks (librosa)": lambda y, kw: onset_cqt_baseline(y, **BASELINE, **kw),
    }
    bp = basic_pitch_notes() if use_bp else None
    if bp is not None:
        methods["basic-pitch ONNX (pretrained)"] = lambda y, kw: bp(y)
    res: dict = {}
    rows = []
    for mname, fn in methods.items():
        per: dict[str, tuple[list, list]] = {}
        secs = 0.0
        for rname, (y, ref, kw) in recs.items():
            windows = PARTS[rname]
            if part != "all" and part not in windows:
                continue
            t0 = time.perf_counter()
            est = fn(y, kw)
            secs += time.perf_counter() - t0
            for pname, w in windows.items():
                if part in ("all", pname):
                    per[f"{rname}:{pname}"] = (in_part(ref, w), in_part(est, w))
        m = pooled(per)
        m["seconds"] = secs
        res[mname] = m
        rows.append([mname, m["n_ref"], m["n_est"], m["precision"], m["recall"], m["f"]]
                    + [m[f"f_{k}"] for k in per] + [secs])
    header = ["method", "ref", "est", "P", "R", "F pooled"] + [f"F {k}" for k in per] + ["sec"]
    table(f"polyphonic onset F (+-50 ms), part '{part}'", header, rows)
    return res


def mono_f0_table(C: Path) -> dict:
    import librosa

    voc = C / "notes" / "vocadito"
    y = load(voc / "vocadito_1.flac")
    ref = np.loadtxt(voc / "vocadito_1_f0.csv", delimiter=",")
    keys = ["Raw Pitch Accuracy", "Voicing Recall", "Voicing False Alarm", "Overall Accuracy"]
    res, rows = {}, []
    librosa.pyin(y[:SR], fmin=65.0, fmax=2093.0, sr=SR, hop_length=HOP)  # JIT outside the timing
    for name in ("audiopipe pitch_track", "librosa.pyin"):
        t0 = time.perf_counter()
        if name == "librosa.pyin":
            f0, v, _ = librosa.pyin(y, fmin=65.0, fmax=2093.0, sr=SR, hop_length=HOP)
        else:
            f0, v, _ = pitch_track(y, SR, 65.0, 2093.0, hop_length=HOP)
        sec = time.perf_counter() - t0
        t = np.arange(f0.size) * HOP / SR
        m = mir_eval.melody.evaluate(ref[:, 0], ref[:, 1], t, np.where(v, np.nan_to_num(f0), 0))
        res[name] = {k: float(m[k]) for k in keys} | {"seconds": sec}
        rows.append([name] + [float(m[k]) for k in keys] + [sec])
    a, b = res["audiopipe pitch_track"]["seconds"], res["librosa.pyin"]["seconds"]
    res["speed_ratio_pyin_over_ours"] = b / a
    table("monophonic f0, vocadito_1 (33 s singing; mir_eval.melody)", ["tracker", *keys, "sec"],
          rows)
    print(f"speed: librosa.pyin / ours = {b / a:.2f}x (librosa's JIT warmed up before)")
    return res


def table(title: str, header: list[str], rows: list[list]) -> None:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [header] + [[fmt(v) for v in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
        if j == 0:
            print("  ".join("-" * x for x in w))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
    ap.add_argument("--corpora", default=os.environ.get("AUDIOPIPE_CORPORA", str(default)))
    ap.add_argument("--part", default="report", choices=("report", "tune", "all"))
    ap.add_argument("--no-basic-pitch", action="store_true")
    ap.add_argument("--no-mono", action="store_true", help="skip the monophonic f0 table")
    a = ap.parse_args()
    C = Path(a.corpora).resolve()
    if not C.is_dir():
        sys.exit(f"corpora not found at {C} (use --corpora or AUDIOPIPE_CORPORA)")
    t0 = time.perf_counter()
    out: dict = {"part": a.part, "baseline_settings": BASELINE}
    out["poly"] = poly_table(C, a.part, not a.no_basic_pitch)
    if not a.no_mono:
        out["mono_f0"] = mono_f0_table(C)
    out["seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"transcribe_{a.part}.json"
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"\nwrote {path} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

"""Feature throughput and memory: audiopipe vs librosa (and spafe), one core.

Prints, for each feature and for the default recipe, seconds of audio processed per wall
second (``x real time``) for audiopipe and the reference on the same input, and the ratio;
then the cost of the whole feature set relative to one STFT, the first-call time in a fresh
process, and the peak-RSS growth of streaming a 1-hour file versus a 1-minute one. Writes
everything to ``benchmarks/results/features.json``.

Timing is the minimum over repeats, with audiopipe and the reference interleaved, so a
shared machine's load affects both alike. The clock is the process's CPU time by default
(``--clock cpu``: single-threaded code on a machine shared with other jobs is measured
without the time it spends waiting for a core; wall time there varies 2x between runs);
``--clock wall`` measures wall time. Run::

    OMP_NUM_THREADS=1 python benchmarks/features.py [--quick] [--clock wall]

(``OPENBLAS_CORETYPE`` may be unset for this command alone.)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's audiopipe first

import audiopipe.features as F  # noqa: E402

SR = 22050
CORPORA = Path(os.environ.get("AUDIOPIPE_CORPORA", ROOT / ".." / "shared" / "corpora"))
MUSIC = "music/Kevin_MacLeod_-_Vibe_Ace.ogg"


def load_clip(seconds: float) -> tuple[np.ndarray, str]:
    """``seconds`` of real music at 22.05 kHz (looped), or white noise without the corpora."""
    path = CORPORA / MUSIC
    try:
        import soundfile as sf
        import soxr

        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
        y = soxr.resample(y.mean(axis=1), sr, SR).astype(np.float32)
        n = int(seconds * SR)
        y = np.tile(y, n // len(y) + 1)[:n]
        return np.ascontiguousarray(y), str(path.name)
    except Exception:  # noqa: BLE001 - benchmark falls back to synthetic audio
        rng = np.random.default_rng(0)
        return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32), "noise"


CLOCK = time.process_time  # see --clock


def best_time(fns: list, repeats: int) -> list[float]:
    """Minimum time (:data:`CLOCK`) of each function over ``repeats`` interleaved rounds."""
    for f in fns:
        f()  # warm-up (JIT, caches)
    best = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t = CLOCK()
            f()
            best[i] = min(best[i], CLOCK() - t)
    return best


def cases(y: np.ndarray, sr: int, librosa):
    """(name, audiopipe callable, reference callable or None, reference name)."""
    L = librosa.feature if librosa else None
    ex = {}

    def recipe(name, params=None):
        e = ex.setdefault(name, F.Extractor({"compute": {name: params or {}}}, sr))
        return lambda: e(y)

    def ref(fn):
        return fn if librosa else None

    return [
        ("stft", lambda: F.stft(y), ref(lambda: librosa.stft(y))),
        ("melspectrogram", lambda: F.melspectrogram(y=y, sr=sr),
         ref(lambda: L.melspectrogram(y=y, sr=sr))),
        ("mfcc", lambda: F.mfcc(y=y, sr=sr), ref(lambda: L.mfcc(y=y, sr=sr))),
        ("mfcc [recipe]", recipe("mfcc", {"top_db": 80.0}), ref(lambda: L.mfcc(y=y, sr=sr))),
        ("spectral_centroid", lambda: F.spectral_centroid(y=y, sr=sr),
         ref(lambda: L.spectral_centroid(y=y, sr=sr))),
        ("spectral_bandwidth", lambda: F.spectral_bandwidth(y=y, sr=sr),
         ref(lambda: L.spectral_bandwidth(y=y, sr=sr))),
        ("spectral_rolloff", lambda: F.spectral_rolloff(y=y, sr=sr),
         ref(lambda: L.spectral_rolloff(y=y, sr=sr))),
        ("centroid+bandwidth+rolloff [recipe]",
         lambda: ex.setdefault("cbr", F.Extractor({"compute": {
             "spectral_centroid": {}, "spectral_bandwidth": {}, "spectral_rolloff": {}}},
             sr))(y),
         ref(lambda: (L.spectral_centroid(y=y, sr=sr), L.spectral_bandwidth(y=y, sr=sr),
                      L.spectral_rolloff(y=y, sr=sr)))),
        ("spectral_flatness", lambda: F.spectral_flatness(y=y),
         ref(lambda: L.spectral_flatness(y=y))),
        ("spectral_contrast", lambda: F.spectral_contrast(y=y, sr=sr),
         ref(lambda: L.spectral_contrast(y=y, sr=sr))),
        ("chroma_stft", lambda: F.chroma_stft(y=y, sr=sr), ref(lambda: L.chroma_stft(y=y, sr=sr))),
        ("chroma_stft tuning=0", lambda: F.chroma_stft(y=y, sr=sr, tuning=0.0),
         ref(lambda: L.chroma_stft(y=y, sr=sr, tuning=0.0))),
        ("onset_strength", lambda: F.onset_strength(y=y, sr=sr),
         ref(lambda: librosa.onset.onset_strength(y=y, sr=sr))),
        ("tempogram", lambda: F.tempogram(y=y, sr=sr), ref(lambda: L.tempogram(y=y, sr=sr))),
        ("zero_crossing_rate", lambda: F.zero_crossing_rate(y),
         ref(lambda: L.zero_crossing_rate(y))),
        ("rms", lambda: F.rms(y=y), ref(lambda: L.rms(y=y))),
        ("delta(mfcc)", lambda: F.delta(mfcc_y), ref(lambda: L.delta(mfcc_y))),
        ("real_cepstrum", lambda: F.real_cepstrum(y=y), None),
        ("spectral_entropy", lambda: F.spectral_entropy(y=y, sr=sr), None),
        ("spectral_flux", lambda: F.spectral_flux(y=y, sr=sr), None),
        ("energy_entropy", lambda: F.energy_entropy(y, sr=sr), None),
    ]


def spafe_cases(y16: np.ndarray):
    try:
        import spafe.features.bfcc as sb
        import spafe.features.gfcc as sg
        import spafe.features.lpc as sl
        import spafe.features.pncc as sp
    except ImportError:
        return []
    y64 = y16.astype(np.float64)
    return [
        ("gfcc (16 kHz)", lambda: F.gfcc(y=y16, sr=16000), lambda: sg.gfcc(y64, fs=16000)),
        ("bfcc (16 kHz)", lambda: F.bfcc(y=y16, sr=16000), lambda: sb.bfcc(y64, fs=16000)),
        ("lpcc (16 kHz)", lambda: F.lpcc(y=y16, sr=16000), lambda: sl.lpcc(y64, fs=16000)),
        ("pncc (16 kHz)", lambda: F.pncc(y=y16, sr=16000), lambda: sp.pncc(y64, fs=16000)),
    ]


def librosa_default_recipe(librosa, y, sr):
    """What the default recipe costs when done feature by feature with librosa."""
    L = librosa.feature

    def run():
        m = L.mfcc(y=y, sr=sr)
        L.delta(m)
        L.delta(m, order=2)
        librosa.power_to_db(L.melspectrogram(y=y, sr=sr, n_mels=64))
        L.spectral_centroid(y=y, sr=sr)
        L.spectral_rolloff(y=y, sr=sr)
        L.zero_crossing_rate(y)
        L.rms(y=y)

    return run


FIRST_CALL = """
import resource, time, sys
t = time.perf_counter()
sys.path.insert(0, {root!r})
import numpy as np
import audiopipe.features as F
y = (0.1 * np.random.default_rng(0).standard_normal(22050 * 10)).astype(np.float32)
out = F.Extractor(F.DEFAULT_RECIPE, 22050)(y)
F.mfcc(y=y, sr=22050)
r = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t, r.ru_utime + r.ru_stime)
"""

MEMORY = """
import resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np
import audiopipe.features as F
minutes = float(sys.argv[1])
ex = F.Extractor(F.DEFAULT_RECIPE, 22050)
rng = np.random.default_rng(0)
block = (0.1 * rng.standard_normal(22050)).astype(np.float32)  # 1 s blocks, reused

def blocks():
    for _ in range(int(minutes * 60)):
        yield block

base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
frames = sum(p["mfcc"].shape[1] for p in ex.stream(blocks()))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, frames, dt)
"""


def subprocess_value(code: str, *args: str) -> list[float]:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code.format(root=str(ROOT)), *args],
                         capture_output=True, text=True, env=env, check=True)
    return [float(v) for v in out.stdout.split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="clip length for throughput")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="process CPU time (default; robust on a shared machine) or wall time")
    ap.add_argument("--quick", action="store_true", help="skip spafe and the 1-hour stream")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "features.json"))
    args = ap.parse_args()

    try:
        import librosa
    except ImportError:
        librosa = None
    y, source = load_clip(args.seconds)
    dur = len(y) / SR
    global mfcc_y
    mfcc_y = F.mfcc(y=y, sr=SR)
    rows = []
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"input: {dur:.0f} s of {source} at {SR} Hz; one core; min of {args.repeats} runs; "
          f"{args.clock} time")
    print(f"{'feature':38s} {'audiopipe':>11s} {'reference':>11s} {'ratio':>7s}")

    def record(name, ours, theirs, ref_name):
        ours_rt = dur / ours
        theirs_rt = dur / theirs if theirs else None
        ratio = theirs / ours if theirs else None
        rows.append({"feature": name, "audiopipe_x_realtime": ours_rt,
                     "reference": ref_name, "reference_x_realtime": theirs_rt,
                     "speedup": ratio})
        ref_s = f"{theirs_rt:10.0f}x" if theirs_rt else f"{'-':>11s}"
        ratio_s = f"{ratio:6.2f}x" if ratio else f"{'-':>7s}"
        print(f"{name:38s} {ours_rt:10.0f}x {ref_s} {ratio_s}  ({ref_name})")

    for name, ours, theirs in cases(y, SR, librosa):
        fns = [ours] + ([theirs] if theirs else [])
        t = best_time(fns, args.repeats)
        record(name, t[0], t[1] if theirs else None, "librosa" if theirs else "-")

    ex = F.Extractor(F.DEFAULT_RECIPE, SR)
    fns = [lambda: ex(y)] + ([librosa_default_recipe(librosa, y, SR)] if librosa else [])
    t = best_time(fns, args.repeats)
    record("DEFAULT_RECIPE (Extractor)", t[0], t[1] if librosa else None, "librosa, per feature")
    t_default = t[0]

    all_recipe = {"compute": {n: {} for n in F.FEATURES}}
    all_recipe["compute"]["real_cepstrum"] = {"n_ceps": 40}
    ex_all = F.Extractor(all_recipe, SR)
    fast = {n: {} for n in F.FEATURES if n not in ("pncc", "tempogram", "spectral_contrast",
                                                    "real_cepstrum", "lpc", "lpcc")}
    ex_fast = F.Extractor({"compute": fast}, SR)
    t_stft, t_all, t_fast = best_time([lambda: F.stft(y), lambda: ex_all(y),
                                       lambda: ex_fast(y)], args.repeats)
    print(f"\none STFT {t_stft * 1e3:.1f} ms; default recipe {t_default / t_stft:.2f} STFTs; "
          f"all {len(F.FEATURES)} recipe features {t_all / t_stft:.2f} STFTs; without "
          f"pncc/tempogram/contrast/cepstrum/lpc(c) {t_fast / t_stft:.2f} STFTs")

    spafe_rows = []
    if not args.quick:
        y16 = np.ascontiguousarray(load_clip(10.0)[0][::1])
        import soxr

        y16 = soxr.resample(y16, SR, 16000).astype(np.float32)
        d16 = len(y16) / 16000
        for name, ours, theirs in spafe_cases(y16):
            t = best_time([ours, theirs], 2)
            spafe_rows.append({"feature": name, "audiopipe_x_realtime": d16 / t[0],
                               "reference": "spafe", "reference_x_realtime": d16 / t[1],
                               "speedup": t[1] / t[0]})
            print(f"{name:38s} {d16 / t[0]:10.0f}x {d16 / t[1]:10.0f}x {t[1] / t[0]:6.1f}x"
                  "  (spafe)")

    first, first_cpu = min(subprocess_value(FIRST_CALL) for _ in range(3))
    print(f"\nfirst call in a fresh process (import + default recipe on 10 s + mfcc): "
          f"{first:.2f} s wall, {first_cpu:.2f} s CPU (wall includes waiting on a busy machine)")
    mem = {}
    for minutes in ([1.0] if args.quick else [1.0, 60.0]):
        base, peak, frames, dt = subprocess_value(MEMORY, str(minutes))
        mem[minutes] = {"peak_rss_mb": peak / 1024, "start_rss_mb": base / 1024,
                        "frames": frames, "x_realtime": minutes * 60 / dt}
        print(f"stream {minutes:4.0f} min in 1 s blocks: peak RSS {peak / 1024:.0f} MB "
              f"(start {base / 1024:.0f} MB), {minutes * 60 / dt:.0f}x real time")
    if 60.0 in mem:
        growth = mem[60.0]["peak_rss_mb"] - mem[1.0]["peak_rss_mb"]
        print(f"peak RSS growth 1 h vs 1 min: {growth:.1f} MB (goal < 200 MB)")
        mem["growth_mb_1h_vs_1min"] = growth

    res = {"input": {"seconds": dur, "source": source, "sr": SR}, "clock": args.clock,
           "threads": os.environ.get("OMP_NUM_THREADS"),
           "features": rows, "spafe": spafe_rows,
           "stft_ms": t_stft * 1e3, "default_recipe_in_stfts": t_default / t_stft,
           "all_features_in_stfts": t_all / t_stft, "first_call_s": first,
           "first_call_cpu_s": first_cpu,
           "memory": {str(k): v for k, v in mem.items()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


mfcc_y: np.ndarray

if __name__ == "__main__":
    main()

"""MIR stages on the real corpora: beats, transcription, separation, next to librosa and bounds.

Run from the repository root::

    python benchmarks/mir.py [--corpora ../shared/corpora] [--only beats,transcribe,separate]
                             [--no-librosa]

Prints one table per part and writes ``benchmarks/results/mir.json``.

* beats: mir_eval.beat F-measure (+-70 ms) of ``audiopipe.stages.beats.beat_track`` and of
  ``librosa.beat.beat_track`` on the same 22.05 kHz audio (and ours with the previous
  mel-mean onset envelope, ``bands=False``, as "before"): madmom sample.wav, the MDB Drums
  mixes and drum tracks, the demo corpus's click tracks, and real drums with a tempo change
  built by playing the second half faster (beat times known exactly). Files >= 10 s are
  scored the standard way (beats in the first 5 s ignored); shorter ones are scored whole.
* transcribe: mir_eval.transcription onset F-measure (+-50 ms) and with offsets (20 %) on
  vocadito (both annotators), madmom stereo_sample (piano), GuitarSet (polyphonic), generated
  tones; mir_eval.melody on vocadito's f0 (ours vs librosa.pyin); trumpet contour sanity.
* separate: mir_eval.separation SDR/SIR/SAR on real speech + real music at 0 dB (speech bases
  from FSDD speakers not in the mixture, music bases from another part of the same track),
  with the mixture and the ideal soft-mask oracle as bounds; HPSS and supervised NMF on the
  MusicDelta multitracks (drums vs the other stems).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiopipe.stages.beats import beat_track  # noqa: E402
from audiopipe.stages.separate import NMFSeparator, hpss_audio, oracle_masks  # noqa: E402
from audiopipe.stages.transcribe import (  # noqa: E402
    hz_to_midi,
    midi_to_hz,
    notes_from_pitch,
    pitch_track,
    transcribe,
)

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning, module="mir_eval")


def load(path: Path | str, sr: int = 22050, offset_s: float = 0.0, dur_s: float | None = None):
    info = sf.info(str(path))
    start = int(offset_s * info.samplerate)
    stop = None if dur_s is None else start + int(dur_s * info.samplerate)
    y, s = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return (soxr.resample(y, s, sr) if s != sr else y).astype(np.float32)


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


# --------------------------------------------------------------------------- beats


def bench_beats(C: Path, use_librosa: bool) -> dict:
    sr = 22050
    if use_librosa:
        import librosa
    items: list[tuple[str, np.ndarray, np.ndarray, bool]] = []  # name, y, ref, local
    ref = np.loadtxt(C / "beats" / "sample.beats", comments="#", ndmin=2)[:, 0]
    items.append(("madmom sample.wav", load(C / "beats" / "sample.wav"), ref, False))
    mdb = C / "beats" / "mdb_drums"
    with open(mdb / "tracks.csv") as f:
        tracks = [r["track"] for r in csv.DictReader(f)]
    for t in tracks:
        ref = np.loadtxt(mdb / "annotations" / "beats" / f"{t}.beats", ndmin=2)[:, 0]
        mix = mdb / "audio_mix" / f"{t}_MIX.flac"
        if mix.exists():
            items.append((f"MDB {t} mix", load(mix), ref, False))
        items.append((f"MDB {t} drums", load(mdb / "audio_drums" / f"{t}_Drum.flac"), ref, False))
    # demo click tracks (WAV, FLAC and MP3)
    from audiopipe.demo import make_demo_corpus

    demo = make_demo_corpus(tempfile.mkdtemp(), n_per_class=6)
    refs: dict[str, list[float]] = {}
    with open(demo / "beats.csv") as f:
        for r in csv.DictReader(f):
            refs.setdefault(r["path"], []).append(float(r["time_s"]))
    for rel, times in sorted(refs.items()):
        items.append((f"demo {rel}", load(demo / rel), np.array(times), False))
    # tempo change: real drums, then the same audio played r times faster
    for t, r in (("MusicDelta_Rock", 1.3), ("MusicDelta_Punk", 0.75), ("MusicDelta_Shadows", 1.25)):
        ref = np.loadtxt(mdb / "annotations" / "beats" / f"{t}.beats", ndmin=2)[:, 0]
        y = load(mdb / "audio_drums" / f"{t}_Drum.flac")
        yy = np.concatenate([y, soxr.resample(y, sr * r, sr).astype(np.float32)])
        rr = np.concatenate([ref, y.size / sr + ref / r])
        items.append((f"tempo change {t.split('_')[1]} x{r}", yy, rr, True))
    rows, out = [], []
    for name, y, ref, changes in items:
        long = y.size >= 10 * sr

        def score(b, long=long, ref=ref):
            if long:
                return mir_eval.beat.f_measure(
                    mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(np.asarray(b))
                )
            return mir_eval.beat.f_measure(ref, np.asarray(b))

        t0 = time.perf_counter()
        tempo, b = beat_track(y=y, sr=sr)
        dt = time.perf_counter() - t0
        rec = {
            "file": name,
            "dur_s": y.size / sr,
            "f_ours": score(b),
            "bpm_ours": tempo,
            "bpm_ref": float(60 / np.median(np.diff(ref))),
            "sec_ours": dt,
        }
        rec["f_ours_mel_mean"] = score(beat_track(y=y, sr=sr, bands=False)[1])  # before
        if changes:
            rec["f_ours_local_tempo"] = score(beat_track(y=y, sr=sr, local_tempo=True)[1])
        if use_librosa:
            t0 = time.perf_counter()
            lt, lb = librosa.beat.beat_track(y=y, sr=sr, units="time")
            rec["sec_librosa"] = time.perf_counter() - t0
            rec["f_librosa"] = score(lb)
            rec["bpm_librosa"] = float(np.atleast_1d(lt)[0])
        out.append(rec)
        rows.append(
            [
                name,
                rec["bpm_ref"],
                tempo,
                rec.get("bpm_librosa", ""),
                rec["f_ours"],
                rec["f_ours_mel_mean"],
                rec.get("f_ours_local_tempo", ""),
                rec.get("f_librosa", ""),
            ]
        )
    groups = {
        "madmom+MDB": [r for r in out if not r["file"].startswith(("demo", "tempo"))],
        "MDB drum-only": [r for r in out if r["file"].endswith(" drums")],
        "full mixes": [r for r in out if r["file"].endswith(" mix") or "madmom" in r["file"]],
        "demo clicks": [r for r in out if r["file"].startswith("demo")],
        "tempo change": [r for r in out if r["file"].startswith("tempo")],
    }
    summary = {}
    for g, rs in groups.items():
        summary[g] = {"n": len(rs), "f_ours": float(np.mean([r["f_ours"] for r in rs])),
                      "f_ours_mel_mean": float(np.mean([r["f_ours_mel_mean"] for r in rs]))}
        if use_librosa:
            summary[g]["f_librosa"] = float(np.mean([r["f_librosa"] for r in rs]))
        if g == "tempo change":
            summary[g]["f_ours_local_tempo"] = float(np.mean([r["f_ours_local_tempo"] for r in rs]))
        rows.append(
            [
                f"MEAN {g} (n={len(rs)})",
                "",
                "",
                "",
                summary[g]["f_ours"],
                summary[g]["f_ours_mel_mean"],
                summary[g].get("f_ours_local_tempo", ""),
                summary[g].get("f_librosa", ""),
            ]
        )
    table(
        "beats: F-measure (+-70 ms)",
        ["file", "ref bpm", "our bpm", "librosa bpm", "F ours", "F before (mel-mean)", "F ours local",
         "F librosa"],
        rows,
    )
    return {"files": out, "summary": summary}


# --------------------------------------------------------------------------- transcription


def _note_scores(ref_iv, ref_midi, notes) -> tuple[float, float]:
    if not notes:
        return 0.0, 0.0
    ei = np.array([[a, b] for a, b, _, _ in notes])
    ep = midi_to_hz(np.array([n[2] for n in notes]))
    rp = midi_to_hz(np.asarray(ref_midi, float))
    on = mir_eval.transcription.precision_recall_f1_overlap(ref_iv, rp, ei, ep, offset_ratio=None)
    off = mir_eval.transcription.precision_recall_f1_overlap(ref_iv, rp, ei, ep)
    return float(on[2]), float(off[2])


def _tones(notes, sr=22050, seed=0):
    rng = np.random.default_rng(seed)
    dur = max(n[1] for n in notes) + 0.3
    y = np.zeros(int(dur * sr))
    for on, off, m in notes:
        t = np.arange(int((off - on) * sr)) / sr
        f = float(midi_to_hz(m))
        amps = 0.6 ** np.arange(5) * rng.uniform(0.5, 1.0, 5)
        tone = sum(a * np.sin(2 * np.pi * f * (h + 1) * t) for h, a in enumerate(amps))
        env = np.minimum(1, np.minimum(t / 0.01, (t[-1] - t) / 0.02)) * np.exp(-t / 1.5)
        y[int(on * sr) : int(on * sr) + t.size] += 0.2 * tone * env
    return (y + 0.002 * rng.standard_normal(y.size)).astype(np.float32)


def bench_transcribe(C: Path, use_librosa: bool) -> dict:
    sr, hop = 22050, 256
    rows, res = [], {}
    # vocadito: f0 and notes
    voc = C / "notes" / "vocadito"
    y = load(voc / "vocadito_1.flac")
    t0 = time.perf_counter()
    f0, v, p = pitch_track(y, sr, hop_length=hop)
    t_ours = time.perf_counter() - t0
    ref = np.loadtxt(voc / "vocadito_1_f0.csv", delimiter=",")
    tt = np.arange(f0.size) * hop / sr
    keys = ["Voicing Recall", "Voicing False Alarm", "Raw Pitch Accuracy", "Overall Accuracy"]
    m_ours = mir_eval.melody.evaluate(ref[:, 0], ref[:, 1], tt, np.where(v, f0, 0.0))
    res["vocadito_melody_ours"] = {k: float(m_ours[k]) for k in keys} | {"sec": t_ours}
    if use_librosa:
        import librosa

        t0 = time.perf_counter()
        lf0, lv, _ = librosa.pyin(y, fmin=65.0, fmax=2093.0, sr=sr, hop_length=hop)
        t_lib = time.perf_counter() - t0
        m_lib = mir_eval.melody.evaluate(
            ref[:, 0],
            ref[:, 1],
            np.arange(lf0.size) * hop / sr,
            np.where(lv, np.nan_to_num(lf0), 0.0),
        )
        res["vocadito_melody_librosa_pyin"] = {k: float(m_lib[k]) for k in keys} | {"sec": t_lib}
    notes = notes_from_pitch(f0, v, p, sr=sr, hop_length=hop, y=y)
    for ann in ("A1", "A2"):
        r = np.loadtxt(voc / f"vocadito_1_notes{ann}.csv", delimiter=",")
        iv = np.c_[r[:, 0], r[:, 0] + r[:, 2]]
        on, off = _note_scores(iv, hz_to_midi(r[:, 1]), notes)
        res[f"vocadito_notes_{ann}"] = {
            "f_onset": on,
            "f_onset_offset": off,
            "n_est": len(notes),
            "n_ref": len(r),
        }
        rows.append([f"vocadito (annotator {ann})", "mono", len(r), len(notes), on, off])
    # madmom piano
    y = load(C / "beats" / "stereo_sample.flac")
    r = np.loadtxt(C / "beats" / "stereo_sample.notes", comments="#")
    iv = np.c_[r[:, 0], r[:, 0] + r[:, 2]]
    for method in ("poly", "mono"):
        n = transcribe(y, sr, method)
        on, off = _note_scores(iv, r[:, 1], n)
        res[f"stereo_sample_{method}"] = {"f_onset": on, "f_onset_offset": off, "n_est": len(n)}
        rows.append(["madmom stereo_sample (piano)", method, len(r), len(n), on, off])
    # GuitarSet comping (polyphonic)
    g = np.genfromtxt(C / "notes" / "guitarset" / "notes.csv", delimiter=",", names=True)
    y = load(C / "notes" / "guitarset" / "00_BN1-129-Eb_comp_mic.flac")
    n = transcribe(y, sr, "poly", fmin=70.0, fmax=1400.0)
    on, off = _note_scores(np.c_[g["onset_s"], g["offset_s"]], g["midi_pitch"], n)
    res["guitarset_poly"] = {"f_onset": on, "f_onset_offset": off, "n_est": len(n), "n_ref": len(g)}
    rows.append(["GuitarSet 00_BN1-129-Eb_comp", "poly", len(g), len(n), on, off])
    # TinySOL single notes
    for fn, midi in (("Cb-ord-A2-mf-2c-N.flac", 45), ("Fl-ord-C4-mf-N-T14d.flac", 60)):
        y = load(C / "notes" / "tinysol" / fn)
        n = transcribe(y, sr, "mono", fmin=40.0)
        longest = max(n, key=lambda x: x[1] - x[0]) if n else None
        res[f"tinysol_{fn}"] = {
            "ref_midi": midi,
            "longest_note_midi": longest and longest[2],
            "n_est": len(n),
        }
        rows.append(
            [
                f"TinySOL {fn} (MIDI {midi})",
                "mono",
                1,
                len(n),
                f"longest note MIDI {longest and longest[2]}",
                "",
            ]
        )
    # generated tones with known notes: monophonic melodies and chords
    rng = np.random.default_rng(7)
    f_mono, f_mono_off, f_poly, f_poly_off = [], [], [], []
    for k in range(5):
        t, mel = 0.2, []
        for _ in range(12):
            d = float(rng.uniform(0.15, 0.6))
            mel.append((t, t + d, int(rng.integers(48, 84))))
            t += d + float(rng.uniform(0.0, 0.15))
        yk = _tones(mel, seed=k)
        a, b = _note_scores(np.array([m[:2] for m in mel]), [m[2] for m in mel], transcribe(yk, sr))
        f_mono.append(a)
        f_mono_off.append(b)
        t, ch = 0.2, []
        for _ in range(6):
            d = float(rng.uniform(0.4, 1.0))
            root = int(rng.integers(48, 72))
            for iv_ in rng.choice([0, 3, 4, 7, 10, 12], size=3, replace=False):
                ch.append((t, t + d, root + int(iv_)))
            t += d + 0.1
        yk = _tones(ch, seed=10 + k)
        a, b = _note_scores(
            np.array([m[:2] for m in ch]), [m[2] for m in ch], transcribe(yk, sr, "poly")
        )
        f_poly.append(a)
        f_poly_off.append(b)
    res["generated_melodies"] = {
        "n": 5,
        "f_onset": float(np.mean(f_mono)),
        "f_onset_offset": float(np.mean(f_mono_off)),
    }
    res["generated_chords"] = {
        "n": 5,
        "f_onset": float(np.mean(f_poly)),
        "f_onset_offset": float(np.mean(f_poly_off)),
    }
    rows.append(
        [
            "generated melodies (5 x 12 notes)",
            "mono",
            60,
            "",
            float(np.mean(f_mono)),
            float(np.mean(f_mono_off)),
        ]
    )
    rows.append(
        [
            "generated chords (5 x 6 triads)",
            "poly",
            90,
            "",
            float(np.mean(f_poly)),
            float(np.mean(f_poly_off)),
        ]
    )
    table(
        "transcription: note F-measure (onset +-50 ms; with offsets 20 %)",
        ["clip", "method", "ref notes", "est notes", "F onset", "F onset+offset"],
        rows,
    )
    mrows = [
        ["ours (pitch_track)"]
        + [res["vocadito_melody_ours"][k] for k in keys]
        + [res["vocadito_melody_ours"]["sec"]]
    ]
    if use_librosa:
        mrows.append(
            ["librosa.pyin"]
            + [res["vocadito_melody_librosa_pyin"][k] for k in keys]
            + [res["vocadito_melody_librosa_pyin"]["sec"]]
        )
    table("vocadito f0 (mir_eval.melody)", ["tracker", *keys, "seconds"], mrows)
    # trumpet pitch contour sanity
    y = load(C / "music" / "sorohanro_-_solo-trumpet-06.ogg")
    f0, v, _ = pitch_track(y, sr, fmin=100.0, fmax=1500.0, hop_length=hop)
    mid = hz_to_midi(f0[v])
    tr = {
        "voiced_fraction": float(v.mean()),
        "median_midi": float(np.median(mid)),
        "p5_midi": float(np.percentile(mid, 5)),
        "p95_midi": float(np.percentile(mid, 95)),
        "n_notes": len(transcribe(y, sr, fmin=100.0, fmax=1500.0)),
    }
    if use_librosa:
        lf0, lv, _ = librosa.pyin(y, fmin=100.0, fmax=1500.0, sr=sr, hop_length=hop)
        n = min(lf0.size, f0.size)
        both = v[:n] & lv[:n]
        cents = 1200 * np.abs(np.log2(f0[:n][both] / lf0[:n][both]))
        tr["agree_with_pyin_50c"] = float(np.mean(cents < 50))
        tr["voicing_agreement"] = float(np.mean(v[:n] == lv[:n]))
    res["trumpet"] = tr
    table("solo trumpet contour", list(tr), [list(tr.values())])
    return res


# --------------------------------------------------------------------------- separation


def _bss(refs, ests, perm=False):
    sdr, sir, sar, p = mir_eval.separation.bss_eval_sources(
        np.stack(refs), np.stack(ests), compute_permutation=perm
    )
    return {"sdr": sdr.tolist(), "sir": sir.tolist(), "sar": sar.tolist(), "perm": p.tolist()}


def bench_separate(C: Path) -> dict:
    sr, n_fft, hop = 16000, 1024, 256
    res: dict = {}
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    fsdd = C / "fsdd" / "recordings"
    train_speech = np.concatenate(
        [
            load(fsdd / f"{d}_{s}_0.wav", sr)
            for s in ("george", "jackson", "lucas")
            for d in range(10)
        ]
    )
    speeches = {
        "LibriSpeech 198-209-0000": load(C / "music" / "198-209-0000.ogg", sr, dur_s=10.0),
        "FSDD nicolas digits": np.concatenate(
            [load(fsdd / f"{d}_nicolas_{t}.wav", sr) for t in (1, 2) for d in range(10)]
        )[: 10 * sr],
    }
    musics = {
        "Vibe Ace": C / "music" / "Kevin_MacLeod_-_Vibe_Ace.ogg",
        "Hungarian Dance 5": C
        / "music"
        / "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
    }
    for sname, speech in speeches.items():
        for mname, mpath in musics.items():
            music = load(mpath, sr, offset_s=25.0, dur_s=speech.size / sr)[: speech.size]
            speech = speech[: music.size]
            music = music * rms(speech) / rms(music)  # 0 dB
            mix = speech + music
            key = f"{sname} + {mname}"
            refs = [speech, music]
            r = {
                "mixture": _bss(refs, [mix, mix]),
                "oracle_soft_mask": _bss(refs, list(oracle_masks(refs, n_fft, hop))),
            }
            t0 = time.perf_counter()
            sup = NMFSeparator(n_components=24, n_fft=n_fft, hop_length=hop, max_iter=150)
            sup.fit([train_speech, load(mpath, sr, offset_s=0.0, dur_s=20.0)], sr=sr)
            r["nmf_supervised"] = _bss(refs, list(sup.separate(mix)))
            r["nmf_supervised"]["sec"] = time.perf_counter() - t0
            uns = NMFSeparator(n_components=24, n_fft=n_fft, hop_length=hop, max_iter=150)
            r["nmf_unsupervised"] = _bss(refs, list(uns.separate(mix)), perm=True)
            res[key] = r
    table(
        "separation: speech + music at 0 dB (SDR / SIR / SAR in dB, speech/music)",
        ["mixture", "method", "SDR", "SIR", "SAR"],
        [
            [
                k,
                m,
                f"{np.round(v['sdr'], 2).tolist()}",
                f"{np.round(v['sir'], 2).tolist()}",
                f"{np.round(v['sar'], 2).tolist()}",
            ]
            for k, r in res.items()
            for m, v in r.items()
        ],
    )
    # multitrack stems: drums vs rest, HPSS and supervised NMF (bases from the first half)
    base = C / "stems" / "mdb_musicdelta"
    srows, stems_res = [], {}
    for track in ("MusicDelta_Rock", "MusicDelta_Reggae"):
        files = sorted((base / track / f"{track}_STEMS").glob("*.flac"))
        import yaml  # noqa: PLC0415

        meta = yaml.safe_load(open(base / track / f"{track}_METADATA.yaml"))
        drum_ids = {k for k, s in meta["stems"].items() if "drum" in s["instrument"]}
        stems = {f.stem.split("_")[-1]: load(f, sr) for f in files}
        n = min(s.size for s in stems.values())
        drums = np.sum([s[:n] for k, s in stems.items() if f"S{k}" in drum_ids], axis=0)
        rest = np.sum([s[:n] for k, s in stems.items() if f"S{k}" not in drum_ids], axis=0)
        half = n // 2
        refs = [rest[half:], drums[half:]]
        mix = refs[0] + refs[1]
        r = {
            "mixture": _bss(refs, [mix, mix]),
            "oracle_soft_mask": _bss(refs, list(oracle_masks(refs, n_fft, hop))),
        }
        h, p = hpss_audio(mix, n_fft=n_fft, hop_length=hop, kernel_size=31)
        r["hpss"] = _bss(refs, [h, p])
        sup = NMFSeparator(n_components=24, n_fft=n_fft, hop_length=hop, max_iter=150)
        sup.fit([rest[:half], drums[:half]], sr=sr)
        r["nmf_supervised"] = _bss(refs, list(sup.separate(mix)))
        stems_res[track] = r
        for m, v in r.items():
            srows.append(
                [
                    track,
                    m,
                    f"{np.round(v['sdr'], 2).tolist()}",
                    f"{np.round(v['sir'], 2).tolist()}",
                    f"{np.round(v['sar'], 2).tolist()}",
                ]
            )
    table(
        "separation: MusicDelta multitracks, second half (dB, [other stems, drums])",
        ["track", "method", "SDR", "SIR", "SAR"],
        srows,
    )
    return {"speech_music": res, "stems": stems_res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"
    ap.add_argument("--corpora", default=os.environ.get("AUDIOPIPE_CORPORA", str(default)))
    ap.add_argument("--only", default="beats,transcribe,separate")
    ap.add_argument("--no-librosa", action="store_true", help="skip librosa's figures")
    a = ap.parse_args()
    C = Path(a.corpora).resolve()
    if not C.is_dir():
        sys.exit(f"corpora not found at {C} (use --corpora or AUDIOPIPE_CORPORA)")
    parts = a.only.split(",")
    out: dict = {"corpora": str(C)}
    t0 = time.perf_counter()
    if "beats" in parts:
        out["beats"] = bench_beats(C, not a.no_librosa)
    if "transcribe" in parts:
        out["transcribe"] = bench_transcribe(C, not a.no_librosa)
    if "separate" in parts:
        out["separate"] = bench_separate(C)
    out["seconds"] = time.perf_counter() - t0
    res_dir = Path(__file__).resolve().parent / "results"
    res_dir.mkdir(exist_ok=True)
    name = "mir.json" if len(parts) == 3 else f"mir_{'_'.join(parts)}.json"
    with open(res_dir / name, "w") as f:
        json.dump(out, f, indent=1, default=float)
    print(f"\nwrote {res_dir / name} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()

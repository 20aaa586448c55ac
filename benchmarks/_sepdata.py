"""Speech and music recordings of ``../shared/corpora`` for the separation benchmark, and splits.

Everything is read as mono float32 and resampled (soxr) to one rate, 16 kHz by default: the
rate of the wideband speech, so speech keeps its full band and music is low-passed to 8 kHz.

Speech, by speaker (a "recording group" is a speaker: nothing of a held-out speaker is used):

* ``sisec_f1`` .. ``sisec_f4``, ``sisec_m1`` .. ``sisec_m4`` — SiSEC 2011 dev sources, 10 s each;
* ``cmu_aew``, ``cmu_axb`` (3 utterances each), ``cmu_a0010`` (1 utterance, speaker not named);
* ``libri_198`` — the LibriSpeech utterance in ``music/`` (13.9 s);
* ``fsdd_<name>`` — the 4 FSDD speakers (500 digits each, 8 kHz: no energy above 4 kHz).

Music, by track (the MusicDelta drum-only mixdowns of Rock and Reggae belong to those songs):

* the 9 music tracks of ``music/`` (orchestra, electronic, jazz, drums+bass, solo trumpet...);
* ``stems/`` Rock and Reggae: the sum of their stems *without the male singer* (sung voice
  is neither speech nor the accompaniment we want to learn) plus their drum-only mixdowns;
* ``beats/``: the 5 other MDB drum-only tracks, madmom's two excerpts and its piano recording;
* ``notes/``: the GuitarSet guitar and the two TinySOL notes (vocadito, a solo singer, is
  left out for the same reason as the singers above; so is the bird call).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import yaml

SR = 16000

SISEC = {f"sisec_{g[0]}{i}": f"sisec2011_dev1_{g}4_src_{i}.flac" for g in ("female", "male")
         for i in range(1, 5)}
CMU = {
    "cmu_aew": [f"cmu_arctic_us_aew_a000{i}.flac" for i in (1, 2, 3)],
    "cmu_axb": [f"cmu_arctic_us_axb_a000{i}.flac" for i in (4, 5, 6)],
    "cmu_a0010": ["cmu_arctic_a0010.flac"],
}
MUSIC_FILES = {
    "hungarian_dance": "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
    "thought_bot": "Jason_Shaw_-_Thought_Bot.ogg",
    "limit_70": "Kevin_MacLeod_-_Limit_70.ogg",
    "morning": "Kevin_MacLeod_-_Morning.ogg",
    "sugar_plum": "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
    "vibe_ace": "Kevin_MacLeod_-_Vibe_Ace.ogg",
    "inspiration": "Rafael_Krux_-_Inspiration_and_Success.ogg",
    "drum_bass": "admiralbob77_-_Choice_-_Drum-bass.ogg",
    "trumpet": "sorohanro_-_solo-trumpet-06.ogg",
}

# Split A (primary): 3 SiSEC speakers + every CMU speaker, 3 music tracks held out.
# Split B (second): 3 other SiSEC speakers + LibriSpeech, 3 other tracks held out.
# VALIDATION (inside A's training part): what defaults were chosen on.
SPLITS = {
    "A": {
        "speech": ["sisec_f4", "sisec_m3", "sisec_m4", "cmu_aew", "cmu_axb", "cmu_a0010"],
        "music": ["vibe_ace", "hungarian_dance", "thought_bot"],
    },
    "B": {
        "speech": ["sisec_f1", "sisec_f2", "sisec_m1", "libri_198"],
        "music": ["limit_70", "morning", "inspiration"],
    },
}
VALIDATION = {"speech": ["sisec_f3", "sisec_m2"], "music": ["sugar_plum", "drum_bass"]}


def load(path: Path | str, sr: int = SR) -> np.ndarray:
    """Mono float32 at ``sr``."""
    y, r = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    return (soxr.resample(y, r, sr) if r != sr else y).astype(np.float32)


def speech_corpus(C: Path, sr: int = SR) -> dict[str, list[np.ndarray]]:
    """Speaker -> recordings."""
    out: dict[str, list[np.ndarray]] = {}
    for k, f in SISEC.items():
        out[k] = [load(C / "speech" / f, sr)]
    for k, fs in CMU.items():
        out[k] = [load(C / "speech" / f, sr) for f in fs]
    out["libri_198"] = [load(C / "music" / "198-209-0000.ogg", sr)]
    rows = list(csv.DictReader((C / "fsdd" / "labels.csv").open()))
    for spk in sorted({r["speaker"] for r in rows}):
        out[f"fsdd_{spk}"] = [load(C / "fsdd" / r["path"], sr) for r in rows
                              if r["speaker"] == spk]
    return out


def _song_without_singer(base: Path, track: str, sr: int) -> np.ndarray:
    meta = yaml.safe_load((base / track / f"{track}_METADATA.yaml").open())
    keep = [s["filename"].replace(".wav", ".flac") for s in meta["stems"].values()
            if "singer" not in s["instrument"] and "vocal" not in s["instrument"]]
    ys = [load(base / track / f"{track}_STEMS" / f, sr) for f in keep]
    n = min(y.size for y in ys)
    return np.sum([y[:n] for y in ys], axis=0).astype(np.float32)


def music_corpus(C: Path, sr: int = SR) -> dict[str, list[np.ndarray]]:
    """Track (or song) -> recordings."""
    out = {k: [load(C / "music" / f, sr)] for k, f in MUSIC_FILES.items()}
    base = C / "stems" / "mdb_musicdelta"
    drums = C / "beats" / "mdb_drums" / "audio_drums"
    for song in ("Rock", "Reggae"):
        track = f"MusicDelta_{song}"
        out[f"mdb_{song.lower()}"] = [
            _song_without_singer(base, track, sr), load(drums / f"{track}_Drum.flac", sr)
        ]
    for f in sorted(drums.glob("*.flac")):
        song = f.stem.split("_")[1]
        if song not in ("Rock", "Reggae"):
            out[f"mdb_{song.lower()}_drums"] = [load(f, sr)]
    out["madmom"] = [load(C / "beats" / f, sr) for f in
                     ("sample.wav", "sample2.wav", "stereo_sample.flac")]
    out["guitarset"] = [load(C / "notes" / "guitarset" / "00_BN1-129-Eb_comp_mic.flac", sr)]
    out["tinysol"] = [load(f, sr) for f in sorted((C / "notes" / "tinysol").glob("*.flac"))]
    return out


def train_groups(split: str, validation: bool = False) -> dict[str, list[str]]:
    """Names held out of training: the split's test groups, plus the validation groups."""
    held = {k: list(v) for k, v in SPLITS[split].items()}
    if validation:
        for k in held:
            held[k] += VALIDATION[k]
    return held


def eval_mixtures(
    speech: dict[str, list[np.ndarray]],
    music: dict[str, list[np.ndarray]],
    speakers: list[str],
    tracks: list[str],
    sr: int = SR,
    offset_s: float = 25.0,
    max_s: float = 10.0,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every held-out speaker x track at 0 dB: ``(name, speech, music)``.

    A speaker's recordings are concatenated (up to ``max_s``); the music excerpt of the same
    length starts at ``offset_s`` (earlier when the track is too short); music is scaled to
    the speech's RMS (0 dB).
    """
    out = []
    for spk in speakers:
        s = np.concatenate(speech[spk])[: int(max_s * sr)]
        for trk in tracks:
            m = np.concatenate(music[trk])
            a = max(0, min(int(offset_s * sr), m.size - s.size))
            m = m[a : a + s.size]
            n = min(s.size, m.size)
            ss, mm = s[:n], m[:n]
            mm = mm * np.sqrt(np.mean(ss**2) / np.mean(mm**2))
            out.append((f"{spk} + {trk}", ss.astype(np.float32), mm.astype(np.float32)))
    return out

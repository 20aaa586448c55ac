"""The fixed split of recordings for fingerprint tuning and reporting (shared by
``tune_fingerprint.py`` and ``fingerprint.py``).

Every recording used is in exactly one role:

* ``index``: fingerprinted. Of these, ``tune_members`` give the queries parameters are
  chosen on and ``test_members`` the queries figures are reported on.
* ``tune_nonmembers`` / ``test_nonmembers``: never indexed; queries of them must not match.
* ``tune_babble`` / ``test_babble``: FSDD speakers whose clips are summed into babble noise.
* ``tune_extra_members`` (round 6): indexed and queried for tuning only: the tuning index
  ``tune_index`` is ``index`` plus these; held-out queries still meet ``index`` alone, so
  their figures stay comparable with earlier rounds.

Music and non-music (animals, nature, machines, speech, drums) are on both sides. Queries
are 5 s excerpts (the whole recording when shorter), made at the analysis rate (11025 Hz)
with seed 0 for tuning and seed 1 for reporting; noise is scaled to the SNR over the
excerpt. Babble is ``BABBLE_TALKERS`` FSDD clip streams summed.

Round 6 (issue 12 §4) enlarged the tuning part: rounds 3-5 chose on 13 tuning music queries
per condition (11 of 13 for every candidate at 0 dB white noise), and the babble loss on
music that the held-out queries and the music corpus showed (round 5) did not appear on
them. The recordings of ``../shared/corpora`` in no role were the MusicDelta multitracks
(``stems/``: Rock and Reggae, mix, stems, raw tracks; the two mixes again in
``beats/mdb_drums/audio_mix``); music/, the seven MDB drum tracks, notes/, every speech/
file (its 11 speakers: SiSEC female4/male4 sources 1-4, the ARCTIC files), all ESC-10 folds,
the four FSDD speakers and the heart recordings are all in roles already, so no unused voice
was left to widen the tuning babble. Added as ``tune_extra_members``: the seven stems
without drums (Rock: electric bass, two clean electric guitars, male singer, 13.1 s each;
Reggae: electric bass, clean electric guitar, male singer, 17.5 s; MedleyDB says no bleed),
two excerpts each: 14 more tuning music queries per condition (27 in all). Not added: the
drum stems and the mixes (they hold the drums of the indexed Rock (tuning) and Reggae
(held-out) drum tracks: a query of the mix would rightly meet those), and the raw tracks
(the same performances as the stems, unprocessed: near-duplicates in one index). The
Reggae stems share a song, not audio, with the held-out Reggae drum track. Their queries
come after all earlier tuning queries (excerpts with seed + 30), so the earlier queries
and their noise are unchanged.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("AUDIOPIPE_CORPORA", ROOT.parent / "shared" / "corpora"))
SR = 11025
EXCERPT_S = 5.0
BABBLE_TALKERS = 6


@dataclass(frozen=True)
class Rec:
    path: str  # relative to the corpora folder
    kind: str  # music / speech / animal / nature / drums / heart / ...


def _esc(folds: tuple[int, ...]) -> list[Rec]:
    out = []
    with open(CORPORA / "esc10" / "esc10.csv") as f:
        for r in csv.DictReader(f):
            if int(r["fold"]) in folds:
                out.append(Rec(f"esc10/audio/{r['filename']}", f"esc:{r['category']}"))
    return sorted(out, key=lambda r: r.path)


def _music(parity: int) -> list[Rec]:
    files = sorted(p.name for p in (CORPORA / "music").glob("*.ogg"))
    kind = {"198-209-0000.ogg": "speech", "456440__inspectorj__bird-whistling-robin-single-13.ogg":
            "animal"}
    return [Rec(f"music/{n}", kind.get(n, "music")) for i, n in enumerate(files) if i % 2 == parity]


def _files(rel: str, names: list[str], kind: str) -> list[Rec]:
    return [Rec(f"{rel}/{n}", kind) for n in names]


def split() -> dict[str, list[Rec]]:
    """The split (recordings by role); ``index`` is the union of both member sets."""
    sp = "sisec2011_dev1_{}_src_{}.flac"
    drums = "MusicDelta_{}_Drum.flac"
    pascal = sorted(p.name for p in (CORPORA / "heart" / "pascal_a" / "audio").glob("*.flac"))
    circor = sorted(p.name for p in (CORPORA / "heart" / "circor").glob("*.wav"))
    arctic = sorted(p.name for p in (CORPORA / "speech").glob("cmu_arctic*.flac"))
    s = {
        "tune_members": _music(0) + _esc((1,))
        + _files("speech", [sp.format("female4", 1), sp.format("male4", 1)], "speech")
        + _files("beats/mdb_drums/audio_drums", [drums.format("Rock"), drums.format("80sRock")],
                 "drums"),
        "test_members": _music(1) + _esc((2,))
        + _files("speech", [sp.format("female4", 2), sp.format("male4", 2)], "speech")
        + _files("beats/mdb_drums/audio_drums", [drums.format("Reggae"), drums.format("Britpop")],
                 "drums")
        + _files("notes/guitarset", ["00_BN1-129-Eb_comp_mic.flac"], "music")
        + _files("notes/vocadito", ["vocadito_1.flac"], "music"),
        "tune_nonmembers": _esc((3,))
        + _files("speech", [sp.format("female4", 3), sp.format("male4", 3)], "speech")
        + _files("speech", [a for a in arctic if "axb" not in a], "speech")
        + _files("beats/mdb_drums/audio_drums", [drums.format("Country1"), drums.format("Punk")],
                 "drums")
        + _files("heart/pascal_a/audio", pascal[::2], "heart"),
        "test_nonmembers": _esc((4, 5))
        + _files("speech", [sp.format("female4", 4), sp.format("male4", 4)], "speech")
        + _files("speech", [a for a in arctic if "axb" in a], "speech")
        + _files("beats/mdb_drums/audio_drums", [drums.format("Shadows")], "drums")
        + _files("heart/pascal_a/audio", pascal[1::2], "heart")
        + _files("heart/circor", circor, "heart")
        + _files("notes/tinysol", sorted(p.name for p in (CORPORA / "notes" / "tinysol").glob(
            "*.flac")), "music")
        + _files("beats", ["sample.wav", "sample2.wav", "stereo_sample.flac"], "music"),
    }
    s["index"] = s["tune_members"] + s["test_members"]
    stem = "stems/mdb_musicdelta/MusicDelta_{0}/MusicDelta_{0}_STEMS/MusicDelta_{0}_STEM_{1:02d}.flac"
    # round 6: the MusicDelta stems without drums (bass, guitars, singer), tuning only
    s["tune_extra_members"] = [Rec(stem.format("Rock", k), "music") for k in (2, 3, 4, 5)] + [
        Rec(stem.format("Reggae", k), "music") for k in (2, 3, 4)]
    s["tune_index"] = s["index"] + s["tune_extra_members"]
    s["tune_babble"] = [Rec(f"fsdd/recordings/{p.name}", "speech") for p in
                        sorted((CORPORA / "fsdd" / "recordings").glob("*_jackson_*.wav"))]
    s["test_babble"] = [Rec(f"fsdd/recordings/{p.name}", "speech") for p in
                        sorted((CORPORA / "fsdd" / "recordings").glob("*_nicolas_*.wav"))]
    s["tune_fsdd_nonmembers"] = [Rec(f"fsdd/recordings/{p.name}", "speech") for p in
                                 sorted((CORPORA / "fsdd" / "recordings").glob("*_george_*.wav"))]
    s["test_fsdd_nonmembers"] = [Rec(f"fsdd/recordings/{p.name}", "speech") for p in
                                 sorted((CORPORA / "fsdd" / "recordings").glob("*_lucas_*.wav"))]
    return s


_AUDIO: dict[str, np.ndarray] = {}


def audio(rec: Rec) -> np.ndarray:
    """Mono float32 at :data:`SR` (cached)."""
    if rec.path not in _AUDIO:
        from audiopipe.audio import load

        _AUDIO[rec.path] = load(str(CORPORA / rec.path), SR)[0]
    return _AUDIO[rec.path]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    px = float(np.mean(x**2)) + 1e-12
    pn = float(np.mean(noise**2)) + 1e-12
    return (x + noise * np.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def babble(rng: np.random.Generator, n: int, speech: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for _ in range(BABBLE_TALKERS):
        pos = int(rng.integers(0, 4000))  # talkers do not start together
        while pos < n:
            s = speech[int(rng.integers(len(speech)))]
            s = s / (np.sqrt(np.mean(s**2)) + 1e-9)
            m = min(n - pos, s.size)
            out[pos : pos + m] += s[:m]
            pos += m
    return out


def degrade(cond: str, x: np.ndarray, rng: np.random.Generator, speech: list[np.ndarray]
            ) -> np.ndarray:
    """``clean``, ``whiteN`` / ``babbleN`` (N dB SNR), ``mp3``, ``resampled`` (via 8 kHz...
    at 11025 Hz: a 4 kHz band limit)."""
    if cond == "clean":
        return x
    if cond.startswith("white"):
        return add_noise(x, rng.standard_normal(x.size).astype(np.float32), float(cond[5:]))
    if cond.startswith("babble"):
        return add_noise(x, babble(rng, x.size, speech), float(cond[6:]))
    if cond == "mp3":
        import io

        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, x, SR, format="MP3")
        buf.seek(0)
        return sf.read(buf, dtype="float32")[0][: x.size]
    if cond == "resampled":
        from audiopipe.audio import resample

        return resample(resample(x, SR, 8000), 8000, SR)[: x.size]
    raise ValueError(cond)


def member_queries(recs: list[Rec], seed: int, per_long: int = 2
                   ) -> list[tuple[Rec, int, np.ndarray]]:
    """(recording, start sample, clean excerpt): ``per_long`` excerpts of recordings over 8 s,
    one (the start, or the whole) otherwise."""
    rng = np.random.default_rng(seed)
    n = int(EXCERPT_S * SR)
    out = []
    for r in recs:
        y = audio(r)
        k = per_long if y.size > 8 * SR else 1
        for _ in range(k):
            start = int(rng.integers(0, y.size - n)) if y.size > n else 0
            out.append((r, start, y[start : start + n]))
    return out


def fsdd_queries(recs: list[Rec], seed: int, n_queries: int) -> list[tuple[Rec, int, np.ndarray]]:
    """5 s of one speaker's digits back to back (FSDD clips are under a second)."""
    rng = np.random.default_rng(seed)
    n = int(EXCERPT_S * SR)
    out = []
    for _ in range(n_queries):
        parts, total = [], 0
        while total < n:
            y = audio(recs[int(rng.integers(len(recs)))])
            parts.append(y)
            total += y.size
        out.append((Rec("fsdd", "speech"), 0, np.concatenate(parts)[:n]))
    return out

"""Tuning (issue 12, round 21): nucleus-aligned features, per-speaker quantile
normalisation, sub-band streams and copies warped above 1 kHz for classify on FSDD new
speakers, 2026-12-02.

Same fixed split as ``benchmarks/tune_classify.py`` (FSDD tuning speakers george, jackson,
lucas, leave-one-speaker-out; nicolas never looked at here); the stage's defaults otherwise
(20 dB trim, group normalisation, warped training copies). The numbers are recorded in that
script's docstring (round 21). Every variant is scored alone, in the soft vote of the four
in place of the candidate it varies (``vote4``) and beside them (``vote5``), with
per-speaker accuracy and the systematic confusions (george's "two" read as "four", "three"
as "eight"; lucas's "four" read as "two"):

- ``nucleus``: the *voiced nucleus* of each clip: the frames of the trimmed part whose
  low-band energy (log-mel bands below 1 kHz, summed in power) is within ``NUC_DB`` dB of
  the clip's loudest such frame (first to last). ``seq-nucleus``: the group-CMVN MFCC
  frames in three pieces, each time-normalised on its own: lead-in (trimmed start to
  nucleus onset, 3 steps), nucleus (6 steps), tail (nucleus offset to trimmed end, 3
  steps), + the nucleus' mean/std and the three log lengths: a clip cut inside its onset
  keeps its nucleus steps where a whole one has them (the plain ``sequence`` shifts all
  10 steps). ``seq-nucleus-edges``: onset- and offset-aligned halves: the first and the
  last ``EDGE`` frames of the nucleus in real time (not resampled) + the lead-in and tail
  pooled. ``stats-nucleus``: the ``stats`` features (rich statistics + texture) of the
  nucleus frames only, beside the whole trimmed part's (concatenated columns);
  ``seq+nucleus``: ``sequence``'s columns and the nucleus pieces, one SVM on both.
- ``heq``: the clip-level features of ``stats`` / ``sequence`` quantile-normalised within
  each speaker (each column's rank within its speaker mapped to a standard normal)
  instead of standardised (mean/std): a per-speaker histogram equalisation of the clip
  features (the frame-level band / cepstral HEQ was the ``--bandeq`` round).
- ``nuccrop``: every candidate trained with copies of its clips started at the nucleus
  onset (``nuccrop+tail``: and copies ended at its offset), :func:`crop_copies`; unlike
  ``--crop`` (a fixed fraction of the trimmed part) only the lead-in is removed.
- ``subband``: why "two" and "four" swap (:func:`two_four_profile`), and sub-band
  streams (:func:`subband_study`).
- ``f2warp``: ``stats`` and ``sequence`` trained with more copies whose spectrum above
  1 kHz only is warped (0.8, 1.25; :func:`upper_warp_copies`); ``f2warp-seq``: ``sequence``
  alone gets them, for four sets of factors. Kept (``sequence`` with 0.7, 1.4: the
  stage's ``upper_warps``, classify version 8).

Run: ``python benchmarks/tune_classify_nucleus.py`` from the repository root (FSDD tuning
speakers, every variant, about 8 min on a busy machine); ``--only heq,nuccrop,...`` runs
the named variants only (``seq-nucleus-pieces``, ``seq-nucleus-edges``, ``seq+nucleus``,
``stats-nucleus``, ``nuccrop``, ``heq``, ``subband``, ``f2warp``, ``f2warp-seq``); writes
``benchmarks/results/tune_classify_nucleus.json``. Every variant is measured against the
stage as it was before this round (``upper_warps`` off, :data:`BEFORE`); the kept one was
checked on both tuning parts through the stage itself (``tune_classify.py --trim`` at
20 dB).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import write_results  # noqa: E402
from tune_classify import TUNING_PARTS, _part, tuning_parts  # noqa: E402

from audiopipe.stages._clipfeatures import group_cmvn  # noqa: E402
from audiopipe.stages._frames import segment_pool, time_normalize  # noqa: E402
from audiopipe.stages.classify.candidates import MODEL_OF, Frames, build  # noqa: E402
from audiopipe.stages.classify.model import (  # noqa: E402
    ClipClassifier,
    oof_proba,
    standardize_within,
)
from audiopipe.stages.classify.select import _augment  # noqa: E402

#: the stage's parameters before round 21 (the baseline every variant here is set against)
BEFORE = {"upper_warps": []}
NUC_DB = 10.0
EDGE = 6  # frames (hop 128 at 8 kHz: 96 ms)


def low_band_db(frames: Frames, fmax_hz: float = 1000.0) -> list[np.ndarray]:
    """Per clip and frame, the power of the log-mel bands below ``fmax_hz``, in dB."""
    import audiopipe.features as F

    m = frames.recipe["compute"]["melspectrogram"]
    n = int(m.get("n_mels", 128))
    c = F.mel_frequencies(n_mels=n + 2, fmin=float(m.get("fmin") or 0.0),
                          fmax=float(m.get("fmax") or frames.recipe["sr"] / 2))[1:-1]
    low = c < fmax_hz
    return [10 * np.log10(np.sum(10 ** (np.asarray(a, np.float64)[:, low] / 10), 1) + 1e-12)
            for a in frames.get("melspectrogram")]


def nucleus_bounds(frames: Frames, db: float = NUC_DB) -> list[tuple[int, int]]:
    """(start, stop) of each clip's voiced nucleus inside its trimmed part."""
    out = []
    for e, (b0, b1) in zip(low_band_db(frames), frames.bounds(), strict=True):
        if b1 - b0 < 2:
            out.append((b0, b1))
            continue
        k = np.flatnonzero(e[b0:b1] > e[b0:b1].max() - db)
        out.append((b0 + int(k[0]), b0 + int(k[-1]) + 1))
    return out


class NucleusFrames(Frames):
    """``frames`` whose trim bounds are the voiced nuclei (``stats`` of the nucleus)."""

    def __init__(self, frames: Frames, nb: list[tuple[int, int]]) -> None:
        super().__init__(frames.ds, frames.ids, frames.trim_db)
        self._src, self._bounds = frames, nb

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        return self._src.get(feature, warp, above)


def _piece(a: np.ndarray, k: int, fallback: np.ndarray) -> np.ndarray:
    return time_normalize(a if len(a) else fallback, k).ravel()


def nucleus_sequences(frames: Frames, g: np.ndarray, nb: list[tuple[int, int]],
                      warp: float = 1.0, mode: str = "pieces", n_ceps: int = 13) -> np.ndarray:
    """Nucleus-aligned MFCC sequences (group CMVN of the frames first), one row per clip."""
    fr = group_cmvn([np.asarray(a, np.float64)[:, :n_ceps] for a in frames.get("mfcc", warp)], g)
    rows = []
    for a, (b0, b1), (n0, n1) in zip(fr, frames.bounds(), nb, strict=True):
        nuc = a[n0:n1] if n1 > n0 else a[b0:b1] if b1 > b0 else a
        pre, post = a[b0:n0], a[n1:b1]
        if mode == "pieces":
            body = [_piece(pre, 3, nuc[:1]), time_normalize(nuc, 6).ravel(),
                    _piece(post, 3, nuc[-1:])]
        else:  # onset- and offset-aligned halves of the nucleus, in real time
            pad = max(EDGE - len(nuc), 0)
            on = np.r_[nuc[:EDGE], np.repeat(nuc[-1:], pad, 0)]
            off = np.r_[np.repeat(nuc[:1], pad, 0), nuc[-EDGE:]]
            body = [segment_pool(pre if len(pre) else nuc[:1], 2).astype(np.float64),
                    on.ravel(), time_normalize(nuc, 3).ravel(), off.ravel(),
                    segment_pool(post if len(post) else nuc[-1:], 2).astype(np.float64)]
        rows.append(np.concatenate(body + [nuc.mean(0), nuc.std(0),
                                           np.log1p([len(pre), len(nuc), len(post)])]))
    return np.asarray(rows)


def quantile_within(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each column's rank within its group mapped to a standard normal (ties averaged)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    X = np.asarray(X, np.float64).copy()
    for s in np.unique(groups):
        m = groups == s
        X[m] = ndtri((rankdata(X[m], axis=0) - 0.5) / m.sum())
    return X


class CutFrames(Frames):
    """The clips of ``frames`` with their first ``cut[i]`` frames removed and, with ``end``,
    everything after ``end[i]`` too (trim bounds recomputed on what is left)."""

    def __init__(self, frames: Frames, cut: list[int], end: list[int] | None = None) -> None:
        super().__init__(frames.ds, frames.ids, frames.trim_db)
        self._src, self._cut = frames, cut
        self._end = end or [None] * len(cut)

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        return [a[c:e] for a, c, e in zip(self._src.get(feature, warp, above), self._cut, self._end,
                                          strict=True)]


def crop_copies(frames: Frames, g, y, p, nb, splits, classes, rec, P) -> None:
    """``nuccrop``: every candidate trained with one more copy of each training clip that
    has a lead-in (>= 2 frames before its voiced nucleus): the clip started at its nucleus
    onset, as a recording cut inside the word's first consonant (FSDD's clips start
    anywhere from well before the consonant to the vowel: george's "two" and jackson's
    "four" at the vowel, lucas's before the consonant); ``nuccrop+tail``: also a copy
    ending at the nucleus offset. Copies are group-normalised within speaker x cut."""
    lead = np.array([n0 - b0 for (b0, _), (n0, _) in zip(frames.bounds(), nb, strict=True)])
    tail = np.array([b1 - n1 for (_, b1), (_, n1) in zip(frames.bounds(), nb, strict=True)])
    cut = CutFrames(frames, [n0 for n0, _ in nb])
    cut_end = CutFrames(frames, [0] * len(nb), [n1 for _, n1 in nb])
    for tag, copies in (("nuccrop", [(cut, lead >= 2)]),
                        ("nuccrop+tail", [(cut, lead >= 2), (cut_end, tail >= 2)])):
        for cand in MODEL_OF:
            t = time.time()
            X = build(cand, frames, g, p)[1]
            aug = _augment(cand, frames, g, p, True)
            blocks = [] if aug is None else [aug]
            for k, (fr, keep) in enumerate(copies):
                gc = np.asarray([f"{v}@cut{k}" for v in g], dtype=object)
                blocks.append((build(cand, fr, gc, p)[1][keep], np.flatnonzero(keep)))
            caug = (np.concatenate([b[0] for b in blocks]),
                    np.concatenate([b[1] for b in blocks]))
            rec(f"{cand} {tag}", oof_proba(ClipClassifier(MODEL_OF[cand]), X, y, splits,
                                           classes, augment=caug), t)
        rec(f"vote4 {tag}", np.mean([P[f"{c} {tag}"] for c in MODEL_OF], 0), time.time())


def upper_warp_matrix(alpha: float, centres: np.ndarray, f0: float = 1000.0) -> np.ndarray:
    """``(n, n)`` map re-reading the mel bands above ``f0`` at ``f0 + (f - f0) / alpha`` (the
    bands below unchanged): F2/F3 moved, F1 kept (linear interpolation between centres)."""
    n = len(centres)
    src = np.where(centres > f0, f0 + (centres - f0) / alpha, centres)
    pos = np.interp(np.clip(src, centres[0], centres[-1]), centres, np.arange(n))
    lo = np.minimum(np.floor(pos).astype(int), n - 1)
    hi, w = np.minimum(lo + 1, n - 1), pos - lo
    M = np.zeros((n, n))
    np.add.at(M, (np.arange(n), lo), 1 - w)
    np.add.at(M, (np.arange(n), hi), w)
    return M


class UpperWarpFrames(Frames):
    """``frames`` with the MFCC and log-mel frames warped above 1 kHz by ``alpha``
    (:func:`upper_warp_matrix`, through the DCT for the MFCCs, as ``warp_matrix``)."""

    def __init__(self, frames: Frames, alpha: float) -> None:
        import audiopipe.features as F

        super().__init__(frames.ds, frames.ids, frames.trim_db)
        self._src, self._bounds = frames, frames.bounds()
        M = upper_warp_matrix(alpha, band_centres(frames))
        n_mfcc = int(frames.recipe["compute"]["mfcc"].get("n_mfcc", 20))
        D = F.dct_matrix(n_out=n_mfcc, n_in=M.shape[0]).astype(np.float64)
        self._W = {"mfcc": D @ M @ D.T, "melspectrogram": M}

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        fr = self._src.get(feature, warp, above)
        W = self._W.get("mfcc" if feature.startswith("mfcc") else feature)
        return fr if W is None else [a @ W.T if len(a) else a for a in fr]


def upper_warp_copies(frames: Frames, g, y, p, splits, classes, rec, P,
                      alphas=(0.8, 1.25), cands=("stats", "sequence"), tag="f2warp") -> None:
    """``f2warp``: ``stats`` and ``sequence`` (the candidates given warped copies) trained
    with more copies whose spectrum above 1 kHz is warped by ``alphas`` (F2 moved with F1
    kept: the accents' vowels differ so, george's back /u:/ against the others' fronted
    one), beside the stage's uniform warps; ``hgb`` and ``mlp`` as the stage (``cands``:
    only those get them, the others as the stage)."""
    ups = {a: UpperWarpFrames(frames, a) for a in alphas}
    for cand in cands:
        t = time.time()
        X, aug = build(cand, frames, g, p)[1], _augment(cand, frames, g, p, True)
        blocks = [aug]
        for a, fr in ups.items():
            ga = np.asarray([f"{v}@up{a}" for v in g], dtype=object)
            blocks.append((build(cand, fr, ga, p)[1], np.arange(len(y))))
        caug = (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))
        rec(f"{cand} {tag}", oof_proba(ClipClassifier("svm"), X, y, splits, classes,
                                       augment=caug), t)
    rec(f"vote4 {tag}", np.mean([P[f"{c} {tag}"] if c in cands else P[c] for c in MODEL_OF], 0),
        time.time())


def study(ds, part, target: str, groups: str, label: str, only: set[str] | None) -> dict:
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    p = {**p, **BEFORE}
    out: dict = {}
    P: dict[str, np.ndarray] = {}

    def rec(key: str, pr: np.ndarray, t: float) -> None:
        P[key], out[key] = pr, float(np.mean(classes[pr.argmax(1)] == y))
        pred = classes[pr.argmax(1)]
        per = {s: float(np.mean(pred[g == s] == y[g == s])) for s in np.unique(g)}
        extra = ""
        if "george" in per:
            out[f"{key} lucas 4->2"] = int(np.sum((g == "lucas") & (y == "4") & (pred == "2")))
            out[f"{key} george 2->4"] = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
            out[f"{key} george 3->8"] = int(np.sum((g == "george") & (y == "3") & (pred == "8")))
            out.update({f"{key}[{s}]": v for s, v in per.items()})
            extra = " ".join(f"{s} {v:.3f}" for s, v in per.items()) + \
                f" 2->4 {out[f'{key} george 2->4']} 3->8 {out[f'{key} george 3->8']}" \
                f" lucas 4->2 {out[f'{key} lucas 4->2']}"
        print(f"{label} {key:34s} {out[key]:.3f} {extra} ({time.time() - t:.0f} s)", flush=True)

    def fit(key: str, model: str, X: np.ndarray, aug) -> None:
        t = time.time()
        rec(key, oof_proba(ClipClassifier(model), X, y, splits, classes, augment=aug), t)

    def votes(key: str, replaces: str) -> None:
        rec(f"vote4 {key}", np.mean([P[k] for k in MODEL_OF if k != replaces] + [P[key]], 0),
            time.time())
        rec(f"vote5 +{key}", np.mean([P[k] for k in MODEL_OF] + [P[key]], 0), time.time())

    raw = {}
    for cand in MODEL_OF:
        X_raw, X, _ = build(cand, frames, g, p)
        raw[cand] = X_raw
        fit(cand, MODEL_OF[cand], X, _augment(cand, frames, g, p, True))
    rec("vote4", np.mean([P[k] for k in MODEL_OF], 0), time.time())
    want = lambda k: only is None or k in only  # noqa: E731
    gw = {w: np.asarray([f"{v}@{w}" for v in g], dtype=object) for w in p["warps"]}
    nb = nucleus_bounds(frames) if "melspectrogram" in frames.available else None
    if nb is not None:
        lens = np.array([b - a for a, b in nb]) / np.maximum(
            1, np.array([b - a for a, b in frames.bounds()]))
        out["nucleus / trimmed length median"] = float(np.median(lens))
        if "george" in set(g):
            for s in np.unique(g):
                pre = np.array([n0 - b0 for (b0, _), (n0, _) in zip(frames.bounds(), nb,
                                                                     strict=True)])
                for d in ("2", "4"):
                    m = (g == s) & (y == d)
                    out[f"{s} {d} lead-in frames median"] = float(np.median(pre[m]))
        print(f"{label} nucleus: {json.dumps({k: v for k, v in out.items() if 'median' in k})}",
              flush=True)
    for mode in ("pieces", "edges"):
        key = f"seq-nucleus-{mode}"
        if nb is None or not want(key):
            continue
        X = standardize_within(nucleus_sequences(frames, g, nb, 1.0, mode), g)
        aug = (np.concatenate([standardize_within(nucleus_sequences(frames, gw[w], nb, w, mode),
                                                  gw[w]) for w in gw]),
               np.tile(np.arange(len(y)), len(gw)))
        fit(key, "svm", X, aug)
        votes(key, "sequence")
    if nb is not None and want("seq+nucleus"):  # both views of the word, concatenated
        def both(w: float, grp: np.ndarray) -> np.ndarray:
            return standardize_within(np.c_[build("sequence", frames, grp, p, warp=w)[0],
                                            nucleus_sequences(frames, grp, nb, w)], grp)

        aug = (np.concatenate([both(w, gw[w]) for w in gw]), np.tile(np.arange(len(y)), len(gw)))
        fit("sequence+nucleus", "svm", both(1.0, g), aug)
        votes("sequence+nucleus", "sequence")
    if nb is not None and want("stats-nucleus"):
        nf = NucleusFrames(frames, nb)
        Xn_raw = build("stats", nf, g, p)[0]
        X = standardize_within(np.c_[raw["stats"], Xn_raw], g)
        aug = (np.concatenate([standardize_within(np.c_[build("stats", frames, gw[w], p, warp=w)[0],
                                                        build("stats", nf, gw[w], p, warp=w)[0]],
                                                  gw[w]) for w in gw]),
               np.tile(np.arange(len(y)), len(gw)))
        fit("stats+nucleus", "svm", X, aug)
        votes("stats+nucleus", "stats")
    if nb is not None and want("nuccrop"):
        crop_copies(frames, g, y, p, nb, splits, classes, rec, P)
    if "melspectrogram" in frames.available and want("f2warp"):
        upper_warp_copies(frames, g, y, p, splits, classes, rec, P)
    if "melspectrogram" in frames.available and want("f2warp-seq"):  # sequence only, alphas
        for alphas in ((0.8, 1.25), (0.85, 1.18), (0.7, 1.4), (0.8, 0.9, 1.1, 1.25)):
            upper_warp_copies(frames, g, y, p, splits, classes, rec, P, alphas, ("sequence",),
                              "f2warp " + "/".join(f"{a:g}" for a in alphas))
    if want("heq"):
        for cand in ("stats", "sequence"):
            X = quantile_within(raw[cand], g)
            aug = (np.concatenate([quantile_within(build(cand, frames, gw[w], p, warp=w)[0],
                                                   gw[w]) for w in gw]),
                   np.tile(np.arange(len(y)), len(gw)))
            fit(f"{cand} heq", "svm", X, aug)
            votes(f"{cand} heq", cand)
        rec("vote4 both heq", np.mean([P["stats heq"], P["sequence heq"], P["hgb"], P["mlp"]], 0),
            time.time())
    if nb is not None and "george" in set(g) and want("subband"):
        out.update(two_four_profile(frames, y, g, nb))
        subband_study(frames, y, g, p, splits, classes, rec, P)
    return out


def band_centres(frames: Frames) -> np.ndarray:
    import audiopipe.features as F

    m = frames.recipe["compute"]["melspectrogram"]
    n = int(m.get("n_mels", 128))
    return F.mel_frequencies(n_mels=n + 2, fmin=float(m.get("fmin") or 0.0),
                             fmax=float(m.get("fmax") or frames.recipe["sr"] / 2))[1:-1]


def two_four_profile(frames: Frames, y, g, nb) -> dict:
    """Why "two" and "four" swap between george and the others: each speaker's mean
    log-mel of the nucleus frames of "two" minus "four" (dB, relative to nothing: the
    speaker's channel cancels in the difference), averaged over the bands below 1 kHz
    (F1 of /u:/ low, of /o:/ high) and 1.3-2.7 kHz (F2 of a fronted /u:/)."""
    c = band_centres(frames)
    mel = [np.asarray(a, np.float64) for a in frames.get("melspectrogram")]
    out = {}
    for s in np.unique(g):
        prof = {d: np.mean([mel[i][n0:n1].mean(0) for i in np.flatnonzero((g == s) & (y == d))
                            for n0, n1 in [nb[i]]], 0) for d in ("2", "4")}
        diff = prof["2"] - prof["4"]
        out[f"{s} two-four dB below 1 kHz"] = float(diff[c < 1000].mean())
        out[f"{s} two-four dB 1.3-2.7 kHz"] = float(diff[(c > 1300) & (c < 2700)].mean())
    print(json.dumps(out, indent=1), flush=True)
    return out


def subband_study(frames: Frames, y, g, p, splits, classes, rec, P) -> None:
    """Sub-band streams (multi-band recognition): ``sequence`` from the DCT of the log-mel
    bands of one frequency range only (10 or 8 coefficients, group CMVN, warped copies
    through the log-mel), each its own SVM; the streams combined by their mean or
    geometric mean, and with the four (mean, geometric mean); the low stream appended to
    ``sequence``'s columns (one SVM on both)."""
    from scipy.fft import dct

    from audiopipe.stages._clipfeatures import sequence_features

    c, rms = band_centres(frames), frames.get("rms")
    gw = {w: np.asarray([f"{v}@{w}" for v in g], dtype=object) for w in p["warps"]}

    def geo(L: list[np.ndarray]) -> np.ndarray:
        G = np.exp(np.mean([np.log(a + 1e-4) for a in L], 0))
        return G / G.sum(1, keepdims=True)

    def feats(lo: float, hi: float, nc: int, w: float, grp) -> np.ndarray:
        fr = [dct(np.asarray(a, np.float64)[:, (c >= lo) & (c < hi)], type=2, norm="ortho",
                  axis=1)[:, :nc] for a in frames.get("melspectrogram", w)]
        return sequence_features({"x": fr}, rms, 10, n_ceps=nc, trim_db=frames.trim_db,
                                 groups=grp)[0]

    def fit(key: str, make) -> None:
        t = time.time()
        aug = (np.concatenate([make(w, gw[w]) for w in gw]), np.tile(np.arange(len(y)), len(gw)))
        rec(key, oof_proba(ClipClassifier("svm"), make(1.0, g), y, splits, classes,
                           augment=aug), t)

    bands = {"low": (0, 1000, 10), "high": (1000, 1e5, 10), "mid": (1000, 2000, 8),
             "top": (2000, 1e5, 8)}
    for k, (lo, hi, nc) in bands.items():
        fit(f"band {k}", lambda w, grp, lo=lo, hi=hi, nc=nc:
            standardize_within(feats(lo, hi, nc, w, grp), grp))
    base = [P[k] for k in MODEL_OF]
    rec("vote4 geometric", geo(base), time.time())
    for combo in (["low"], ["low", "high"], ["low", "mid", "top"]):
        sub = [P[f"band {k}"] for k in combo]
        name = "+".join(combo)
        rec(f"streams {name} mean", np.mean(sub, 0), time.time())
        rec(f"streams {name} geometric", geo(sub), time.time())
        rec(f"vote4 + streams {name}", np.mean(base + sub, 0), time.time())
        rec(f"vote4 + streams {name} geometric", geo(base + sub), time.time())
    fit("sequence+low", lambda w, grp: standardize_within(
        np.c_[build("sequence", frames, grp, p, warp=w)[0], feats(0, 1000, 10, w, grp)], grp))
    rec("vote4 sequence+low", np.mean([P["stats"], P["hgb"], P["mlp"], P["sequence+low"]], 0),
        time.time())


def main() -> None:
    warnings.simplefilter("ignore")
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    res = {corpus: study(ds, part, target, groups, f"{corpus} tune", only)
           for corpus, ds, part, target, groups in tuning_parts(TUNING_PARTS[:1])}
    write_results("tune_classify_nucleus.json", res)


if __name__ == "__main__":
    main()

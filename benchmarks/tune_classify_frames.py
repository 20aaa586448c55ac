"""Tuning (not kept): frame-level ideas for ``sequence`` on FSDD new speakers, 2026-12-02.

The studies of ``benchmarks/tune_classify.py`` (same fixed split: FSDD tuning speakers
george, jackson, lucas, leave-one-speaker-out; nicolas never looked at) that did not change
the stage; the numbers are recorded in that script's docstring (``--trim`` paragraph).
Every variant is a ``sequence`` (group-CMVN frames of the clip trimmed at 30 dB, resampled
to 10 steps, + mean/std/log length, clip-level speaker standardisation, RBF SVM, warped
training copies where the frames can be warped), scored alone and in the soft vote with
the stage's ``stats``, ``hgb``, ``mlp`` (``vote4``: in place of ``sequence``; ``vote5``:
beside it):

- ``--cepstra``: the feature library's other cepstra (GFCC, PNCC, BFCC, LPCC, 13
  coefficients each, on the same STFT; no warped copies, so against MFCC without them),
  from a second ingest of FSDD with them in the recipe (``fsdd_cepstra``);
- ``--powerlaw``: power-law cepstra computed from the stored log-mel frames (DCT of the
  mel power, per clip divided by its mean, raised to 1/5 ... 1/40, PNCC's compression
  in place of the log), warped through the log-mel bands;
- ``--whiten``: per-speaker full-covariance whitening of the MFCC frames in place of
  the per-speaker mean/variance normalisation; and six warps (0.85-1.15) instead of two;
- ``--dtw``: an SVM on the precomputed kernel ``exp(-DTW / (f * median DTW))`` between
  the group-CMVN MFCC frames resampled to 16 steps (no warped copies);
- ``--balance``: a new speaker's class probabilities balanced (Sinkhorn) so that each
  digit is predicted equally often (the corpus says every digit 50 times per speaker);
- ``--weights`` (alone; at the stage's defaults, 20 dB trim): the soft vote of the four
  with member weights chosen by an inner CV inside each outer fold (:func:`weights_study`).
- ``--trim-choice`` (alone; ESC-10 tuning classes and FSDD tuning speakers): ``trim_db``
  (20 or 30 dB) chosen by an inner CV nested in each outer fold, against the fixed default
  (:func:`trim_choice_study`);
- ``--bandeq`` (alone; 20 dB trim): per-speaker equalisation of the log-mel band profile
  before the cepstrum, and band ranges (:func:`bandeq_study`); why george's "two" is read
  as "four" (:func:`george_two`).
- ``--crop`` (alone; 20 dB trim): every candidate trained with copies of its clips whose
  start is cut off (:func:`crop_study`).

Run: ``python benchmarks/tune_classify_frames.py --cepstra --powerlaw --whiten --dtw
--balance`` (about 6 min on one core, the DTW kernel 1-4 of them; ``--cepstra`` ingests its
FSDD copy once, about a minute); writes ``benchmarks/results/tune_classify_frames_<flags>.json``.
The figures in ``tune_classify.py`` came from this code (the DTW vote at C = 10 here);
``--trim-choice`` and ``--bandeq`` take about 3 min each, ``--crop`` about 2.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.fft import dct

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import ROOT, clips_frame, load  # noqa: E402
from tune_classify import FSDD_TUNE, TUNING_PARTS, _part, dtw_distances, tuning_parts  # noqa: E402

from audiopipe.stages._clipfeatures import group_cmvn, sequence_features  # noqa: E402
from audiopipe.stages._frames import time_normalize  # noqa: E402
from audiopipe.stages.classify.candidates import MODEL_OF, Frames, build  # noqa: E402
from audiopipe.stages.classify.model import (  # noqa: E402
    ClipClassifier,
    oof_proba,
    standardize_within,
)
from audiopipe.stages.classify.select import _augment  # noqa: E402

TRIM = 30.0  # the stage's trim_db when these were run (before --trim chose 20)
WARPS = (0.9, 1.1)


def group_whiten(fr: list[np.ndarray], grp: np.ndarray) -> list[np.ndarray]:
    """Frames whitened by their group's frame mean and full covariance (ZCA)."""
    out = list(fr)
    for s in np.unique(grp):
        idx = np.flatnonzero(grp == s)
        A = np.concatenate([fr[i] for i in idx if len(fr[i])])
        w, V = np.linalg.eigh(np.cov(A, rowvar=False) + 1e-6 * np.eye(A.shape[1]))
        W, mu = V @ np.diag(w ** -0.5) @ V.T, A.mean(0)
        for i in idx:
            if len(fr[i]):
                out[i] = (fr[i] - mu) @ W
    return out


def power_cepstra(mel: list[np.ndarray], power: float, n: int = 13) -> list[np.ndarray]:
    """DCT of the (clip-gain-normalised) mel power raised to ``power``, from dB log-mel."""
    res = []
    for a in mel:
        P = 10.0 ** (np.asarray(a, np.float64) / 10.0)
        res.append(dct((P / (P.mean() + 1e-12)) ** power, type=2, norm="ortho", axis=1)[:, :n])
    return res


def dtw_all(A: np.ndarray, B: np.ndarray, block: int = 48) -> np.ndarray:
    """DTW distances between every sequence of ``A`` and ``B``: ``tune_classify``'s, in
    larger blocks of rows."""
    return dtw_distances(A, B, block)


def sinkhorn(P: np.ndarray, iters: int = 50) -> np.ndarray:
    """``P`` rescaled so that every class gets the same total probability (rows sum to 1)."""
    Q = P + 1e-12
    for _ in range(iters):
        Q = Q / Q.sum(0, keepdims=True) * (len(Q) / Q.shape[1])
        Q = Q / Q.sum(1, keepdims=True)
    return Q


def study(ds, flags: set[str]) -> dict:
    c = clips_frame(ds)
    ids, y, g, p0, frames, splits, classes = _part(ds, c[c.speaker.isin(FSDD_TUNE)], "digit",
                                                   "speaker")
    frames.trim_db = p0["trim_db"] = TRIM
    rms = frames.get("rms")
    out: dict[str, float] = {}
    P: dict[str, np.ndarray] = {}

    def rec(key: str, pr: np.ndarray, t: float) -> None:
        P[key], out[key] = pr, float(np.mean(classes[pr.argmax(1)] == y))
        print(f"{key:48s} {out[key]:.3f} ({time.time() - t:.0f} s)", flush=True)

    for cand in MODEL_OF:
        t = time.time()
        rec(cand, oof_proba(ClipClassifier(MODEL_OF[cand]), build(cand, frames, g, p0)[1], y,
                            splits, classes, augment=_augment(cand, frames, g, p0, True)), t)
    rec("vote4", np.mean([P[k] for k in MODEL_OF], 0), time.time())

    def seq(key: str, frames_of, warps=WARPS, whiten: bool = False) -> None:
        def one(warp: float, grp: np.ndarray) -> np.ndarray:
            fr = [np.asarray(a, np.float64)[:, :13] for a in frames_of(warp)]
            if whiten:
                Xr = sequence_features({"w": group_whiten(fr, grp)}, rms, 10, n_ceps=13,
                                       trim_db=TRIM, cmn=False)[0]
            else:
                Xr = sequence_features({"x": fr}, rms, 10, n_ceps=13, trim_db=TRIM, groups=grp)[0]
            return standardize_within(Xr, grp)

        t = time.time()
        aug = None if not warps else (
            np.concatenate([one(a, np.asarray([f"{v}@{a}" for v in g], dtype=object))
                            for a in warps]), np.tile(np.arange(len(y)), len(warps)))
        rec(key, oof_proba(ClipClassifier("svm"), one(1.0, g), y, splits, classes,
                           augment=aug), t)
        rec(f"vote4 {key}", np.mean([P["stats"], P["hgb"], P["mlp"], P[key]], 0), t)
        rec(f"vote5 +{key}", np.mean([P[k] for k in MODEL_OF] + [P[key]], 0), t)

    mfcc = lambda w: frames.get("mfcc", w)  # noqa: E731
    if "--cepstra" in flags:
        seq("mfcc no warps", mfcc, warps=())
        for f in ("gfcc", "pncc", "bfcc", "lpcc"):
            seq(f"{f} no warps", lambda w, f=f: frames.get(f), warps=())
    if "--powerlaw" in flags:
        seq("DCT of the stored log-mel (control)", lambda w: [
            dct(np.asarray(a, np.float64), type=2, norm="ortho", axis=1)[:, :13]
            for a in frames.get("melspectrogram", w)])
        for e in (5, 10, 15, 25, 40):
            seq(f"power-law 1/{e} cepstrum",
                lambda w, e=e: power_cepstra(frames.get("melspectrogram", w), 1 / e))
    if "--whiten" in flags:
        seq("mfcc speaker-whitened", mfcc, whiten=True)
        seq("mfcc 6 warps", mfcc, warps=(0.85, 0.9, 0.95, 1.05, 1.1, 1.15))
    if "--dtw" in flags:
        t = time.time()
        fr = group_cmvn([a[:, :13].astype(np.float64) for a in frames.get("mfcc")], g)
        S = np.stack([time_normalize(a[b0:b1] if b1 > b0 else a, 16)
                      for a, (b0, b1) in zip(fr, frames.bounds(), strict=True)])
        D = dtw_all(S, S)
        D = (D + D.T) / 2
        from sklearn.svm import SVC

        for f in (0.25, 0.5, 1.0):
            pr = np.zeros((len(y), len(classes)))
            for tr, te in splits:
                K = np.exp(-D / (f * np.median(D[np.ix_(tr, tr)])))
                m = SVC(kernel="precomputed", C=10.0, probability=True, random_state=0)
                pr[te] = m.fit(K[np.ix_(tr, tr)], y[tr]).predict_proba(K[np.ix_(te, tr)])
            key = f"dtw kernel sigma {f:g} median"
            rec(key, pr, t)
            rec(f"vote4 {key}", np.mean([P["stats"], P["hgb"], P["mlp"], pr], 0), t)
            rec(f"vote5 +{key}", np.mean([P[k] for k in MODEL_OF] + [pr], 0), t)
    if "--balance" in flags:
        for key in ("stats", "sequence", "vote4"):
            pr = P[key].copy()
            for s in np.unique(g):
                pr[g == s] = sinkhorn(P[key][g == s])
            rec(f"{key} balanced per speaker", pr, time.time())
    return out


def weights_study(ds) -> dict:
    """``--weights`` (at the stage's defaults, 20 dB trim): the soft vote with member weights
    chosen by an inner leave-one-speaker-out CV inside each outer fold (weights on a 0.1 grid
    of the simplex, the most accurate on the inner out-of-fold probabilities, ties to the
    most even), against the plain vote of all four on the same outer folds."""
    import itertools

    c = clips_frame(ds)
    ids, y, g, p, frames, splits, classes = _part(ds, c[c.speaker.isin(FSDD_TUNE)], "digit",
                                                  "speaker")
    names = list(MODEL_OF)
    mats = {n: (build(n, frames, g, p)[1], _augment(n, frames, g, p, True)) for n in names}
    grid = [np.array(w) / 10 for w in itertools.product(range(11), repeat=len(names))
            if sum(w) == 10]
    grid.sort(key=lambda w: float(np.abs(w - 1 / len(names)).sum()))
    outer = {n: np.zeros((len(y), len(classes))) for n in names}
    chosen = np.zeros((len(y), len(classes)))
    picked = []
    for tr, te in splits:
        inner = [(np.flatnonzero(g[tr] != s), np.flatnonzero(g[tr] == s))
                 for s in np.unique(g[tr])]
        Pi = {}
        for n, (X, aug) in mats.items():
            est = ClipClassifier(MODEL_OF[n])
            sub = None if aug is None else _sub_aug(aug, tr)
            Pi[n] = oof_proba(est, X[tr], y[tr], inner, classes, augment=sub)
            outer[n][te] = oof_proba(est, X, y, [(tr, te)], classes, augment=aug)[te]
        Si = np.stack([Pi[n] for n in names])
        acc_w = [float(np.mean(classes[np.tensordot(w, Si, 1).argmax(1)] == y[tr]))
                 for w in grid]
        w = grid[int(np.argmax(acc_w))]
        picked.append(dict(zip(names, w.round(1).tolist(), strict=True)))
        chosen[te] = np.tensordot(w, np.stack([outer[n][te] for n in names]), 1)
        print(f"weights for {np.unique(g[te])[0]}: {picked[-1]} (inner {max(acc_w):.3f})",
              flush=True)
    acc = lambda P: float(np.mean(classes[P.argmax(1)] == y))  # noqa: E731
    out = {"vote4 plain": acc(np.mean([outer[n] for n in names], 0)),
           "vote4 inner-CV weights": acc(chosen), "weights": picked}
    out.update({n: acc(outer[n]) for n in names})
    print(json.dumps(out, indent=1), flush=True)
    return out


def trim_choice_study(ds, part, target: str, groups: str, levels=(20.0, 30.0)) -> dict:
    """``--trim-choice`` (2026-12-02): ``trim_db`` chosen per dataset by an inner grouped CV
    nested inside each outer fold (the stage's inner CV: ``cv_splits(n_splits=3)`` on the
    fold's training part), against the fixed default, on the same outer folds. In every
    fold and trim each candidate (group-normalised, warped copies as the stage) is scored
    by the inner CV and fitted on the fold's training part; the soft votes (all four, the
    best two by the inner CV) are formed from them. Choosers: ``fixed <t>``: the best
    variant by the inner CV at trim ``t``; ``choose trim+variant``: the best (trim, variant)
    pair (ties to the first trim); ``choose trim by stats``: the trim by ``stats`` alone
    (a cheap chooser: one extra candidate CV), then the best variant at it. CPU seconds per
    trim and candidate are recorded (``cpu[...]``, inner + outer)."""
    from audiopipe.stages.classify.model import cv_splits

    ids, y, g, p0, _, splits, classes = _part(ds, part, target, groups)
    names = list(MODEL_OF)
    mats, cpu = {}, {}
    for td in levels:
        frames, p = Frames(ds, ids, td), dict(p0, trim_db=td)
        for n in names:
            t = time.process_time()
            mats[td, n] = (build(n, frames, g, p)[1], _augment(n, frames, g, p, True))
            cpu[f"features {td:g} {n}"] = time.process_time() - t

    def acc(P: np.ndarray, yy: np.ndarray) -> float:
        return float(np.mean(classes[P.argmax(1)] == yy))

    choosers = [f"fixed {td:g}" for td in levels] + ["choose trim+variant",
                                                      "choose trim by stats"]
    final = {c: np.zeros((len(y), len(classes))) for c in choosers}
    picks: dict[str, list] = {c: [] for c in choosers}
    out: dict = {}
    for tr, te in splits:
        inner = cv_splits(y[tr], g[tr], n_splits=3, random_state=0)[0]
        sc, Po = {}, {}
        for td in levels:
            Pi = {}
            for n in names:
                X, aug = mats[td, n]
                t = time.process_time()
                est = ClipClassifier(MODEL_OF[n])
                Pi[n] = oof_proba(est, X[tr], y[tr], inner, classes,
                                  augment=None if aug is None else _sub_aug(aug, tr))
                Po[td, n] = oof_proba(est, X, y, [(tr, te)], classes, augment=aug)[te]
                cpu[f"cv {td:g} {n}"] = cpu.get(f"cv {td:g} {n}", 0.0) + time.process_time() - t
            s = {n: acc(Pi[n], y[tr]) for n in names}
            top2 = sorted(names, key=lambda n: -s[n])[:2]
            s["ensemble"] = acc(np.mean([Pi[n] for n in names], 0), y[tr])
            s["ensemble-top2"] = acc(np.mean([Pi[n] for n in top2], 0), y[tr])
            Po[td, "ensemble"] = np.mean([Po[td, n] for n in names], 0)
            Po[td, "ensemble-top2"] = np.mean([Po[td, n] for n in top2], 0)
            sc.update({(td, k): v for k, v in s.items()})
        grp = "/".join(np.unique(g[te]).astype(str))
        for c in choosers:
            if c.startswith("fixed"):
                td = float(c.split()[1])
            elif c == "choose trim+variant":
                td = max(levels, key=lambda t: max(v for k, v in sc.items() if k[0] == t))
            else:
                td = max(levels, key=lambda t: sc[t, "stats"])
            v = max((k for k in sc if k[0] == td), key=lambda k: sc[k])[1]
            final[c][te] = Po[td, v]
            picks[c].append(f"{grp}: {td:g} dB {v}")
        print(f"fold {grp}: inner " + ", ".join(f"{k[0]:g} {k[1]} {v:.3f}" for k, v in
                                                sc.items()), flush=True)
    for c in choosers:
        hit = classes[final[c].argmax(1)] == y
        out[c] = float(hit.mean())
        out.update({f"{c}[{s}]": float(hit[g == s].mean()) for s in np.unique(g)})
        out[f"{c} picks"] = picks[c]
        print(f"{c:24s} {out[c]:.3f}  {picks[c]}", flush=True)
    out["cpu"] = cpu
    print(json.dumps(cpu, indent=1), flush=True)
    return out


def equalise_bands(mel: list[np.ndarray], grp: np.ndarray, bounds: list[tuple[int, int]],
                   mode: str) -> list[np.ndarray]:
    """Each group's log-mel frames equalised band by band with the statistics of its
    trimmed (speech) frames: ``cmvn`` subtracts the group's long-term band profile and
    divides by each band's spread; ``heq`` maps each band through the group's empirical
    distribution to a standard normal (histogram equalisation)."""
    from scipy.special import ndtri

    out = [np.asarray(a, np.float64) for a in mel]
    for s in np.unique(grp):
        idx = [i for i in np.flatnonzero(grp == s) if len(out[i])]
        A = np.concatenate([out[i][b0:b1] if b1 > b0 else out[i] for i in idx
                            for b0, b1 in [bounds[i]]])
        if mode == "cmvn":
            mu, sd = A.mean(0), A.std(0) + 1e-6
            for i in idx:
                out[i] = (out[i] - mu) / sd
        else:
            S = np.sort(A, axis=0)
            q = ndtri((np.arange(len(S)) + 0.5) / len(S))
            for i in idx:
                out[i] = np.stack([np.interp(out[i][:, b], S[:, b], q)
                                   for b in range(S.shape[1])], axis=1)
    return out


def bandeq_study(ds) -> dict:
    """``--bandeq`` (2026-12-02, at the stage's defaults, 20 dB trim): per-speaker
    equalisation of the log-mel band profile before the cepstrum (george's channel: lowest
    band 53 dB down, flat top bands). ``sequence`` variants from the stored log-mel (DCT,
    13 coefficients, warped copies through the log-mel bands): the control (speaker CMVN of
    the cepstra over all frames, as the stage), speaker CMVN of the cepstra over the trimmed
    frames only, and :func:`equalise_bands` (``cmvn``, ``heq``) before the DCT; ``mlp`` on
    the equalised log-mel. Alone, per speaker, and in the soft vote of the four."""
    from audiopipe.stages.classify.candidates import mel_patches

    c = clips_frame(ds)
    ids, y, g, p, frames, splits, classes = _part(ds, c[c.speaker.isin(FSDD_TUNE)], "digit",
                                                  "speaker")
    rms, bounds = frames.get("rms"), frames.bounds()
    out: dict[str, float] = {}
    P: dict[str, np.ndarray] = {}

    def rec(key: str, pr: np.ndarray, t: float) -> None:
        P[key], out[key] = pr, float(np.mean(classes[pr.argmax(1)] == y))
        pred = classes[pr.argmax(1)]
        per = {s: float(np.mean(pred[g == s] == y[g == s])) for s in np.unique(g)}
        out.update({f"{key}[{s}]": v for s, v in per.items()})
        two4 = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
        out[f"{key} george 2->4"] = two4
        print(f"{key:44s} {out[key]:.3f} " + " ".join(f"{s} {v:.3f}" for s, v in per.items())
              + f" george 2->4 {two4} ({time.time() - t:.0f} s)", flush=True)

    for cand in MODEL_OF:
        t = time.time()
        rec(cand, oof_proba(ClipClassifier(MODEL_OF[cand]), build(cand, frames, g, p)[1], y,
                            splits, classes, augment=_augment(cand, frames, g, p, True)), t)
    rec("vote4", np.mean([P[k] for k in MODEL_OF], 0), time.time())

    def cep(mel: list[np.ndarray], grp: np.ndarray, speech_cmvn: bool | str) -> np.ndarray:
        fr = [dct(a, type=2, norm="ortho", axis=1)[:, :13] for a in mel]
        if speech_cmvn == "heq":  # feature warping of the cepstra (per speaker, per coefficient)
            fr = equalise_bands(fr, grp, bounds, "heq")
        if speech_cmvn is True:  # the group's cepstral mean/std over its trimmed frames only
            out_ = list(fr)
            for s in np.unique(grp):
                idx = np.flatnonzero(grp == s)
                A = np.concatenate([fr[i][bounds[i][0]:bounds[i][1]] for i in idx])
                mu, sd = A.mean(0), A.std(0) + 1e-6
                for i in idx:
                    out_[i] = (fr[i] - mu) / sd
            Xr = sequence_features({"x": out_}, rms, 10, n_ceps=13, trim_db=frames.trim_db,
                                   cmn=False)[0]
        else:
            Xr = sequence_features({"x": fr}, rms, 10, n_ceps=13, trim_db=frames.trim_db,
                                   groups=grp)[0]
        return standardize_within(Xr, grp)

    variants = {"control (DCT of log-mel, CMVN all frames)": (None, False),
                "cepstral CMVN over trimmed frames": (None, True),
                "band CMVN before DCT": ("cmvn", False),
                "band HEQ before DCT": ("heq", False),
                "cepstral HEQ (feature warping)": (None, "heq"),
                "without the lowest band": (slice(1, None), False),
                "lowest 32 bands (< 2.5 kHz)": (slice(0, 32), False),
                "lowest 26 bands (< 1.75 kHz)": (slice(0, 26), False)}
    for key, (mode, speech) in variants.items():
        t = time.time()

        def mel_of(w: float, grp: np.ndarray, mode=mode) -> list[np.ndarray]:
            m = [np.asarray(a, np.float64) for a in frames.get("melspectrogram", w)]
            if isinstance(mode, slice):  # a band range, the same for every speaker
                return [a[:, mode] for a in m]
            return m if mode is None else equalise_bands(m, grp, bounds, mode)

        gw = {w: np.asarray([f"{v}@{w}" for v in g], dtype=object) for w in WARPS}
        aug = (np.concatenate([cep(mel_of(w, gw[w]), gw[w], speech) for w in WARPS]),
               np.tile(np.arange(len(y)), len(WARPS)))
        rec(f"seq {key}", oof_proba(ClipClassifier("svm"), cep(mel_of(1.0, g), g, speech), y,
                                    splits, classes, augment=aug), t)
        rec(f"vote4 seq {key}", np.mean([P["stats"], P["hgb"], P["mlp"], P[f"seq {key}"]], 0), t)
        if mode is not None:
            t = time.time()
            Xm = standardize_within(mel_patches(mel_of(1.0, g), bounds, int(p["patches"]))[0], g)
            rec(f"mlp {key}", oof_proba(ClipClassifier("mlp"), Xm, y, splits, classes), t)
            rec(f"vote4 seq+mlp {key}", np.mean([P["stats"], P["hgb"], P[f"mlp {key}"],
                                                 P[f"seq {key}"]], 0), t)
    out.update(george_two(frames, y, g, build("sequence", frames, g, p)[1], classes))
    return out


def george_two(frames, y: np.ndarray, g: np.ndarray, X: np.ndarray, classes) -> dict:
    """Why george's "two" is read as "four": how loud each clip's first rms frame is
    against its peak (a recording cut inside the word starts loud), ``sequence`` within
    one speaker's own clips (stratified 5-fold), and the distance of george's "two" to the
    other speakers' "two" and "four" centroids (group-normalised ``sequence`` features)."""
    from audiopipe.stages.classify.model import cv_splits

    out: dict[str, float] = {}
    rms = [a[:, 0] for a in frames.get("rms")]
    first = np.array([20 * np.log10((a[0] + 1e-10) / (a.max() + 1e-10)) for a in rms])
    for s in FSDD_TUNE:
        for d in ("2", "4"):
            m = (g == s) & (y == d)
            out[f"{s} {d} first frame dB median"] = float(np.median(first[m]))
            out[f"{s} {d} first frame within 20 dB"] = float(np.mean(first[m] > -20))
        m = np.flatnonzero(g == s)
        pr = oof_proba(ClipClassifier("svm"), X[m], y[m], cv_splits(y[m], None)[0], classes)
        pred = classes[pr.argmax(1)]
        out[f"{s} within-speaker sequence"] = float(np.mean(pred == y[m]))
        out[f"{s} within-speaker 2->4"] = int(np.sum((y[m] == "2") & (pred == "4")))
        if s != "george":
            for d in ("2", "4"):
                mu = X[(g == s) & (y == d)].mean(0)
                out[f"george 2 to {s} {d}"] = float(np.linalg.norm(
                    X[(g == "george") & (y == "2")] - mu, axis=1).mean())
    print(json.dumps(out, indent=1), flush=True)
    return out


class CroppedFrames(Frames):
    """The clips of ``frames`` with the first ``frac`` of their trimmed part cut off (as if
    the recording had started inside the word); trim bounds recomputed on what is left."""

    def __init__(self, frames: Frames, frac: float) -> None:
        super().__init__(frames.ds, frames.ids, frames.trim_db)
        self._src, self._cut = frames, [b0 + int(frac * (b1 - b0)) for b0, b1 in frames.bounds()]

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        return [a[c:] for a, c in zip(self._src.get(feature, warp, above), self._cut, strict=True)]


def crop_study(ds, fracs=(0.15, 0.3)) -> dict:
    """``--crop`` (2026-12-02, 20 dB trim): every candidate trained with extra copies of its
    training clips whose start is cut off (:class:`CroppedFrames`, ``fracs`` of the trimmed
    part; group-normalised within speaker x cut, beside the stage's warped copies), so that
    a word whose onset is missing (george's "two") is still read by the rest of it."""
    c = clips_frame(ds)
    ids, y, g, p, frames, splits, classes = _part(ds, c[c.speaker.isin(FSDD_TUNE)], "digit",
                                                  "speaker")
    out: dict = {}
    P: dict[str, np.ndarray] = {}
    crops = {f: CroppedFrames(frames, f) for f in fracs}

    def rec(key: str, pr: np.ndarray, t: float) -> None:
        P[key], out[key] = pr, float(np.mean(classes[pr.argmax(1)] == y))
        pred = classes[pr.argmax(1)]
        per = {s: float(np.mean(pred[g == s] == y[g == s])) for s in np.unique(g)}
        out.update({f"{key}[{s}]": v for s, v in per.items()})
        out[f"{key} george 2->4"] = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
        print(f"{key:28s} {out[key]:.3f} " + " ".join(f"{s} {v:.3f}" for s, v in per.items())
              + f" george 2->4 {out[f'{key} george 2->4']} ({time.time() - t:.0f} s)",
              flush=True)

    for cand in MODEL_OF:
        t = time.time()
        X, aug = build(cand, frames, g, p)[1], _augment(cand, frames, g, p, True)
        rec(cand, oof_proba(ClipClassifier(MODEL_OF[cand]), X, y, splits, classes,
                            augment=aug), t)
        t = time.time()
        blocks = [] if aug is None else [aug]
        for f, fr in crops.items():
            gc = np.asarray([f"{v}@cut{f}" for v in g], dtype=object)
            blocks.append((build(cand, fr, gc, p)[1], np.arange(len(y))))
        caug = (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))
        rec(f"{cand} +cut copies", oof_proba(ClipClassifier(MODEL_OF[cand]), X, y, splits,
                                             classes, augment=caug), t)
    rec("vote4", np.mean([P[k] for k in MODEL_OF], 0), time.time())
    rec("vote4 +cut copies", np.mean([P[f"{k} +cut copies"] for k in MODEL_OF], 0), time.time())
    return out


def _sub_aug(aug: tuple[np.ndarray, np.ndarray], tr: np.ndarray) -> tuple:
    from audiopipe.stages.classify.select import _sub_augment

    return _sub_augment(aug, tr)


def main() -> None:
    warnings.simplefilter("ignore")
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if "--weights" in flags:
        res = weights_study(load("fsdd"))
    elif "--crop" in flags:
        res = crop_study(load("fsdd"))
    elif "--bandeq" in flags:
        res = bandeq_study(load("fsdd"))
    elif "--trim-choice" in flags:
        res = {corpus: trim_choice_study(ds, part, target, groups)
               for corpus, ds, part, target, groups in tuning_parts(TUNING_PARTS[::-1])}
    else:
        res = study(load("fsdd_cepstra" if "--cepstra" in flags else "fsdd"), flags)
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    name = "_".join(sorted(f[2:].replace("-", "_") for f in flags))
    (dest / f"tune_classify_frames_{name}.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

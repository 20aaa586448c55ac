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

Run: ``python benchmarks/tune_classify_frames.py --cepstra --powerlaw --whiten --dtw
--balance`` (about 6 min on one core, the DTW kernel 1-4 of them; ``--cepstra`` ingests its
FSDD copy once, about a minute); writes ``benchmarks/results/tune_classify_frames_<flags>.json``.
The figures in ``tune_classify.py`` came from this code (the DTW vote at C = 10 here).
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
from tune_classify import FSDD_TUNE, _part  # noqa: E402

from audiopipe.stages._clipfeatures import group_cmvn, sequence_features  # noqa: E402
from audiopipe.stages._frames import time_normalize  # noqa: E402
from audiopipe.stages.classify.candidates import MODEL_OF, build  # noqa: E402
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
    """DTW distances (Euclidean frame cost) between every sequence of ``A`` and ``B``
    (``(n, L, d)``, ``(m, L, d)``), all pairs of a block of rows at once."""
    L, out = A.shape[1], np.empty((len(A), len(B)))
    for s in range(0, len(A), block):
        C = np.sqrt(((A[s:s + block, None, :, None] - B[None, :, None, :]) ** 2).sum(-1))
        D = np.full(C.shape[:2] + (L + 1, L + 1), np.inf)
        D[:, :, 0, 0] = 0.0
        for i in range(1, L + 1):
            for j in range(1, L + 1):
                D[:, :, i, j] = C[:, :, i - 1, j - 1] + np.minimum(
                    np.minimum(D[:, :, i - 1, j], D[:, :, i, j - 1]), D[:, :, i - 1, j - 1])
        out[s:s + block] = D[:, :, L, L]
    return out


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


def _sub_aug(aug: tuple[np.ndarray, np.ndarray], tr: np.ndarray) -> tuple:
    from audiopipe.stages.classify.select import _sub_augment

    return _sub_augment(aug, tr)


def main() -> None:
    warnings.simplefilter("ignore")
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    if "--weights" in flags:
        res = weights_study(load("fsdd"))
    else:
        res = study(load("fsdd_cepstra" if "--cepstra" in flags else "fsdd"), flags)
    dest = ROOT / "benchmarks" / "results"
    dest.mkdir(parents=True, exist_ok=True)
    name = "_".join(sorted(f[2:] for f in flags))
    (dest / f"tune_classify_frames_{name}.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

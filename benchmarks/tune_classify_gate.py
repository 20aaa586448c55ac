"""Tuning (issue 12, round 22): a confidence-gated low-band second opinion, test-time
maximum-likelihood VTLN and augmented training copies for ``mlp``, for classify on FSDD
new speakers, 2026-12-02.

Same fixed split as ``benchmarks/tune_classify.py`` (FSDD tuning speakers george, jackson,
lucas, leave-one-speaker-out; nicolas never looked at here; ESC-10 tuning classes for the
check of what wins); the stage's defaults otherwise (20 dB trim, group normalisation,
warped training copies, ``upper_warps``). The numbers are recorded in that script's
docstring (round 22).

- ``gate``: the vote of the four is kept where it is sure; where its top-2 margin is below
  ``t`` the low-band stream (``sequence`` of the DCT of the log-mel bands below 1 kHz, its
  own SVM with warped copies: round 21's "F1 only" stream, which reads "two" and "four"
  right across the accents) chooses between the vote's two best classes. Also the low-band
  stream's probabilities multiplied into the vote's two best (``rerank``, weight ``w``).
- ``vtln``: test-time maximum-likelihood warp: each held-out speaker's clips are read at
  warps ``ALPHAS`` (whole spectrum, group-normalised within him at that warp), and the
  warp whose vote is the most confident (mean log of the top probability over all his
  clips) is used; no label of his is read and nothing is refitted.
- ``mlpaug``: ``mlp`` trained with copies: the frequency-warped ones the stage gives
  ``sequence`` (0.9 / 1.1 and 0.7 / 1.4 above 1 kHz), or SpecAugment-style masked ones
  (one band mask of 2-6 of 40 bands and one time mask up to 15 % of the trimmed frames,
  filled with the clip's mean; two copies per clip).

Run: ``python benchmarks/tune_classify_gate.py`` from the repository root (FSDD tuning
speakers, about 10 min on a busy machine; ``--esc``: the ESC-10 tuning classes too);
writes ``benchmarks/results/tune_classify_gate.json``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import ROOT, write_results  # noqa: E402
from tune_classify import TUNING_PARTS, _part, tuning_parts  # noqa: E402

from audiopipe.stages.classify.candidates import MODEL_OF, build, mel_patches  # noqa: E402
from audiopipe.stages.classify.model import ClipClassifier, standardize_within  # noqa: E402
from audiopipe.stages.classify.select import _augment, _sub_augment  # noqa: E402

ALPHAS = (0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15)
GATES = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.01)


def low_band(frames, g, p, warp: float = 1.0, fmax: float = 1000.0, nc: int = 10):
    """Round 21's low-band stream: ``sequence`` of the DCT of the log-mel bands < ``fmax``."""
    from scipy.fft import dct
    from tune_classify_nucleus import band_centres

    from audiopipe.stages._clipfeatures import sequence_features

    c = band_centres(frames)
    fr = [dct(np.asarray(a, np.float64)[:, c < fmax], type=2, norm="ortho", axis=1)[:, :nc]
          for a in frames.get("melspectrogram", warp)]
    X = sequence_features({"x": fr}, frames.get("rms"), int(p["frames"]), n_ceps=nc,
                          trim_db=frames.trim_db, groups=g)[0]
    return standardize_within(X, g)


def features(cand: str, frames, g, p, warp: float = 1.0) -> np.ndarray:
    """Group-normalised features of a candidate read at ``warp`` (``mlp`` too)."""
    if cand == "mlp":
        X = mel_patches(frames.get("melspectrogram", warp), frames.bounds(),
                        int(p.get("patches", 8)))[0]
        return standardize_within(X, g)
    if cand == "low":
        return low_band(frames, g, p, warp)
    return build(cand, frames, g, p, warp=warp)[1]


def mlp_warp_copies(frames, g, p):
    """``mlp`` rows of the stage's ``sequence`` copies: warps and upper warps."""
    n, blocks = len(frames.ids), []
    for a, above in [(w, 0.0) for w in p["warps"]] + [(w, 1000.0) for w in p["upper_warps"]]:
        ga = np.asarray([f"{v}@{a}/{above}" for v in g], dtype=object)
        X = mel_patches(frames.get("melspectrogram", a, above), frames.bounds(),
                        int(p.get("patches", 8)))[0]
        blocks.append(standardize_within(X, ga))
    return np.concatenate(blocks), np.tile(np.arange(n), len(blocks))


def mlp_mask_copies(frames, g, p, copies: int = 2, seed: int = 0):
    """``mlp`` rows of SpecAugment-style masked copies (one band and one time mask each)."""
    rng = np.random.default_rng(seed)
    mel, bounds = frames.get("melspectrogram"), frames.bounds()
    n, blocks = len(mel), []
    for k in range(copies):
        out = []
        for a, (b0, b1) in zip(mel, bounds, strict=True):
            a = np.asarray(a, np.float64).copy()
            if b1 - b0 < 2:
                out.append(a)
                continue
            fill = a[b0:b1].mean()
            w = int(rng.integers(2, 7))
            f0 = int(rng.integers(0, a.shape[1] - w + 1))
            a[b0:b1, f0:f0 + w] = fill
            tw = int(rng.integers(0, max(1, int(0.15 * (b1 - b0))) + 1))
            if tw:
                t0 = int(rng.integers(b0, b1 - tw + 1))
                a[t0:t0 + tw] = fill
            out.append(a)
        gk = np.asarray([f"{v}@mask{k}" for v in g], dtype=object)
        blocks.append(standardize_within(mel_patches(out, bounds, int(p.get("patches", 8)))[0],
                                         gk))
    return np.concatenate(blocks), np.tile(np.arange(n), copies)


def study(ds, part, target: str, groups: str, label: str, vtln: bool) -> dict:
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    col = {c: i for i, c in enumerate(classes.tolist())}
    out: dict = {}

    def acc(P: np.ndarray) -> float:
        return float(np.mean(classes[P.argmax(1)] == y))

    def rec(key: str, P: np.ndarray, t: float | None = None) -> None:
        pred = classes[P.argmax(1)]
        out[key] = acc(P)
        per = {s: float(np.mean(pred[g == s] == y[g == s])) for s in np.unique(g)}
        if len(per) <= 3:
            out.update({f"{key}[{s}]": v for s, v in per.items()})
        extra = " ".join(f"{s} {v:.3f}" for s, v in per.items()) if len(per) <= 3 else ""
        if label.startswith("fsdd"):
            out[f"{key} george 2->4"] = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
            out[f"{key} lucas 4->2"] = int(np.sum((g == "lucas") & (y == "4") & (pred == "2")))
            extra += f" 2->4 {out[f'{key} george 2->4']} 4->2 {out[f'{key} lucas 4->2']}"
        dt = "" if t is None else f" ({time.time() - t:.0f} s)"
        print(f"{label} {key:40s} {out[key]:.3f} {extra}{dt}", flush=True)

    cands = list(MODEL_OF) + ["low"]
    alphas = ALPHAS if vtln else (1.0,)
    gw = {a: np.asarray([f"{v}@tt{a}" for v in g], dtype=object) for a in alphas}
    Xs = {}
    t = time.time()
    for c in cands:  # (hgb reads the same standardised statistics as stats)
        Xs[c] = Xs["stats"] if c == "hgb" else {
            a: features(c, frames, gw[a] if a != 1.0 else g, p, a) for a in alphas}
    print(f"{label} features at {len(alphas)} warps ({time.time() - t:.0f} s)", flush=True)
    augs = {c: _augment(c, frames, g, p, True) for c in MODEL_OF}
    if "low" in cands:
        n = len(y)
        blocks = [(low_band(frames, np.asarray([f"{v}@{a}" for v in g], dtype=object), p, a),
                   np.arange(n)) for a in p["warps"]]
        augs["low"] = (np.concatenate([b[0] for b in blocks]),
                       np.concatenate([b[1] for b in blocks]))
    extra_mlp = {"mlp+warps": mlp_warp_copies(frames, g, p),
                 "mlp+masks": mlp_mask_copies(frames, g, p)}
    P = {c: {a: np.zeros((len(y), len(classes))) for a in alphas} for c in cands}
    for k in extra_mlp:
        P[k] = {1.0: np.zeros((len(y), len(classes)))}
    for c in cands + list(extra_mlp):
        t = time.time()
        base = "mlp" if c.startswith("mlp") else c
        aug = extra_mlp.get(c, augs.get(c))
        for tr, te in splits:
            a_tr = _sub_augment(aug, tr)
            Xtr, ytr = Xs[base][1.0][tr], y[tr]
            if a_tr is not None:
                Xtr, ytr = np.r_[Xtr, a_tr[0]], np.r_[ytr, ytr[a_tr[1]]]
            est = ClipClassifier(MODEL_OF.get(base, "svm")).fit(Xtr, ytr.astype(str))
            cols = [col[str(x)] for x in est.classes_]
            for a in P[c]:
                P[c][a][np.ix_(te, cols)] = est.predict_proba(Xs[base][a][te])
        rec(c, P[c][1.0], t)
    vote = {a: np.mean([P[c][a] for c in MODEL_OF], 0) for a in alphas}
    rec("vote4", vote[1.0])
    for k in extra_mlp:
        rec(f"vote4 {k}", np.mean([P[c][1.0] for c in ("stats", "sequence", "hgb")] +
                                  [P[k][1.0]], 0))
    V, L = vote[1.0], P["low"][1.0]
    rec("vote5 +low", np.mean([P[c][1.0] for c in cands], 0))
    # (a) gate: where the vote's top-2 margin < t, the low band picks between its top two
    srt = np.sort(V, 1)
    margin = srt[:, -1] - srt[:, -2]
    top2 = np.argsort(-V, 1)[:, :2]
    r = np.arange(len(y))
    low_pick = np.where(L[r, top2[:, 0]] >= L[r, top2[:, 1]], top2[:, 0], top2[:, 1])
    for th in GATES:
        pick = np.where(margin < th, low_pick, top2[:, 0])
        Q = np.zeros_like(V)
        Q[r, pick] = 1.0
        rec(f"gate t={th:g} (gated {np.mean(margin < th):.2f})", Q)
    for w in (0.25, 0.5, 1.0, 2.0):
        Q = np.zeros_like(V)
        Q[r[:, None], top2] = V[r[:, None], top2] * L[r[:, None], top2] ** w
        rec(f"rerank top2 vote*low^{w:g}", Q)
    np.savez_compressed(ROOT / "benchmarks" / "results" / f"tune_classify_gate_{label[:4]}.npz",
                        y=y.astype(str), g=g.astype(str), classes=classes.astype(str),
                        **{f"{c}@{a:g}": P[c][a] for c in cands for a in P[c]})
    if vtln:
        for crit in ("logmax", "max"):
            Q = np.zeros_like(V)
            chosen = {}
            for s in np.unique(g):
                m = g == s

                def conf(A: np.ndarray, m=m, crit=crit) -> float:
                    top = A[m].max(1)
                    return float(np.mean(np.log(top + 1e-6)) if crit == "logmax" else top.mean())

                best = max(alphas, key=lambda a: conf(vote[a]))
                chosen[s] = best
                Q[m] = vote[best][m]
            out[f"vtln {crit} warps"] = chosen
            rec(f"vtln vote ({crit}) {chosen}", Q)
            Q = np.zeros_like(V)
            for c in MODEL_OF:  # each member its own warp
                for s in np.unique(g):
                    m = g == s
                    best = max(alphas, key=lambda a: float(np.mean(np.log(P[c][a][m].max(1)
                                                                          + 1e-6))))
                    Q[m] += P[c][best][m] / len(MODEL_OF)
            rec(f"vtln per member ({crit})", Q)
        for a in alphas:
            rec(f"vote at test warp {a:g} (all speakers)", vote[a])
    return out


def through_stage(ds, part, target: str, groups: str, label: str) -> dict:
    """The stage itself (``fit_select``, nested choice) on a tuning part, with its default
    ``test_warps`` and without (``[]``): nested accuracy, per group, each variant's CV."""
    from audiopipe.stages.classify.select import fit_select

    ids, y, g, p, *_ = _part(ds, part, target, groups)
    out = {}
    for key, tw in (("test_warps default", p["test_warps"]), ("test_warps []", [])):
        t, cpu = time.time(), time.process_time()
        sel = fit_select(ds, ids, y, g, {**p, "test_warps": tw})
        out[key] = {**sel.metrics, "chosen": sel.bundle["candidate"], "why": sel.why,
                    "wall_s": round(time.time() - t), "cpu_s": round(time.process_time() - cpu)}
        print(f"{label} {key}: nested {sel.metrics['accuracy']:.3f} chose "
              f"{sel.bundle['candidate']} ({out[key]['wall_s']} s wall, {out[key]['cpu_s']} s "
              f"CPU)\n  {sel.why}", flush=True)
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    if "--stage" in sys.argv:  # the kept variant through the stage, both tuning parts
        res = {corpus: through_stage(ds, part, target, groups, f"{corpus} tune")
               for corpus, ds, part, target, groups in tuning_parts()}
        write_results("tune_classify_gate_stage.json", res)
        return
    parts = {"--esc": TUNING_PARTS, "--esc-only": TUNING_PARTS[1:]}.get(
        next((a for a in sys.argv if a.startswith("--esc")), ""), TUNING_PARTS[:1])
    res = {corpus: study(ds, part, target, groups, f"{corpus} tune", vtln="--no-vtln" not in sys.argv)
           for corpus, ds, part, target, groups in tuning_parts(parts)}
    write_results("tune_classify_gate.json", res)


if __name__ == "__main__":
    main()

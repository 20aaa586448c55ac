"""Tuning (issue 12, round 23): test-time warps above 1 kHz only (an accent warp per
speaker) beside round 22's whole-spectrum test-time warps, and ``mlp`` with warped
training copies read at the test-time warps, for classify on FSDD new speakers, 2026-12-02.

Same fixed split as ``benchmarks/tune_classify.py`` (FSDD tuning speakers george, jackson,
lucas, leave-one-speaker-out; nicolas never looked at here; ``--esc``: the ESC-10 tuning
classes too); the stage's defaults otherwise (20 dB trim, group normalisation, warped
training copies, ``upper_warps``, ``test_warps``). The numbers are recorded in that
script's docstring (round 23).

Every fold's four models are fitted once (as the stage: ``stats`` and ``sequence`` with
their warped copies) and predict each held-out group in every *reading*: the whole
spectrum warped by ``WHOLE`` (round 22's ``test_warps``, 1 included) and the spectrum
above 1 kHz only warped by ``UPPER`` (F2/F3 moved, F1 kept: the direction of round 21's
``upper_warps``), every candidate's frames (``stats``, ``mlp`` too) read so, group
normalised within the group at that reading. Per group the reading whose vote is the most
confident (mean log top-class probability over its clips, as the stage) is used, chosen
among: the whole warps (round 22, the baseline), the upper ones, both sets, and the upper
ones on top of the whole warp chosen first (``then``: the warp matrices composed).

``--clip``: the lone-clip fallback (per-clip features) with a warp chosen per clip (the
most confident of the same readings, each clip alone). ``--combined`` (after the main run,
from the probabilities it saved): other ways of using the readings than choosing one.

Run: ``python benchmarks/tune_classify_accent.py`` from the repository root (FSDD tuning
speakers, about 7 min on a busy machine; ``--clip`` about 3 min; ``--combined`` seconds);
writes ``benchmarks/results/tune_classify_accent.json`` (``_clip.json``,
``_combined.json``).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify_data import ROOT, write_results  # noqa: E402
from tune_classify import TUNING_PARTS, _part, tuning_parts  # noqa: E402

from audiopipe.stages.classify.candidates import MODEL_OF, Frames, build  # noqa: E402
from audiopipe.stages.classify.model import ClipClassifier  # noqa: E402
from audiopipe.stages.classify.select import UPPER_WARP_HZ, _augment, _sub_augment  # noqa: E402

WHOLE = (0.9, 0.95, 1.05, 1.1)
UPPER = (0.7, 0.8, 0.9, 1.1, 1.25, 1.4)


class Above(Frames):
    """Frames whose every warp moves the spectrum above ``above`` Hz only (the stage's
    ``build`` passes an upper limit to ``sequence``'s frames alone; this reads ``stats``'
    and ``mlp``'s frames so too, without changing the package)."""

    def __init__(self, base: Frames, above: float) -> None:
        self.__dict__.update(base.__dict__)  # (the frame cache is shared, not copied)
        self.base, self.above = base, above

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        return self.base.get(feature, warp, above or self.above)


class Composed(Frames):
    """Frames whose every warp is applied after a fixed whole-spectrum warp ``pre``."""

    def __init__(self, base: Frames, pre: float) -> None:
        self.__dict__.update(base.__dict__)
        self.pre = pre

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        fr = Frames.get(self, feature)
        W0 = Frames.warp_matrix(self, feature, self.pre)
        if W0 is None:
            return fr
        W = W0 if warp == 1.0 else Frames.warp_matrix(self, feature, warp, above) @ W0
        return [a @ W.T if len(a) else a for a in fr]


def reading(frames: Frames, kind: str, a: float) -> Frames:
    """The frames a reading is built from: warped whole (``w``) or above 1 kHz (``u``)."""
    return Above(frames, UPPER_WARP_HZ) if kind == "u" and a != 1.0 else frames


def study(ds, part, target: str, groups: str, label: str) -> dict:
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    col = {c: i for i, c in enumerate(classes.tolist())}
    out: dict = {}

    def rec(key: str, P: np.ndarray, chosen: dict | None = None) -> None:
        pred = classes[P.argmax(1)]
        out[key] = float(np.mean(pred == y))
        per = {s: float(np.mean(pred[g == s] == y[g == s])) for s in np.unique(g)}
        extra = " ".join(f"{s} {v:.3f}" for s, v in per.items()) if len(per) <= 3 else ""
        if label.startswith("fsdd"):
            e24 = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
            e42 = int(np.sum((g == "lucas") & (y == "4") & (pred == "2")))
            extra += f" 2->4 {e24} 4->2 {e42}"
            out[f"{key} 2->4/4->2"] = [e24, e42]
        if chosen is not None and len(chosen) <= 3:
            extra += f" {chosen}"
            out[f"{key} chosen"] = {str(k): str(v) for k, v in chosen.items()}
        print(f"{label} {key:44s} {out[key]:.3f} {extra}", flush=True)

    views = [("w", 1.0)] + [("w", a) for a in WHOLE] + [("u", a) for a in UPPER]
    mlp = "mlp+copies"
    cands = list(MODEL_OF) + [mlp]

    def feats(fr: Frames, tag: str) -> dict:
        out = {}
        for kind, a in views:
            gv = np.asarray([f"{v}@{tag}{kind}{a}" for v in g], dtype=object)
            fv = Above(fr, UPPER_WARP_HZ) if kind == "u" else fr
            for c in ("stats", "sequence", "mlp"):
                out[(c, kind, a)] = build(c, fv, gv if (kind, a) != ("w", 1.0) else g, p,
                                          warp=a)[1]
        return out

    t = time.time()
    X = feats(frames, "")
    print(f"{label} features at {len(views)} readings ({time.time() - t:.0f} s)", flush=True)
    augs = {c: _augment(c, frames, g, p, True) for c in MODEL_OF}
    # mlp given the copies of sequence: whole warps and upper warps
    blocks = []
    for a, above in [(w, 0.0) for w in p["warps"]] + [(w, UPPER_WARP_HZ)
                                                      for w in p["upper_warps"]]:
        ga = np.asarray([f"{v}@{a}/{above}" for v in g], dtype=object)
        blocks.append(build("mlp", Above(frames, above) if above else frames, ga, p,
                            warp=a)[1])
    augs[mlp] = (np.concatenate(blocks), np.tile(np.arange(len(y)), len(blocks)))
    fitted = {}
    for c in cands:
        t = time.time()
        base = "mlp" if c == mlp else c
        fc = "stats" if base == "hgb" else base
        for k, (tr, _) in enumerate(splits):
            a_tr = _sub_augment(augs.get(c), tr)
            Xtr, ytr = X[(fc, "w", 1.0)][tr], y[tr]
            if a_tr is not None:
                Xtr, ytr = np.r_[Xtr, a_tr[0]], np.r_[ytr, ytr[a_tr[1]]]
            fitted[(c, k)] = ClipClassifier(MODEL_OF[base]).fit(Xtr, ytr.astype(str))
        print(f"{label} fitted {c} ({time.time() - t:.0f} s)", flush=True)

    def proba(c: str, Xv: dict, v: tuple) -> np.ndarray:
        base = "mlp" if c == mlp else c
        fc = "stats" if base == "hgb" else base
        P = np.zeros((len(y), len(classes)))
        for k, (_, te) in enumerate(splits):
            est = fitted[(c, k)]
            P[np.ix_(te, [col[str(x)] for x in est.classes_])] = est.predict_proba(
                Xv[(fc, *v)][te])
        return P

    P = {(c, *v): proba(c, X, v) for c in cands for v in views}
    np.savez_compressed(ROOT / "benchmarks" / "results" / f"tune_classify_accent_{label[:4]}.npz",
                        y=y.astype(str), g=g.astype(str),
                        **{f"{k[0]}|{k[1]}{k[2]:g}": v for k, v in P.items()})

    def ml(PV: dict) -> tuple[np.ndarray, dict]:
        Q, chosen = np.zeros((len(y), len(classes))), {}
        for s in np.unique(g):
            m = g == s
            best = max(PV, key=lambda v: (float(np.mean(np.log(PV[v][m].max(1) + 1e-9))),
                                          v == ("w", 1.0)))
            chosen[s] = best
            Q[m] = PV[best][m]
        return Q, chosen

    for name, members in (("vote4", list(MODEL_OF)),
                          ("vote4 mlp+copies", ["stats", "sequence", "hgb", mlp])):
        vote = {v: np.mean([P[(c, *v)] for c in members], 0) for v in views}
        rec(f"{name} at 1", vote[("w", 1.0)])
        for setname, keep in (("whole (round 22)", lambda v: v[0] == "w" or v[1] == 1.0),
                              ("upper", lambda v: v[0] == "u" or v == ("w", 1.0)),
                              ("whole+upper", lambda v: True)):
            rec(f"{name} ML {setname}", *ml({v: vote[v] for v in views if keep(v)}))
        for v in views[1:]:
            rec(f"{name} all at {v[0]}{v[1]:g}", vote[v])
    for c in cands:
        rec(f"{c} at 1", P[(c, "w", 1.0)])
        rec(f"{c} ML whole", *ml({v: P[(c, *v)] for v in views if v[0] == "w"}))
        rec(f"{c} ML whole+upper", *ml({v: P[(c, *v)] for v in views}))
    # the upper warps on top of the whole warp chosen first (round 22's choice)
    vote = {v: np.mean([P[(c, *v)] for c in MODEL_OF], 0) for v in views}
    _, first = ml({v: vote[v] for v in views if v[0] == "w"})
    Q = np.zeros((len(y), len(classes)))
    chosen = {}
    for pre in sorted({v[1] for v in first.values()}):
        fr = Composed(frames, pre) if pre != 1.0 else frames
        t = time.time()
        Xc = X if pre == 1.0 else feats(fr, f"pre{pre}")
        PV = {v: np.mean([proba(c, Xc, v) for c in MODEL_OF], 0) for v in views
              if v[0] == "u" or v == ("w", 1.0)}
        print(f"{label} readings after whole warp {pre:g} ({time.time() - t:.0f} s)",
              flush=True)
        Qp, ch = ml(PV)
        for s, w in first.items():
            if w[1] == pre:
                m = g == s
                Q[m], chosen[s] = Qp[m], (pre, ch[s])
    rec("vote4 ML whole then upper", Q, chosen)
    return out


def study_clip(ds, part, target: str, groups: str, label: str) -> dict:
    """The lone-clip fallback (per-clip features, no group normalisation) with a warp
    chosen per clip: every candidate's ``/clip`` variant (fitted once per fold, with the
    stage's per-clip copies) reads each held-out clip at the whole warps ``WHOLE`` (and
    the upper ones) and the reading its vote is most confident at is used for that clip."""
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    col = {c: i for i, c in enumerate(classes.tolist())}
    out: dict = {}
    views = [("w", 1.0)] + [("w", a) for a in WHOLE] + [("u", a) for a in UPPER]
    X = {}
    t = time.time()
    for kind, a in views:
        for c in ("stats", "sequence", "mlp"):
            X[(c, kind, a)] = build(c, reading(frames, kind, a), None, p, warp=a)[1]
    print(f"{label} per-clip features at {len(views)} readings ({time.time() - t:.0f} s)",
          flush=True)
    P = {}
    for c in MODEL_OF:
        t = time.time()
        fc = "stats" if c == "hgb" else c
        aug = _augment(c, frames, None, p, False)
        for v in views:
            P[(c, *v)] = np.zeros((len(y), len(classes)))
        for tr, te in splits:
            a_tr = _sub_augment(aug, tr)
            Xtr, ytr = X[(fc, "w", 1.0)][tr], y[tr]
            if a_tr is not None:
                Xtr, ytr = np.r_[Xtr, a_tr[0]], np.r_[ytr, ytr[a_tr[1]]]
            est = ClipClassifier(MODEL_OF[c]).fit(Xtr, ytr.astype(str))
            cols = [col[str(x)] for x in est.classes_]
            for v in views:
                P[(c, *v)][np.ix_(te, cols)] = est.predict_proba(X[(fc, *v)][te])
        print(f"{label} {c}/clip fitted and read ({time.time() - t:.0f} s)", flush=True)

    def rec(key: str, Q: np.ndarray) -> None:
        out[key] = float(np.mean(classes[Q.argmax(1)] == y))
        print(f"{label} {key:44s} {out[key]:.3f}", flush=True)

    def per_clip(PV: dict) -> np.ndarray:
        keys = list(PV)
        conf = np.stack([PV[k].max(1) for k in keys])  # (readings, clips)
        best = conf.argmax(0)
        return np.stack([PV[keys[b]][i] for i, b in enumerate(best)])

    for name, mem in (("ensemble/clip", list(MODEL_OF)),
                      ("ensemble-top2/clip (mlp+hgb)", ["mlp", "hgb"]),
                      *[(f"{c}/clip", [c]) for c in MODEL_OF]):
        vote = {v: np.mean([P[(c, *v)] for c in mem], 0) for v in views}
        rec(f"{name} at 1", vote[("w", 1.0)])
        rec(f"{name} per-clip ML whole", per_clip({v: vote[v] for v in views if v[0] == "w"}))
        rec(f"{name} per-clip ML whole+upper", per_clip(vote))
        for v in views[1:]:
            rec(f"{name} all at {v[0]}{v[1]:g}", vote[v])
    return out


def readings_combined() -> dict:
    """Other ways of using the readings, from the probabilities ``study`` saved (FSDD):
    the mean of each speaker's k most confident readings, every reading averaged (test-time
    augmentation), and readings weighted by ``exp(beta * n * mean log top probability)``
    (a soft maximum-likelihood choice, n the group's clips); and, as a bound, each
    speaker's best single reading chosen by his labels."""
    d = np.load(ROOT / "benchmarks" / "results" / "tune_classify_accent_fsdd.npz")
    y, g = d["y"], d["g"]
    classes = np.unique(y)
    views = [("w", 1.0)] + [("w", a) for a in WHOLE] + [("u", a) for a in UPPER]
    vote = {v: np.mean([d[f"{c}|{v[0]}{v[1]:g}"] for c in MODEL_OF], 0) for v in views}
    out = {}

    def conf(A: np.ndarray, m: np.ndarray) -> float:
        return float(np.mean(np.log(A[m].max(1) + 1e-9)))

    def combine(vs: list, k: int = 1, beta: float | None = None) -> np.ndarray:
        Q = np.zeros_like(vote[vs[0]])
        for s in np.unique(g):
            m = g == s
            if beta is None:
                top = sorted(vs, key=lambda v, m=m: -conf(vote[v], m))[:k]
                Q[m] = np.mean([vote[v][m] for v in top], 0)
            else:
                L = np.array([conf(vote[v], m) for v in vs]) * m.sum() * beta
                w = np.exp(L - L.max())
                Q[m] = sum(wi / w.sum() * vote[v][m] for wi, v in zip(w, vs, strict=True))
        return Q

    whole = [v for v in views if v[0] == "w"]
    rows = {f"mean of the {k} most confident, {n}": combine(vs, k)
            for k in (1, 2, 3) for n, vs in (("whole", whole), ("whole+upper", views))}
    rows.update({f"every reading averaged, {n}": np.mean([vote[v] for v in vs], 0)
                 for n, vs in (("whole", whole), ("whole+upper", views))})
    rows.update({f"soft ML beta {b:g}, {n}": combine(vs, beta=b) for b in (0.01, 0.03, 0.1,
                                                                           0.3, 1.0)
                 for n, vs in (("whole", whole), ("whole+upper", views))})
    for n, vs in (("whole", whole), ("whole+upper", views)):  # a bound: chosen by labels
        Q = np.zeros_like(vote[views[0]])
        for s in np.unique(g):
            m = g == s
            Q[m] = vote[max(vs, key=lambda v, m=m: int(np.sum(
                classes[vote[v][m].argmax(1)] == y[m])))][m]
        rows[f"each speaker's best reading by his labels, {n}"] = Q
    for key, Q in rows.items():
        out[key] = float(np.mean(classes[Q.argmax(1)] == y))
        print(f"fsdd tune vote4 {key:44s} {out[key]:.3f}", flush=True)
    return out


def main() -> None:
    if "--combined" in sys.argv:
        (ROOT / "benchmarks" / "results" / "tune_classify_accent_combined.json").write_text(
            json.dumps(readings_combined(), indent=2))
        return
    if "--clip" in sys.argv:
        warnings.simplefilter("ignore")
        res = {corpus: study_clip(ds, part, target, groups, f"{corpus} tune")
               for corpus, ds, part, target, groups in tuning_parts(TUNING_PARTS[:1])}
        write_results("tune_classify_accent_clip.json", res)
        return
    warnings.simplefilter("ignore")
    parts = TUNING_PARTS if "--esc" in sys.argv else TUNING_PARTS[:1]
    res = {corpus: study(ds, part, target, groups, f"{corpus} tune")
           for corpus, ds, part, target, groups in tuning_parts(parts)}
    write_results("tune_classify_accent.json", res)


if __name__ == "__main__":
    main()

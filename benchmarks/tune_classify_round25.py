"""Tuning (issue 12, round 25): giving the member trained with round 24's F2-lowered copies
more say where the vote splits between confusable classes, for classify on FSDD new
speakers, 2026-12-03.

Same fixed split as ``benchmarks/tune_classify.py`` (FSDD tuning speakers george, jackson,
lucas, leave-one-speaker-out; nicolas never looked at here; ``--esc``: the ESC-10 tuning
classes too); the stage's defaults otherwise (20 dB trim, group normalisation, warped
training copies, ``upper_warps``, ``test_warps`` read by maximum likelihood per group).
The numbers are recorded in that script's docstring (round 25). The members' out-of-fold
probabilities at every test-time warp are round 24's (:func:`tune_classify_round24.study`,
its cache ``benchmarks/results/r24_<corpus>_<member>.npz``); the *accent member* is
``sequence`` with round 24's ``strong`` and ``up`` copies beside the stage's
(:data:`ACCENT`). Every combination below is read per group at the warp its vote of the
four is most confident at (as the stage), the accent member at the same warp.

- ``arbiter``: where the vote's two best classes are a *confusable pair*, the vote plus
  ``w`` times the accent member decides between those two (``w`` inf: the accent member
  alone). Pairs: every pair (``all``), or those the vote of the four confuses at least
  ``m`` times in the out-of-fold predictions of the *other* speakers (the pairs a stage
  would read from its inner CV; here the other speakers' out-of-fold figures come from
  models that saw the held-out speaker, so the choice of pairs is a little optimistic).
- ``weighted``: the vote of the four with the accent member in place of ``sequence`` or
  beside it (five), the accent member weighted ``w`` (``ensemble-accent``).

Not landed (see round 25 in ``tune_classify.py``): the arbiter at m = 1 % of the other
folds' clips, put into the stage as the candidate ``ensemble-accent`` (commit 7f5e355 of
branch ``cls25``, reverted in the next), raised the stage's nested figure on the FSDD tuning
speakers by 7 clips of 1,500, one short of the rule's 8.

Run: ``python benchmarks/tune_classify_round25.py`` from the repository root (FSDD tuning
speakers; about 2 min on a busy machine without round 24's cache, seconds with it;
``--esc``: the ESC-10 tuning classes too); writes
``benchmarks/results/tune_classify_round25.json``. ``--stage`` (the stage with and without
``ensemble-accent``, both tuning parts, about 8 min; ``tune_classify_round25_stage.json``)
needs the stage of commit 7f5e355 (``git checkout 7f5e355 -- audiopipe``).
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
from tune_classify_round24 import study as round24_study  # noqa: E402

from audiopipe.stages.classify.model import most_confident_view  # noqa: E402

FOUR = ["stats", "sequence", "hgb", "mlp"]
#: ``sequence`` with round 24's F2-lowered (``strong``) and raised (``up``) copies
ACCENT = "sequence+mapstrong-all+mapup-all"
WEIGHTS = (0.5, 1.0, 2.0, 3.0, np.inf)
MIN_CONFUSIONS = (0, 3, 5, 10, 20)


def cached(label: str, var: str) -> dict[float, np.ndarray]:
    """A member's out-of-fold probabilities per test-time warp (round 24's cache)."""
    d = np.load(ROOT / "benchmarks" / "results" / f"r24_{label[:4]}_{var.replace('/', '_')}.npz")
    return {float(k): d[k] for k in d.files}


def confused_pairs(pred: np.ndarray, y: np.ndarray, m: int) -> set[frozenset]:
    """Pairs of classes read as each other at least ``m`` times (both ways summed)."""
    n: dict[frozenset, int] = {}
    for a, b in zip(y, pred, strict=True):
        if a != b:
            k = frozenset((a, b))
            n[k] = n.get(k, 0) + 1
    return {k for k, v in n.items() if v >= m}


def arbitrate(V: np.ndarray, A: np.ndarray, classes: np.ndarray, pairs: set | None,
              w: float) -> np.ndarray:
    """Predictions: the vote ``V``'s, except where its two best classes are a pair of
    ``pairs`` (None: any pair), where ``V + w A`` (``w`` inf: ``A``) decides between them."""
    top = np.argsort(-V, axis=1)[:, :2]
    pred = classes[V.argmax(1)].copy()
    for i, (a, b) in enumerate(top):
        if pairs is not None and frozenset((classes[a], classes[b])) not in pairs:
            continue
        s = A[i] if np.isinf(w) else V[i] + w * A[i]
        pred[i] = classes[a] if s[a] >= s[b] else classes[b]
    return pred


def score(out: dict, label: str, key: str, pred: np.ndarray, y, g) -> None:
    hit = pred == y
    out[key] = float(hit.mean())
    out[f"{key} clips"] = int(hit.sum())
    per = {s: round(float(hit[g == s].mean()), 3) for s in np.unique(g)}
    extra = ""
    if label.startswith("fsdd"):
        e24 = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
        e42 = int(np.sum((g == "lucas") & (y == "4") & (pred == "2")))
        out[f"{key} 2->4/4->2"] = [e24, e42]
        extra = f" 2->4 {e24} 4->2 {e42}"
    out[f"{key} per group"] = per
    print(f"{label} {key:42s} {hit.mean():.3f} ({int(hit.sum())}) "
          + " ".join(f"{s} {v:.3f}" for s, v in per.items()) + extra, flush=True)


def study(ds, part, target: str, groups: str, label: str) -> dict:
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)  # (its cache)
    round24_study(ds, part, target, groups, label, FOUR + [ACCENT])  # fills the cache
    P = {m: cached(label, m) for m in FOUR + [ACCENT]}
    out: dict = {}
    warps = list(P["stats"])
    V4 = {a: np.mean([P[m][a] for m in FOUR], 0) for a in warps}
    Q, chosen = most_confident_view(V4, g)
    A = np.empty_like(Q)
    for s, a in chosen.items():
        A[g == s] = P[ACCENT][a][g == s]
    pred4 = classes[Q.argmax(1)]
    score(out, label, "vote4 (the stage)", pred4, y, g)
    score(out, label, "accent member alone (at the vote's warp)", classes[A.argmax(1)], y, g)
    for w in WEIGHTS:  # the accent member weighted in the vote, everywhere
        if np.isinf(w):
            continue
        for name, mem in (("in place of sequence", [m for m in FOUR if m != "sequence"]),
                          ("beside the four", FOUR)):
            Vw = {a: (np.sum([P[m][a] for m in mem], 0) + w * P[ACCENT][a]) / (len(mem) + w)
                  for a in warps}
            score(out, label, f"weighted {name} w={w:g}",
                  classes[most_confident_view(Vw, g)[0].argmax(1)], y, g)
    for mc in MIN_CONFUSIONS:
        pairs = {}
        for s in np.unique(g):  # pairs from the other groups' out-of-fold confusions
            o = g != s
            pairs[s] = None if mc == 0 else confused_pairs(pred4[o], y[o], mc)
        if mc:
            print(f"  pairs confused >= {mc}: " + "; ".join(
                f"{s}: {sorted('/'.join(sorted(k)) for k in v)}" for s, v in pairs.items()))
        for w in WEIGHTS:
            pred = pred4.copy()
            for s in np.unique(g):
                m = g == s
                pred[m] = arbitrate(Q[m], A[m], classes, pairs[s], w)
            score(out, label, f"arbiter pairs>={mc} w={w:g}", pred, y, g)
    return out


def through_stage(ds, part, target: str, groups: str, label: str) -> dict:
    """The stage itself (``fit_select``, nested choice) on a tuning part, with the
    ``ensemble-accent`` candidate and without it (its copies switched off): nested
    accuracy, per group, each outer fold's choice, each variant's CV, time."""
    import audiopipe.stages.classify.select as S

    if not hasattr(S, "accent_copies"):
        raise SystemExit("--stage needs the stage with ensemble-accent: "
                         "git checkout 7f5e355 -- audiopipe (commit 7f5e355 of branch cls25)")
    ids, y, g, p, *_ = _part(ds, part, target, groups)
    out = {}
    real = S.accent_copies
    for key, fn in (("with ensemble-accent", real), ("without (round 22)", lambda *a: None)):
        S.accent_copies = fn
        t, cpu = time.time(), time.process_time()
        try:
            sel = S.fit_select(ds, ids, y, g, p)
        finally:
            S.accent_copies = real
        m = sel.metrics
        out[key] = {**m, "chosen": sel.bundle["candidate"], "why": sel.why,
                    "wall_s": round(time.time() - t), "cpu_s": round(time.process_time() - cpu)}
        nested = {k[len("nested_chosen["):-1]: int(v) for k, v in m.items()
                  if k.startswith("nested_chosen[") and v}
        cv = {k[len("cv_accuracy["):-1]: round(v, 3) for k, v in m.items()
              if k.startswith("cv_accuracy[") and "/clip" not in k}
        per = {k: round(v, 3) for k, v in m.items() if k.startswith("accuracy[")}
        print(f"{label} {key}: nested {m['accuracy']:.3f} ({int(round(m['accuracy'] * len(y)))})"
              f" {per} outer folds chose {nested}; chose {sel.bundle['candidate']}; CV {cv} "
              f"({out[key]['wall_s']} s wall, {out[key]['cpu_s']} s CPU)", flush=True)
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    if "--stage" in sys.argv:  # the candidate through the stage, both tuning parts
        res = {corpus: through_stage(ds, part, target, groups, f"{corpus} tune")
               for corpus, ds, part, target, groups in tuning_parts()}
        write_results("tune_classify_round25_stage.json", res)
        return
    parts = TUNING_PARTS if "--esc" in sys.argv else TUNING_PARTS[:1]
    res = {corpus: study(ds, part, target, groups, f"{corpus} tune")
           for corpus, ds, part, target, groups in tuning_parts(parts)}
    write_results("tune_classify_round25.json", res)


if __name__ == "__main__":
    main()

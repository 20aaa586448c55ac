"""Round 9 (issue 12 §2): beat-to-beat regularity as the S1/S2 identity cue, tuning parts only.

Systole (S1 -> S2) is nearly constant from beat to beat, while diastole (S2 -> next S1)
absorbs the heart rate's variation; :func:`audiopipe.stages.heart.identity.regularity_cue`
(the log ratio of the MADs of the decoded diastoles and systoles, timed at the sounds'
envelope peaks) rests on neither pitch, loudness nor systole < diastole, so it might hold at
115-120 bpm where those fail. Nothing in rounds 1-8 used it (no ``regular``, ``variab`` or
``arrhythm`` in the heart modules or benchmarks before this round).

On each split's tuning part only (``benchmarks/heart.py``: A = CirCor 85343 + PASCAL 1-5,
B = 85345 + PASCAL 6-10), decoded as ``heart_identity.py`` decodes (plain: a model trained
on the other tuning recordings; stress: round 7's conditions ``loud``, ``fast``,
``fast_loud``, by that model and by one trained without the recording's patient), each
base configuration (A: round 6's, the identity options off, and round 8's, ``identity_compare``
with spread weight 1; B: its configuration) alone and with each :data:`CANDIDATES`
(``identity_regularity_weight``: the cue added to the evidence; ``identity_regularity_margin``:
the cue decides alone when it exceeds the margin, otherwise the configured rule stands;
``+r8``: with round 8's cues). The models do not depend on the identity options, so each
recording's two models are fitted once per base and every candidate only decodes.

The rule (stated before the runs): a candidate holds on a split when no tuning recording
loses more than ``WORSE`` on the plain objective against the base, the stress objective
loses at most ``MARGIN`` and its worst part (CirCor or PASCAL over the conditions) at most
``MARGIN``. A candidate that holds on both splits (each from each base) may become the
estimator's default: the one with the largest stress gain summed over the bases, ties to
the simpler (weight before margin, larger margin first).

The rule as run: after the first table, round 4's confused-emission objective (the held-out
tuning recording decoded with S1 and S2 exchanged in the emission model, ``tune_heart.py``'s
``Confused``) was added to it (may lose at most ``MARGIN``), because the project's rule says a
default may not get worse under a benchmark's other conditions: weighed into the evidence,
the cue lost that test (below), which the first table did not show. The estimator's
defaults on the 16 recordings (``defaults``, as ``tune_heart.py --compare-identity`` scores
them) were added as a fourth base for the same reason.

The cue with the reference labels (both tuning parts, i.e. all 16 recordings; sounds timed
at the envelope peak within 50 ms of the reference): MAD ratio positive on 13, 0.00 on
85345_PV (systole and diastole both vary by ~4 ms: a clock-like heart), negative on
85343_TV (-0.20) and 201103151912 (-0.06); the standard deviation, interquartile range, mean
absolute deviation and the MAD of beat-to-beat differences were negative on 4, 3, 3 and 6,
so the MAD was taken. At 115-130 bpm (CirCor) the spreads are small (4-34 ms), at PASCAL's
slower rates larger (diastole up to 153 ms); 85345_AV +0.58.

Numbers (plain / confused / stress (worst part; swaps under stress); tuning recordings
made worse; holds). Split B (7 recordings, 42 stressed decodings): base 0.889 / 0.889 /
0.883 (0.872; 0); every candidate the same and holds except ``margin_0`` (the cue alone
decides: 85345_PV, cue -0.00 on a clock-like heart, swapped: plain 0.660) and
``margin_0+r8`` (stress 0.881). Split A from round 6's configuration (9 recordings, 54):
base 0.917 / 0.911 / 0.628 (0.156; 15); ``weight_0.5`` and ``weight_1`` 0.917 / 0.811 /
0.666 (0.156; 12), ``weight_2`` 0.917 / 0.811 / 0.679 (11): the confused 201103140822 (67
bpm, 5 cycles) is decoded as no clean swap and its path reads +0.39, so the check keeps it
(0.0); ``margin_0.5`` 0.917 / 0.911 / 0.648 (0.156; 13) holds; ``margin_0.3``, ``margin_0.2``
0.917 / 0.811 / 0.661 (12); ``margin_0`` 0.802 (85343_PV swapped) / 0.811 / 0.739; ``r8``
0.917 / 0.911 / 0.718 (0.331; 9) as round 8; ``weight_1+r8`` 0.917 / 0.911 / 0.734 (0.409;
8), ``weight_0.5+r8`` and ``margin_0.5+r8``/``0.3+r8`` as ``r8``, ``weight_2+r8`` 0.709,
``margin_0.2+r8`` 0.717, ``margin_0+r8`` 0.677. Split A from round 8's configuration: base
0.917 / 0.911 / 0.718 (0.331; 9); ``weight_1`` 0.917 / 0.911 / 0.734 (0.409; 8) holds,
``weight_0.5``, ``margin_0.5``, ``margin_0.3`` as base, ``margin_0.2`` 0.717, ``weight_2``
0.709 and ``margin_0`` 0.677 fail. The estimator's defaults on the 16 recordings: base
0.890 / 0.881 / 0.868 (0.819; 0); ``weight_0.5``, ``margin_0.5``, ``margin_0.3`` the same;
``weight_1``, ``weight_2`` confused 0.834; ``margin_0.2`` confused 0.834, stress 0.856;
``margin_0`` 0.815; ``r8`` confused 0.838, stress 0.852; ``weight_1+r8`` plain 0.887
(201103140132 worse). Only ``margin_0.5`` holds on all four bases: it became the estimator's
default (``identity_regularity_margin=0.5``, weight 0). Round 5's rate stress with it:
unchanged on every base (A 0.894 from either configuration, B 0.889, defaults 0.879;
``--elsewhere``). What the tuning parts say it does: the stress gain is split A's from round
6's configuration alone (0.628 -> 0.648, 15 -> 13 swaps); from round 8's and on split B it
never fires wrongly and never fires where the other cues had not already decided. The cue
cannot help a recording whose systole and diastole vary alike (85345_PV), nor a decoded
path that is no clean swap (the sound times are then not the heart's).

Run: ``python benchmarks/heart_regularity.py`` (writes ``benchmarks/results/heart_round9.json``;
reads the configurations from ``heart_tuning.json``: ``params_round6`` and ``params``).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from heart import RESULTS, load_circor, load_pascal, splits, train_refs  # noqa: E402
from heart_identity import CONDITIONS, StressEvaluator, _scores  # noqa: E402
from tune_heart import FEATURE_KEYS, MARGIN, Confused, Evaluator, _rate_stress  # noqa: E402

from audiopipe.stages.heart import HeartSegmenter  # noqa: E402

#: a tuning recording made worse by more than this (plain objective) breaks the rule
WORSE = 0.01
#: the identity options the models do not depend on (set on a fitted copy)
IDENTITY_KEYS = ("identity_check", "identity_margin", "identity_interval_weight",
                 "identity_spread_weight", "identity_width_weight", "identity_compare",
                 "identity_regularity_weight", "identity_regularity_margin")
R8 = {"identity_compare": True, "identity_spread_weight": 1.0}
CANDIDATES: dict[str, dict] = {
    **{f"weight_{w:g}": {"identity_regularity_weight": w} for w in (0.5, 1.0, 2.0)},
    **{f"margin_{m:g}": {"identity_regularity_margin": m} for m in (0.5, 0.3, 0.2, 0.0)},
}
CANDIDATES.update({f"{k}+r8": {**v, **R8} for k, v in list(CANDIDATES.items())})
CANDIDATES["r8"] = dict(R8)
#: the candidate taken (see the module docstring)
CHOSEN = "margin_0.5"
#: a base as configured before round 9 (whatever the estimator's defaults are now)
NO_REGULARITY = {"identity_regularity_weight": 0.0, "identity_regularity_margin": None}


class Round9(StressEvaluator):
    """Per-recording plain and stress scores; models fitted once per base."""

    def __init__(self, recs, guard: float) -> None:
        super().__init__(recs)
        self.guard = guard
        self._models: dict = {}

    def model(self, params: dict, i: int, patient_out: bool) -> HeartSegmenter:
        fit_params = {k: v for k, v in params.items() if k not in IDENTITY_KEYS}
        key = (json.dumps(fit_params, sort_keys=True), i, patient_out)
        if key not in self._models:
            F = self.features(params)
            refs = train_refs(self.recs, self.guard)
            r = self.recs[i]
            idx = [j for j, q in enumerate(self.recs)
                   if j != i and not (patient_out and q.group == r.group)]
            self._models[key] = HeartSegmenter(**params).fit_features(
                [F[j] for j in idx], [refs[j] for j in idx])
        seg = copy.copy(self._models[key])
        return seg.set_params(**{k: v for k, v in params.items() if k in IDENTITY_KEYS})

    def alt_features(self, params: dict, condition: str, i: int) -> np.ndarray:
        seg = HeartSegmenter(**params)
        key = (tuple(str(getattr(seg, k)) for k in FEATURE_KEYS), condition, i)
        if key not in self._alt_features:
            a = self.altered[condition][i]
            self._alt_features[key] = seg.envelopes(a.y, a.sr)
        return self._alt_features[key]

    def run(self, params: dict) -> dict:
        F = self.features(params)
        rows = {}
        for i, r in enumerate(self.recs):
            row = {}
            for cond in ("plain", "confused", *CONDITIONS):
                for po in ((False,) if cond in ("plain", "confused") else (False, True)):
                    seg = self.model(params, i, po)
                    if cond == "confused":  # round 4's test: S1/S2 emissions exchanged
                        seg.__class__ = Confused
                    a = r if cond in ("plain", "confused") else self.altered[cond][i]
                    Fi = (F[i] if cond in ("plain", "confused")
                          else self.alt_features(params, cond, i))
                    out = seg.analyse_features(Fi, len(a.y) / a.sr, y=a.y, sr=a.sr)
                    s, s_sw = _scores(a, out["segments"])
                    ident = out["identity"] or {}
                    row[cond + ("_patient_out" if po else "")] = {
                        "score": s, "swapped_vs_reference": bool(s_sw > s),
                        "identity_swapped": bool(ident.get("swapped", False)),
                        "regularity": ident.get("regularity", 0.0),
                        "evidence": ident.get("evidence", 0.0)}
            rows[r.name] = row
        return {"per_recording": rows, **summary(self.recs, rows)}


def _objective(recs, rows: dict, cond: str) -> tuple[float, float]:
    cc = [rows[r.name][cond]["score"] for r in recs if r.corpus == "circor"]
    pa = [rows[r.name][cond]["score"] for r in recs if r.corpus == "pascal"]
    return float(np.mean([np.mean(cc), np.mean(pa)])), float(min(np.mean(cc), np.mean(pa)))


def summary(recs, rows: dict) -> dict:
    conds = [c + s for c in CONDITIONS for s in ("", "_patient_out")]
    plain, plain_worst = _objective(recs, rows, "plain")
    st = [_objective(recs, rows, c) for c in conds]
    return {"plain": plain, "plain_worst": plain_worst,
            "confused": _objective(recs, rows, "confused")[0],
            "stress": float(np.mean([v for v, _ in st])),
            "stress_worst": float(min(w for _, w in st)),
            "swaps": int(sum(rows[r.name][c]["swapped_vs_reference"] for r in recs for c in conds)),
            "n": len(recs) * len(conds)}


def holds(row: dict, base: dict) -> tuple[bool, list[str]]:
    """The rule of the module docstring; also the recordings the candidate made worse."""
    worse = [n for n, v in row["per_recording"].items()
             if v["plain"]["score"] < base["per_recording"][n]["plain"]["score"] - WORSE]
    ok = (not worse and row["stress"] >= base["stress"] - MARGIN
          and row["stress_worst"] >= base["stress_worst"] - MARGIN
          and row["confused"] >= base["confused"] - MARGIN)
    return ok, worse


def bases(tuned: dict) -> dict[str, tuple[str, dict, float]]:
    """``{name: (part, params, pascal_guard_s)}``: split A's configuration before round 7
    (round 6's, identity options off) and its current one (round 8's), split B's, and
    (``all``, the 16 recordings) the estimator's defaults as ``tune_heart.py
    --compare-identity`` scores them; each without round 9's cue."""
    return {
        "A/round6": ("A", tuned["A"]["params_round6"], tuned["A"]["pascal_guard_s"]),
        "A/round8": ("A", tuned["A"]["params"], tuned["A"]["pascal_guard_s"]),
        "B": ("B", tuned["B"]["params"], tuned["B"]["pascal_guard_s"]),
        "defaults": ("all", HeartSegmenter().get_params(), 0.02),
    }


def elsewhere(part: list, params: dict, guard: float) -> dict:
    """Round 4's confused-emission objective and round 5's rate stress (``tune_heart``)."""
    ev, cfg = Evaluator(part), {**params, "pascal_guard_s": guard}
    confused, _ = ev.objective(cfg, confused=True)
    rate, _ = _rate_stress(ev, cfg)
    return {"confused": confused, "rate_stress": rate}


def main() -> None:
    """Every base with every candidate (``--elsewhere``: the :data:`CHOSEN` candidate
    against its base by :func:`elsewhere`); names on the command line run those bases only."""
    tuned = json.loads((RESULTS / "heart_tuning.json").read_text())
    circor, pascal = load_circor(), load_pascal()
    parts = {k: v["tune"] for k, v in splits(circor, pascal).items()}
    parts["all"] = circor + pascal
    todo = bases(tuned)
    only = [a for a in sys.argv[1:] if a in todo]
    path = RESULTS / "heart_round9.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    evs: dict = {}
    for bname, (split, params, guard) in todo.items():
        if only and bname not in only:
            continue
        params = {**params, **NO_REGULARITY}
        if "--elsewhere" in sys.argv:
            for cname, change in (("base", {}), (CHOSEN, CANDIDATES[CHOSEN])):
                e = elsewhere(parts[split], {**params, **change}, guard)
                res.setdefault(bname, {}).setdefault(cname, {})["elsewhere"] = e
                print(f"{bname} {cname}: confused {e['confused']:.4f} rate stress "
                      f"{e['rate_stress']:.4f}", flush=True)
            path.write_text(json.dumps(res, indent=1, default=float))
            continue
        if split not in evs:
            evs[split] = Round9(parts[split], guard)
        ev, out = evs[split], {}
        for cname, change in {"base": {}, **CANDIDATES}.items():
            t = time.time()
            out[cname] = {"change": change, **ev.run({**params, **change})}
            r = out[cname]
            ok, worse = holds(r, out["base"])
            r["holds"], r["worse"] = ok, worse
            print(f"{bname} {cname}: plain {r['plain']:.4f} (worst {r['plain_worst']:.4f}) "
                  f"confused {r['confused']:.4f} "
                  f"stress {r['stress']:.4f} (worst {r['stress_worst']:.4f}) swaps "
                  f"{r['swaps']}/{r['n']} worse {worse}{' holds' if ok else ''} "
                  f"({time.time() - t:.0f} s)", flush=True)
        res[bname] = out
        path.write_text(json.dumps(res, indent=1, default=float))
    print("wrote", path)


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        main()

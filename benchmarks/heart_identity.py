"""Round 7 (issue 12 §2): the S1/S2 identity under stress, on the tuning parts only.

Each split's tuning recordings (``benchmarks/heart.py``: A = CirCor 85343 + PASCAL 1-5,
B = 85345 + PASCAL 6-10) are altered the ways a new patient or site can differ from the
training recordings, and decoded as ``tune_heart.py``'s objective does (a model trained
on the other, unaltered, tuning recordings; and, as round 5, one trained without the
recording's patient, for CirCor the part's PASCAL recordings alone):

- ``loud``: S2 made 6 dB louder than S1 (the median band level of the reference S2
  intervals against S1's; :func:`audiopipe.stages.heart.augment.rescale_states` on the
  reference's S2 intervals): S2 is the louder sound at the aortic and pulmonic sites;
- ``fast``: every diastole shortened (its middle cut out, 10 ms crossfade) until S2 to
  the next S1 lasts 1.08 times S1 to S2, as at 115-120 bpm (0.26 against 0.24 s), where
  the durations no longer say which sound is S1; the references are moved with the cuts;
- ``fast_loud``: both (split A's held-out 85345_AV is like this).

The score of a condition is ``tune_heart``'s objective (CirCor frame accuracy, PASCAL
S1/S2 F in the annotated stretches) on the altered recordings, the mean of the two
trainings; ``swaps`` counts the decodings that score better with S1 and S2 exchanged
(frame accuracy, or the mean S1/S2 F). A remedy (:data:`REMEDIES`) is kept for a split
only if the mean over the conditions gains more than ``MARGIN`` and the plain objective
(unaltered tuning recordings) loses at most ``MARGIN`` (``tune_heart``'s rule).

What it found (candidates and numbers: ``tune_heart.py``'s round 7; held-out figures:
``heart.py``'s): split A's round-5 model swaps 3-4 of 9 tuning recordings when S2 is
louder; octave bands and emission weight 0.5 were taken (1-2 of 9); split B's swaps none
and kept its configuration.

Round 8 (``--round8``, :func:`round8`): round 6's and round 7's configurations as bases,
each alone and with the candidates of :data:`ROUND8` (the cues ``spread`` and ``width``, the
interval cue off, ``identity_compare``); round 7's remedies stay only if they gain more than
``MARGIN`` on both the plain and the stress objective; a candidate is taken if stress gains
more than ``MARGIN`` and neither plain nor the worst part of stress (CirCor or PASCAL over
the conditions) loses more than ``MARGIN``. Split A: round 6's configuration with
``identity_compare`` and spread weight 1 (stress 0.628 -> 0.718); split B: unchanged
(numbers: ``tune_heart.py``'s round 8).

Round 9 (beat-to-beat regularity as the identity cue) runs in ``heart_regularity.py`` on
round 7's stress conditions (:class:`StressEvaluator`), with models fitted once per base.

Run: ``python benchmarks/heart_identity.py [A|B] [--round8]`` (reads the configurations
from ``benchmarks/results/heart_tuning.json`` and writes the chosen ones back; writes
``benchmarks/results/heart_identity.json``, with ``--round8`` ``heart_round8.json`` and the
configuration before it as ``params_round7``; about 5 minutes per split, 5-10 with
``--round8``, which reruns from ``params_round7`` when the file has it).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from heart import RESULTS, Rec, load_circor, load_pascal, splits, train_refs  # noqa: E402
from tune_heart import FEATURE_KEYS, MARGIN, Evaluator  # noqa: E402

from audiopipe.stages.heart import (  # noqa: E402
    HeartSegmenter,
    frame_accuracy,
    points_to_intervals,
    sound_centres,
    sound_scores,
)
from audiopipe.stages.heart.augment import rescale_states, sound_levels  # noqa: E402

LOUD_DB = 6.0
FAST_RATIO = 1.08
CROSSFADE_S = 0.01
CONDITIONS = ("loud", "fast", "fast_loud")


def ref_intervals(rec: Rec) -> list[tuple]:
    """The recording's reference intervals (PASCAL: around its points, no guard)."""
    if rec.corpus == "circor":
        return list(rec.intervals)
    p = rec.points
    return points_to_intervals(np.r_[p["S1"], p["S2"]],
                               ["S1"] * len(p["S1"]) + ["S2"] * len(p["S2"]), guard_s=0.0)


def louder_s2(rec: Rec, db: float = LOUD_DB) -> Rec:
    """``rec`` with its reference S2 intervals rescaled so S2 is ``db`` dB above S1."""
    iv = ref_intervals(rec)
    lv = sound_levels(rec.y, rec.sr, iv)
    gain = db - (lv["S2"] - lv["S1"])
    return replace(rec, y=rescale_states(rec.y, rec.sr, iv, {"S2": gain}))


def _cuts(iv: list[tuple], ratio: float) -> list[tuple[float, float]]:
    """The middle part of each diastole to cut so S2-start to next S1-start is ``ratio``
    times the cycle's S1-start to S2-start."""
    iv = sorted(iv)
    s1 = [s for s, _, k in iv if k == "S1"]
    s2 = [s for s, _, k in iv if k == "S2"]
    out = []
    for a, b, k in iv:
        if k != "diastole":
            continue
        prev2 = [s for s in s2 if s <= a]
        nxt1 = [s for s in s1 if s >= b - 1e-9]
        if not prev2 or not nxt1:
            continue
        t2, t1n = prev2[-1], nxt1[0]
        prev1 = [s for s in s1 if s < t2]
        if not prev1:
            continue
        want = ratio * (t2 - prev1[-1])
        excess = (t1n - t2) - want
        room = (b - a) - 2 * CROSSFADE_S
        cut = min(excess, room)
        if cut > 0.02:
            mid = (a + b) / 2
            out.append((mid - cut / 2, mid + cut / 2))
    return out


def faster(rec: Rec, ratio: float = FAST_RATIO) -> Rec:
    """``rec`` with its diastoles shortened (:func:`_cuts`); references moved along."""
    cuts = _cuts(ref_intervals(rec), ratio)
    if not cuts:
        return rec
    sr, y = rec.sr, rec.y
    h = int(round(CROSSFADE_S * sr))
    fade = np.linspace(0.0, 1.0, h)
    pieces, pos = [], 0
    for c0, c1 in cuts:
        i0, i1 = int(round(c0 * sr)), int(round(c1 * sr))
        a = y[pos:i0].copy()
        a[-h:] = a[-h:] * fade[::-1] + y[i1 - h:i1] * fade
        pieces.append(a)
        pos = i1
    pieces.append(y[pos:])
    starts = np.array([c0 for c0, _ in cuts])
    lens = np.array([c1 - c0 for c0, c1 in cuts])

    def move(t: float) -> float:
        before = starts < t
        shift = float(lens[before].sum())
        # a time inside a cut lands at the cut
        inside = (starts < t) & (starts + lens > t)
        if inside.any():
            shift -= float(starts[inside][0] + lens[inside][0] - t)
        return t - shift

    if rec.corpus == "circor":
        new = replace(rec, intervals=[(move(s), move(e), k) for s, e, k in rec.intervals])
    else:
        new = replace(rec, points={k: np.array([move(t) for t in v])
                                   for k, v in rec.points.items()})
    return replace(new, y=np.concatenate(pieces))


def alter(rec: Rec, condition: str) -> Rec:
    if condition == "loud":
        return louder_s2(rec)
    if condition == "fast":
        return faster(rec)
    if condition == "fast_loud":
        return louder_s2(faster(rec))
    raise ValueError(condition)


def _scores(r: Rec, segs: list) -> tuple[float, float]:
    """(score, score with S1/S2 and systole/diastole exchanged)."""
    swap = {"S1": "S2", "S2": "S1", "systole": "diastole", "diastole": "systole"}
    segs2 = [(s, e, swap[k]) for s, e, k, *_ in segs]
    if r.corpus == "circor":
        return frame_accuracy(r.intervals, segs), frame_accuracy(r.intervals, segs2)
    out = []
    for sg in (segs, segs2):
        s = sound_scores(r.points, sound_centres(sg), window=0.1)
        out.append((s["f_S1"] + s["f_S2"]) / 2)
    return out[0], out[1]


class StressEvaluator(Evaluator):
    """``tune_heart.Evaluator`` with altered held-out recordings (training unaltered)."""

    def __init__(self, recs: list[Rec]) -> None:
        super().__init__(recs)
        self.altered = {c: [alter(r, c) for r in recs] for c in CONDITIONS}
        self._alt_features: dict[tuple, np.ndarray] = {}

    def stress(self, cfg: dict, condition: str, patient_out: bool,
               extra_train=None) -> tuple[float, dict]:
        params = {k: v for k, v in cfg.items() if k != "pascal_guard_s"}
        F = self.features(params)
        refs = train_refs(self.recs, cfg.get("pascal_guard_s", 0.0))
        seg0 = HeartSegmenter(**params)
        fkey = tuple(str(getattr(seg0, k)) for k in FEATURE_KEYS)
        acc, fs, swaps = [], [], []
        for i, r in enumerate(self.recs):
            idx = [j for j, q in enumerate(self.recs)
                   if j != i and not (patient_out and q.group == r.group)]
            Fs, Rs = [F[j] for j in idx], [refs[j] for j in idx]
            if extra_train is not None:
                aF, aR = extra_train(self, params, idx, refs)
                Fs, Rs = Fs + aF, Rs + aR
            seg = HeartSegmenter(**params).fit_features(Fs, Rs)
            a = self.altered[condition][i]
            key = (fkey, condition, i)
            if key not in self._alt_features:
                self._alt_features[key] = seg.envelopes(a.y, a.sr)
            segs = seg.analyse_features(self._alt_features[key], len(a.y) / a.sr, y=a.y,
                                        sr=a.sr)["segments"]
            s, s_swapped = _scores(a, segs)
            (acc if r.corpus == "circor" else fs).append(s)
            swaps.append(s_swapped > s)
        parts = {"circor_frame_accuracy": float(np.mean(acc)), "pascal_f_S1_S2": float(np.mean(fs)),
                 "swaps": int(np.sum(swaps)), "n": len(swaps)}
        return float(np.mean([parts["circor_frame_accuracy"], parts["pascal_f_S1_S2"]])), parts

    def plain(self, cfg: dict, extra_train=None) -> tuple[float, dict]:
        if extra_train is None:
            return self.objective(cfg)
        params = {k: v for k, v in cfg.items() if k != "pascal_guard_s"}
        F = self.features(params)
        refs = train_refs(self.recs, cfg.get("pascal_guard_s", 0.0))
        acc, fs = [], []
        for i, r in enumerate(self.recs):
            idx = [j for j in range(len(self.recs)) if j != i]
            aF, aR = extra_train(self, params, idx, refs)
            seg = HeartSegmenter(**params).fit_features([F[j] for j in idx] + aF,
                                                        [refs[j] for j in idx] + aR)
            segs = seg.analyse_features(F[i], len(r.y) / r.sr, y=r.y, sr=r.sr)["segments"]
            (acc if r.corpus == "circor" else fs).append(_scores(r, segs)[0])
        parts = {"circor_frame_accuracy": float(np.mean(acc)), "pascal_f_S1_S2": float(np.mean(fs))}
        return float(np.mean(list(parts.values()))), parts

    def all_stress(self, cfg: dict, extra_train=None, log=print) -> tuple[float, dict]:
        rows = {}
        for c in CONDITIONS:
            for po in (False, True):
                v, p = self.stress(cfg, c, po, extra_train)
                rows[f"{c}{'_patient_out' if po else ''}"] = {"objective": v, **p}
        mean = float(np.mean([v["objective"] for v in rows.values()]))
        log("    " + "; ".join(f"{k} {v['objective']:.3f} ({v['swaps']}/{v['n']} swapped)"
                               for k, v in rows.items()))
        return mean, rows


def run(split: str, remedies: dict[str, tuple[dict, object]], base: dict | None = None,
        log=print) -> dict:
    """Each remedy against the split's configuration (with ``base``'s changes: a second
    step on top of a remedy already kept)."""
    tuned = json.loads((RESULTS / "heart_tuning.json").read_text())[split]
    cfg = {**tuned["params"], "pascal_guard_s": tuned["pascal_guard_s"], **(base or {})}
    recs = splits(load_circor(), load_pascal())[split]["tune"]
    ev = StressEvaluator(recs)
    out = {}
    for name, (change, extra) in {"configured": ({}, None), **remedies}.items():
        t = time.time()
        trial = {**cfg, **change}
        plain, pp = ev.plain(trial, extra)
        log(f"  {split} {name}: plain {plain:.4f} {pp}")
        stress, rows = ev.all_stress(trial, extra, log)
        log(f"  {split} {name}: stress {stress:.4f} ({time.time() - t:.0f} s)")
        out[name] = {"change": change, "plain": plain, "plain_parts": pp, "stress": stress,
                     "conditions": rows}
    base = out["configured"]
    for name, row in out.items():
        row["kept"] = bool(name != "configured" and row["plain"] >= base["plain"] - MARGIN
                           and row["stress"] > base["stress"] + MARGIN)
    return out


def augmented(params: dict) -> object:
    """Training-time augmentation for :class:`StressEvaluator`: the ``augment`` copies
    ``HeartSegmenter.fit`` adds (:meth:`~HeartSegmenter.augmented_envelopes`, the same
    seeds: the recording's index in the training list is its position in the part),
    features cached per recording."""
    cache: dict = {}

    def extra(ev: StressEvaluator, p: dict, idx: list[int], refs: list) -> tuple[list, list]:
        seg = HeartSegmenter(**p)
        fkey = tuple(str(getattr(seg, k)) for k in (*FEATURE_KEYS, "augment", "augment_db"))
        Fs, Rs = [], []
        for n, j in enumerate(idx):
            r = ev.recs[j]
            # fit() seeds a copy by the recording's position in its training list
            key = (fkey, j, n)
            if key not in cache:
                cache[key] = seg.augmented_envelopes(r.y, r.sr, refs[j], n)
            Fs += cache[key]
            Rs += [refs[j]] * len(cache[key])
        return Fs, Rs

    return extra


REMEDIES: dict[str, tuple[dict, object]] = {
    "identity_pitch_heavier": ({"identity_interval_weight": 0.5}, None),
    "identity_margin_0": ({"identity_margin": 0.0}, None),
    "bands": ({"bands": True}, None),
    "bands_log_local": ({"bands": True, "log_features": True, "normalise": "local"}, None),
    "shape": ({"shape": True}, None),
    "log": ({"log_features": True}, None),
    "local": ({"normalise": "local"}, None),
    "emission_weight_0.5": ({"emission_weight": 0.5}, None),
    "emission_weight_0.3": ({"emission_weight": 0.3}, None),
}
for _n, _db in ((2, 6.0), (2, 10.0), (4, 6.0)):
    _p = {"augment": _n, "augment_db": _db}
    REMEDIES[f"augment_{_n}x{_db:g}dB"] = (_p, augmented(_p))


def choose(split: str, log=print) -> dict:
    """Greedy steps from the split's configuration: every remedy of :data:`REMEDIES` not yet
    in it is scored on top of it; a remedy qualifies if the plain objective loses at most
    ``MARGIN`` and the stress objective gains more than ``MARGIN`` (against the
    configuration of that step); the qualifying remedy of the best stress objective is
    taken and the next step starts from it; no qualifying remedy ends the search."""
    tuned = json.loads((RESULTS / "heart_tuning.json").read_text())[split]
    cfg = {**tuned["params"], "pascal_guard_s": tuned["pascal_guard_s"]}
    recs = splits(load_circor(), load_pascal())[split]["tune"]
    ev = StressEvaluator(recs)
    taken: list[str] = []
    steps = []
    while True:
        extra = next((REMEDIES[n][1] for n in taken if REMEDIES[n][1] is not None), None)
        plain, pp = ev.plain(cfg, extra)
        stress, rows = ev.all_stress(cfg, extra, log)
        log(f"  {split} step {len(steps) + 1} from {taken or 'the configuration'}: "
            f"plain {plain:.4f} stress {stress:.4f}")
        step = {"from": list(taken), "plain": plain, "plain_parts": pp, "stress": stress,
                "conditions": rows, "candidates": {}}
        best = None
        for name, (change, ex) in REMEDIES.items():
            if name in taken or all(cfg.get(k) == v for k, v in change.items()) and ex is None:
                continue
            if ex is not None and extra is not None:
                continue  # one augmentation at a time
            trial = {**cfg, **change}
            e = ex if ex is not None else extra
            t = time.time()
            p, tpp = ev.plain(trial, e)
            st, trows = ev.all_stress(trial, e, log)
            ok = p >= plain - MARGIN and st > stress + MARGIN
            log(f"  {split} {name}: plain {p:.4f} stress {st:.4f}{' qualifies' if ok else ''} "
                f"({time.time() - t:.0f} s)")
            step["candidates"][name] = {"change": change, "plain": p, "plain_parts": tpp,
                                        "stress": st, "conditions": trows, "qualifies": ok}
            if ok and (best is None or st > step["candidates"][best]["stress"]):
                best = name
        steps.append(step)
        if best is None:
            break
        taken.append(best)
        cfg = {**cfg, **REMEDIES[best][0]}
        log(f"  {split} -> {best}")
    return {"taken": taken, "params": {k: v for k, v in cfg.items() if k != "pascal_guard_s"},
            "steps": steps}


#: round 8's candidates: identity cues that do not rest on the centroid
#: (:mod:`audiopipe.stages.heart.identity`), scored on top of each base configuration
ROUND8: dict[str, dict] = {
    "spread_1": {"identity_spread_weight": 1.0},
    "width_1": {"identity_width_weight": 1.0},
    "spread_width_1": {"identity_spread_weight": 1.0, "identity_width_weight": 1.0},
    # the decoded path's interval cue follows the decoder's systole, which the rate
    # estimate keeps at most half the period: on a swapped path it still says "in place"
    "interval_0": {"identity_interval_weight": 0.0},
    "interval_0_spread_1": {"identity_interval_weight": 0.0, "identity_spread_weight": 1.0},
    "interval_0_width_1": {"identity_interval_weight": 0.0, "identity_width_weight": 1.0},
    "interval_0_spread_width_1": {"identity_interval_weight": 0.0,
                                  "identity_spread_weight": 1.0, "identity_width_weight": 1.0},
    "interval_0_spread_0.5": {"identity_interval_weight": 0.0, "identity_spread_weight": 0.5},
}
# the same with the swapped path decoded and judged by its own cues (identity_compare)
ROUND8.update({f"compare_{k}": {**v, "identity_compare": True} for k, v in list(ROUND8.items())})
ROUND8["compare"] = {"identity_compare": True}


def _worst(parts: dict) -> float:
    return float(min(parts["circor_frame_accuracy"], parts["pascal_f_S1_S2"]))


def round8(split: str, log=print) -> dict:
    """Round 8 on the split's tuning part: the configuration before round 7's remedies
    (``params_round6``) and after (``params``) as bases, each alone and with every
    :data:`ROUND8` candidate: plain and stress objective (mean of CirCor and PASCAL, and
    the worse of the two: ``*_worst``; for stress, the worse over the conditions too).

    The rule (stated before the runs): round 7's richer configuration stays only if it
    beats the simpler one by more than ``MARGIN`` on both the plain and the stress
    objective; then a cue is taken (the best stress first) if the stress objective gains
    more than ``MARGIN``, its worst part loses at most ``MARGIN`` and the plain objective
    loses at most ``MARGIN``."""
    tuned = json.loads((RESULTS / "heart_tuning.json").read_text())[split]
    r7 = tuned.get("params_round7", tuned["params"])  # a second run starts from the same
    bases = {"round7": r7}
    if tuned.get("params_round6", r7) != r7:
        bases = {"round6": tuned["params_round6"], **bases}
    recs = splits(load_circor(), load_pascal())[split]["tune"]
    ev = StressEvaluator(recs)
    out: dict = {}
    for bname, params in bases.items():
        for cname, change in {"base": {}, **ROUND8}.items():
            cfg = {**params, "pascal_guard_s": tuned["pascal_guard_s"], **change}
            t = time.time()
            plain, pp = ev.plain(cfg)
            stress, rows = ev.all_stress(cfg, None, log)
            worst = float(min(_worst(v) for v in rows.values()))
            row = {"change": change, "plain": plain, "plain_worst": _worst(pp),
                   "plain_parts": pp, "stress": stress, "stress_worst": worst,
                   "swaps": int(sum(v["swaps"] for v in rows.values())),
                   "n": int(sum(v["n"] for v in rows.values())), "conditions": rows}
            out[f"{bname}/{cname}"] = row
            log(f"  {split} {bname}/{cname}: plain {plain:.4f} (worst {row['plain_worst']:.4f}) "
                f"stress {stress:.4f} (worst {worst:.4f}) swaps {row['swaps']}/{row['n']} "
                f"({time.time() - t:.0f} s)")
    base = "round7"
    if "round6" in bases:
        r6, r7 = out["round6/base"], out["round7/base"]
        rich = (r7["plain"] > r6["plain"] + MARGIN and r7["stress"] > r6["stress"] + MARGIN)
        base = "round7" if rich else "round6"
    ref = out[f"{base}/base"]
    ok = [c for c in ROUND8 if (r := out[f"{base}/{c}"])["stress"] > ref["stress"] + MARGIN
          and r["stress_worst"] >= ref["stress_worst"] - MARGIN
          and r["plain"] >= ref["plain"] - MARGIN]
    taken = max(ok, key=lambda c: out[f"{base}/{c}"]["stress"]) if ok else None
    params = {**bases[base], **(ROUND8[taken] if taken else {})}
    log(f"  {split} round 8: base {base}, cue {taken or 'none'}")
    return {"base": base, "taken": taken, "params": params, "rows": out}


def _write(name: str, todo: list[str], run: Callable[[str], dict], backup: str,
           note: Callable[[dict], dict]) -> None:
    """``run(split)`` for each split, kept in ``results/<name>`` and taken into
    ``heart_tuning.json``: its ``params`` (the previous ones kept as ``backup``) and
    ``note(result)`` under the result file's round key."""
    path, tpath = RESULTS / name, RESULTS / "heart_tuning.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    for split in todo:
        res[split] = run(split)
        path.write_text(json.dumps(res, indent=1, default=float))
        tuned = json.loads(tpath.read_text())
        tuned[split].setdefault(backup, tuned[split]["params"])
        tuned[split]["params"] = res[split]["params"]
        tuned[split].update(note(res[split]))
        tpath.write_text(json.dumps(tuned, indent=1))
    print("wrote", path, tpath)


def main() -> None:
    """``choose`` on the named splits (default both); writes ``heart_identity.json`` and
    the chosen configurations into ``heart_tuning.json`` (``params``; the round-6
    configuration kept as ``params_round6``); ``--round8`` the same with :func:`round8`
    (``heart_round8.json``, the previous configuration kept as ``params_round7``)."""
    todo = [a for a in sys.argv[1:] if a in ("A", "B")] or ["A", "B"]
    if "--round8" in sys.argv:
        _write("heart_round8.json", todo, round8, "params_round7",
               lambda r: {"round8": {"base": r["base"], "taken": r["taken"]}})
        return
    _write("heart_identity.json", todo, choose, "params_round6",
           lambda r: {"identity_stress": {"taken": r["taken"]}})


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        main()

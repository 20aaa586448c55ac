"""Tuning (issue 12, round 24): training copies that imitate a back /u:/ (the second
formant region moved down) and formant-style features of the voiced part, for classify on
FSDD new speakers, 2026-12-02.

Same fixed split as ``benchmarks/tune_classify.py`` (FSDD tuning speakers george, jackson,
lucas, leave-one-speaker-out; nicolas never looked at here; ``--esc``: the ESC-10 tuning
classes too, for the members whose features change); the stage's defaults otherwise
(20 dB trim, group normalisation, warped training copies, ``upper_warps``, ``test_warps``
read by maximum likelihood per group as the stage). The numbers are recorded in that
script's docstring (round 24). Every member variant is fitted once per fold (with the
stage's copies and its own) and predicts each held-out group at every test-time warp; the
vote of the four with the variant in place of its member (``vote4``) is read per group at
its most confident warp (:func:`~audiopipe.stages.classify.model.most_confident_view`, as
the stage), and at warp 1.

- ``map``: training copies whose log-mel bands (and MFCCs, through the DCT) are re-read by
  a piecewise-linear frequency map that keeps the bands below a knot and moves the region
  of a fronted /u:/'s F2 (1.3-2.5 kHz) down toward a back one's (under 1.1 kHz):
  :data:`MAPS` (output knots, input knots; Hz). Given to every clip (``all``), or to the
  clips of "two" only (``two``: a diagnostic, it reads which digit has the accent; such
  copies are normalised with the rest of their speaker's clips, unmapped, so that their
  own mean is not taken out).
- ``fmt``: formant-style features of the voiced nucleus (the trimmed frames whose power
  below 1 kHz is within 10 dB of the clip's loudest, as round 21): per frame the
  power-weighted mean log frequency of the log-mel bands in 200-1000 Hz (F1-like) and in
  800-2500 Hz (F2-like) and the level of the second region over the first (dB); per clip
  their mean, 10/50/90th percentiles and the nucleus resampled to 4 steps; standardised
  within the group as the other columns and repeated ``w`` times (their weight in the RBF
  distance: the classifiers standardise every column, so scaling would not do), appended
  to ``stats`` / ``sequence`` / ``hgb``'s clip features.

Not landed (see round 24 in ``tune_classify.py``): the stage's nested CV on the tuning
speakers did not rise. ``+fmt`` members compute the formant statistics here (the helper's
stage module is not in the package); ``stats`` / ``hgb`` are the stage's members.
``--members a,b,...`` scores only those (``/clip``: per-clip features, no readings); each
member's probabilities are cached in ``benchmarks/results/r24_<corpus>_<member>.npz``
(delete them after changing the package).

Run: ``python benchmarks/tune_classify_round24.py`` from the repository root (FSDD tuning
speakers, about 10 min on a busy machine; ``--esc``: the ESC-10 tuning classes too);
writes ``benchmarks/results/tune_classify_round24.json``.
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
from tune_classify_nucleus import band_centres, nucleus_bounds  # noqa: E402

from audiopipe.stages._clipfeatures import band_reading_matrix  # noqa: E402
from audiopipe.stages._frames import time_normalize  # noqa: E402
from audiopipe.stages.classify.candidates import MODEL_OF, Frames, build  # noqa: E402
from audiopipe.stages.classify.model import (  # noqa: E402
    ClipClassifier,
    most_confident_view,
    oof_proba_views,
    standardize_within,
)
from audiopipe.stages.classify.select import CLIP, UPPER_WARP_HZ  # noqa: E402

#: piecewise-linear frequency maps of the copies: name -> (output knots, input knots), Hz
#: (an output band at f reads the input spectrum at ``interp(f, out, in)``)
MAPS = {
    "strong": ((0, 600, 1100, 4000), (0, 600, 2000, 4000)),  # F2 1.7 kHz -> 0.94 kHz
    "mild": ((0, 700, 1300, 4000), (0, 700, 2000, 4000)),  # F2 1.7 kHz -> 1.16 kHz
    "xstrong": ((0, 500, 1000, 4000), (0, 500, 2200, 4000)),  # F2 1.7 kHz -> 0.85 kHz
    "up": ((0, 600, 2000, 4000), (0, 600, 1100, 4000)),  # the inverse of strong
}
F1_BAND, F2_BAND = (200.0, 1000.0), (800.0, 2500.0)


def mapped_mel_matrix(c: np.ndarray, out_k, in_k) -> np.ndarray:
    """``(n, n)`` map re-reading mel bands (centres ``c``, Hz) at ``interp(f, out_k, in_k)``
    (applies to frames as ``a @ M.T``)."""
    return band_reading_matrix(c, np.interp(c, out_k, in_k))


class Mapped(Frames):
    """Frames whose log-mel and MFCC frames are re-read by a frequency map (clips of
    ``mask`` only; the others as they are), after any warp asked for."""

    def __init__(self, base: Frames, out_k, in_k, mask: np.ndarray | None = None) -> None:
        import audiopipe.features as F

        self.__dict__.update(base.__dict__)  # (the frame cache is shared, not copied)
        self.base, self.mask = base, mask
        self.M = {"melspectrogram": mapped_mel_matrix(band_centres(base), out_k, in_k)}
        m = base.recipe["compute"]["mfcc"]
        c = F.mel_frequencies(n_mels=int(m["n_mels"]) + 2, fmin=float(m.get("fmin") or 0.0),
                              fmax=float(m.get("fmax") or base.recipe["sr"] / 2))[1:-1]
        D = F.dct_matrix(n_out=int(m["n_mfcc"]), n_in=int(m["n_mels"])).astype(np.float64)
        Mm = D @ mapped_mel_matrix(c, out_k, in_k) @ D.T  # (lifter 0 in the FSDD recipe)
        for f in ("mfcc", "mfcc_delta", "mfcc_delta2"):
            self.M[f] = Mm

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        fr = self.base.get(feature, warp, above)
        M = self.M.get(feature)
        if M is None:
            return fr
        return [a @ M.T if len(a) and (self.mask is None or self.mask[i]) else a
                for i, a in enumerate(fr)]


def formant_raw(frames: Frames, warp: float = 1.0, above: float = 0.0) -> np.ndarray:
    """Per clip: F1-/F2-like centroids (log Hz) and their level difference over the voiced
    nucleus: mean, p10, p50, p90 and 4 time steps of each (24 columns)."""
    c = band_centres(frames)
    b1 = (c >= F1_BAND[0]) & (c < F1_BAND[1])
    b2 = (c >= F2_BAND[0]) & (c < F2_BAND[1])
    lc = np.log(c)
    mel = frames.get("melspectrogram", warp, above)
    nb = nucleus_bounds(frames)
    rows = []
    for a, (n0, n1), (t0, t1) in zip(mel, nb, frames.bounds(), strict=True):
        a = np.asarray(a, np.float64)
        a = a[n0:n1] if n1 > n0 else a[t0:t1] if t1 > t0 else a
        if len(a) == 0:
            rows.append(np.zeros(24))
            continue
        pw = 10 ** ((a - a.max()) / 10)
        e1, e2 = pw[:, b1].sum(1) + 1e-12, pw[:, b2].sum(1) + 1e-12
        tr = np.c_[(pw[:, b1] * lc[b1]).sum(1) / e1, (pw[:, b2] * lc[b2]).sum(1) / e2,
                   10 * np.log10(e2 / e1)]
        q = np.percentile(tr, [10, 50, 90], axis=0)
        rows.append(np.r_[tr.mean(0), q.ravel(), time_normalize(tr, 4).ravel()])
    return np.nan_to_num(np.asarray(rows))


def feats(var: str, fr: Frames, g, p, warp: float = 1.0, above: float = 0.0) -> np.ndarray:
    """Group-normalised clip features of member variant ``var`` (``stats``, ``sequence``,
    ``mlp``, or one of them with ``+fmt<w>``: the formant features appended, weight w)."""
    base = var.split("+")[0].removesuffix(CLIP)
    fc = "stats" if base == "hgb" else base
    _, X, names = build(fc, fr, g, p, warp=warp, warp_above=above if fc == "sequence" else 0.0)
    # the clip statistics as before round 24 (the stage's own formant columns, "...#k", out)
    X = X[:, [k for k, n in enumerate(names) if "#" not in n]]
    if "+fmt" in var:
        # weight w: the columns repeated w times (the classifiers standardise every column)
        w = int(var.split("+fmt")[1].split("+")[0] or 1)
        X = np.c_[X, np.tile(standardize_within(formant_raw(fr, warp, above), g), w)]
    return X


def copies(var: str, frames: Frames, y, g, p) -> tuple[np.ndarray, np.ndarray] | None:
    """Training copies (rows, source clip) of a member variant: the stage's (``stats``:
    whole warps; ``sequence``: whole and upper warps; ``hgb``, ``mlp``: none) and, with
    ``+map<name>-<all|two>``, copies re-read by the frequency map ``MAPS[name]``."""
    base = var.split("+")[0]
    n = len(y)
    specs = []
    if base in ("stats", "sequence"):
        specs += [(frames, float(a), 0.0, f"{a}", None) for a in p["warps"]]
    if base == "sequence":
        specs += [(frames, float(a), UPPER_WARP_HZ, f"up{a:g}", None) for a in p["upper_warps"]]
    for tok in var.split("+")[1:]:
        if tok.startswith("map"):
            name, who = tok[3:].split("-")
            mask = None if who == "all" else (y == "2")
            specs.append((Mapped(frames, *MAPS[name], mask), 1.0, 0.0, f"map{name}{who}", mask))
    if not specs:
        return None
    rows, src = [], []
    for fr, a, above, tag, mask in specs:
        ga = None if g is None else np.asarray([f"{v}@{tag}" for v in g], dtype=object)
        X = feats(var, fr, ga, p, a, above)
        keep = np.arange(n) if mask is None else np.flatnonzero(mask)
        rows.append(X[keep])
        src.append(keep)
    return np.concatenate(rows), np.concatenate(src)


def study(ds, part, target: str, groups: str, label: str, members: list[str]) -> dict:
    ids, y, g, p, frames, splits, classes = _part(ds, part, target, groups)
    tw = [float(a) for a in p["test_warps"]]
    gw = {a: np.asarray([f"{v}@tt{a}" for v in g], dtype=object) for a in tw}
    out: dict = {}
    P: dict[str, dict[float, np.ndarray]] = {}
    for var in members:
        t = time.time()
        base = var.split("+")[0].removesuffix(CLIP)
        clip = var.endswith(CLIP)  # per-clip features: no group normalisation, no readings
        cache = ROOT / "benchmarks" / "results" / f"r24_{label[:4]}_{var.replace('/', '_')}.npz"
        cache.parent.mkdir(parents=True, exist_ok=True)  # (absent on a fresh checkout)
        if cache.exists():  # (a member's probabilities of an earlier run of this script)
            d = np.load(cache)
            P[var] = {float(k): d[k] for k in d.files}
        else:
            v0 = var.removesuffix(CLIP)
            X = feats(v0, frames, None if clip else g, p)
            views = {} if clip else {a: feats(v0, frames, gw[a], p, a) for a in tw}
            aug = copies(v0, frames, y, None if clip else g, p)
            P[var] = oof_proba_views(ClipClassifier(MODEL_OF[base]), X, y, splits, classes,
                                     augment=aug, views=views)
            np.savez_compressed(cache, **{str(k): v for k, v in P[var].items()})
        rec(out, label, var, P[var], y, g, classes)
        print(f"  ({time.time() - t:.0f} s)", flush=True)
    four = ["stats", "sequence", "hgb", "mlp"]
    votes = {"vote4 (the stage)": four}
    for tok in sorted({v[len(v.split("+")[0]):] for v in members
                       if "+" in v and not v.endswith(CLIP)}):
        mem = [f"{m}{tok}" if m in ("stats", "hgb") else m for m in four]
        if all(m in P for m in mem) and sum(m not in four for m in mem) == 2:
            votes[f"vote4 stats,hgb{tok}"] = mem  # as the stage would: hgb reads stats' columns
    for suffix in (CLIP,):  # per-clip variants: the vote of all, and of the best two
        fam = [m for m in P if m.endswith(suffix)]
        bases = [f"{m}{suffix}" for m in four]
        if all(m in P for m in bases):
            for tok in sorted({m.removesuffix(suffix)[len(m.split("+")[0]):]
                               for m in fam if "+" in m}):
                alt = [f"{m}{tok}{suffix}" if f"{m}{tok}{suffix}" in P else f"{m}{suffix}"
                       for m in four]
                for name, mem in ((f"vote4{suffix}", bases), (f"vote4{tok}{suffix}", alt)):
                    acc = {m: float(np.mean(classes[P[m][1.0].argmax(1)] == y)) for m in mem}
                    top2 = sorted(mem, key=lambda m: -acc[m])[:2]
                    votes[name] = mem
                    votes[f"{name} top2 ({'+'.join(top2)})"] = top2
    for var in members:
        base = var.split("+")[0]
        if var not in four and base in four and not var.endswith(CLIP):
            votes[f"vote4 {var}"] = [var if m == base else m for m in four]
    # every changed member at once, one combination per kind of change
    for tok in sorted({v[len(v.split("+")[0]):] for v in members
                       if "+" in v and not v.endswith(CLIP)}):
        mem = [f"{m}{tok}" if f"{m}{tok}" in P else m for m in four]
        if sum(m not in four for m in mem) > 1:
            votes[f"vote4 all{tok}"] = mem
        mem = [f"{m}{tok}" if m in ("stats", "sequence") else m for m in four]
        if sum(m not in four for m in mem) > 1 and mem != votes.get(f"vote4 all{tok}"):
            votes[f"vote4 stats,sequence{tok}"] = mem
    for name, mem in votes.items():
        if all(m in P for m in mem):
            V = {a: np.mean([P[m][a] for m in mem], 0) for a in P[mem[0]]}
            rec(out, label, f"{name} at 1", {1.0: V[1.0]}, y, g, classes)
            rec(out, label, name, V, y, g, classes)
    return out


def rec(out: dict, label: str, key: str, PV: dict, y, g, classes) -> None:
    """Accuracy (per group at its most confident view), per group, george's "two" read
    as "four" and lucas's "four" as "two" (FSDD)."""
    Q, chosen = most_confident_view(PV, g)
    pred = classes[Q.argmax(1)]
    hit = pred == y
    out[key] = float(hit.mean())
    out[f"{key} clips"] = int(hit.sum())
    extra = ""
    if label.startswith("fsdd"):
        per = {s: float(hit[g == s].mean()) for s in np.unique(g)}
        out[f"{key} per group"] = per
        e24 = int(np.sum((g == "george") & (y == "2") & (pred == "4")))
        e42 = int(np.sum((g == "lucas") & (y == "4") & (pred == "2")))
        out[f"{key} 2->4/4->2"] = [e24, e42]
        out[f"{key} warps"] = {str(k): float(v) for k, v in chosen.items()}
        extra = (" ".join(f"{s} {v:.3f}" for s, v in per.items()) + f" 2->4 {e24} 4->2 {e42}"
                 + f" {out[f'{key} warps']}")
    print(f"{label} {key:40s} {out[key]:.3f} ({int(hit.sum())}) {extra}", flush=True)


#: the member variants tried on FSDD (the four as the stage first)
FSDD_MEMBERS = [
    "stats", "sequence", "hgb", "mlp",
    "sequence+mapstrong-all", "sequence+mapmild-all", "sequence+mapstrong-two",
    "stats+mapstrong-all", "stats+mapstrong-two",
    "stats+fmt1", "stats+fmt3", "sequence+fmt1", "sequence+fmt2", "hgb+fmt1",
    # second pass (after the first's figures)
    "mlp+mapstrong-all", "hgb+mapstrong-all", "sequence+mapxstrong-all",
    "stats+mapxstrong-all", "sequence+mapstrong-all+mapup-all",
    "stats+mapstrong-all+mapup-all", "stats+fmt4", "sequence+fmt4",
    "stats+fmt1+mapstrong-all", "sequence+fmt1+mapstrong-all",
]


def main() -> None:
    warnings.simplefilter("ignore")
    members = FSDD_MEMBERS
    if "--members" in sys.argv:
        members = sys.argv[sys.argv.index("--members") + 1].split(",")
    parts = {"--esc": TUNING_PARTS, "--esc-only": TUNING_PARTS[1:]}.get(
        next((a for a in sys.argv if a.startswith("--esc")), ""), TUNING_PARTS[:1])
    res = {corpus: study(ds, part, target, groups, f"{corpus} tune",
                         [m for m in members if corpus == "fsdd" or "two" not in m])
           for corpus, ds, part, target, groups in tuning_parts(parts)}
    write_results("tune_classify_round24.json", res)


if __name__ == "__main__":
    main()

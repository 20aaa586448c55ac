"""classify's ``ensemble-accent``: the soft vote, with a pairwise arbiter trained on accent
copies deciding where the vote's two best classes are a pair it confuses.

FSDD tuning speakers (``benchmarks/tune_classify_round24.py`` / ``_round25.py``): george's
"two" has a back /u:/ (F2 under 1 kHz), the other speakers' a fronted one (F2 near
1.7 kHz), and the vote reads it as "four", sure of it. ``sequence`` trained with copies
whose spectrum between 600 Hz and 4 kHz is re-read so that the F2 region of a fronted
/u:/ moves down to a back one's (:data:`MAPS` ``strong``) and up again (``up``) reads
him right alone, but is outvoted. The *arbiter* is that member: where the vote's two
best classes are a pair the vote confuses in the cross-validation (its out-of-fold
predictions of the other folds, at least :data:`PAIR_SHARE` of their clips), the arbiter
decides between those two; elsewhere the vote stands.

Examples
--------
>>> import numpy as np
>>> V = np.array([[0.5, 0.4, 0.1], [0.5, 0.4, 0.1]])
>>> A = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
>>> arbitrate(V, A, np.array([0, 1, 2]), {frozenset((0, 1))}).argmax(1).tolist()
[1, 1]
>>> arbitrate(V, A, np.array([0, 1, 2]), set()).argmax(1).tolist()
[0, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audiopipe.stages.classify.candidates import Frames, build

#: the accent copies' frequency maps: name -> (output knots, input knots), Hz; an output
#: band at f reads the spectrum at ``interp(f, out, in)``, above the last knot unchanged
MAPS = {
    "strong": ((0.0, 600.0, 1100.0, 4000.0), (0.0, 600.0, 2000.0, 4000.0)),  # F2 1.7 -> 0.94
    "up": ((0.0, 600.0, 2000.0, 4000.0), (0.0, 600.0, 1100.0, 4000.0)),  # its inverse
}
#: a pair of classes is confusable when the vote reads one as the other (both ways) in at
#: least this share of the other folds' clips (FSDD tuning speakers, round 25: 1 %)
PAIR_SHARE = 0.01
#: the arbiter's member (``sequence`` with the accent copies beside its own)
ARBITER = "sequence+accent"


def map_matrix(recipe: dict[str, Any], out_k: tuple, in_k: tuple) -> np.ndarray | None:
    """Linear map of MFCC vectors re-reading the mel bands at ``interp(f, out_k, in_k)``
    (bands above the last knot unchanged): ``D M D^T`` with the lifter undone and redone,
    as :func:`~audiopipe.stages._clipfeatures.warp_matrix`. None without MFCCs.

    Examples
    --------
    >>> rec = {"sr": 8000, "compute": {"mfcc": {"n_mfcc": 13, "n_mels": 40}}}
    >>> bool(np.allclose(map_matrix(rec, (0, 4000), (0, 4000)), np.eye(13), atol=1e-5))
    True
    """
    import audiopipe.features as F
    from audiopipe.stages._clipfeatures import band_reading_matrix

    m = (recipe.get("compute") or {}).get("mfcc")
    if m is None or "sr" not in recipe:
        return None
    n_mfcc, n_mels = int(m.get("n_mfcc", 20)), int(m.get("n_mels", 128))
    fmax = float(m.get("fmax") or recipe["sr"] / 2)
    c = F.mel_frequencies(n_mels=n_mels + 2, fmin=float(m.get("fmin") or 0.0), fmax=fmax,
                          htk=bool(m.get("htk", False)))[1:-1]
    src = np.where(c <= out_k[-1], np.interp(c, out_k, in_k), c)
    lifter = float(m.get("lifter") or 0.0)
    L = np.ones(n_mfcc)
    if lifter > 0:
        L = 1 + (lifter / 2) * np.sin(np.pi * np.arange(1, n_mfcc + 1) / lifter)
    D = F.dct_matrix(n_out=n_mfcc, n_in=n_mels).astype(np.float64)
    return (L[:, None] * D) @ band_reading_matrix(c, src) @ (D.T / L[None, :])


class MappedFrames(Frames):
    """``frames`` with their MFCC-family frames re-read through ``M`` (the frame cache is
    shared, not copied; other features as they are)."""

    def __init__(self, frames: Frames, M: np.ndarray) -> None:
        self.__dict__.update(frames.__dict__)
        self._base, self._M = frames, M

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        fr = self._base.get(feature, warp, above)
        if not feature.startswith("mfcc"):
            return fr
        return [a @ self._M.T if len(a) else a for a in fr]


def accent_copies(frames: Frames, g: np.ndarray | None,
                  p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The accent copies of ``sequence``'s features (rows, source clip): every clip read
    through each map of :data:`MAPS`, normalised within group x map; None when the
    recipe has no MFCC or the band range does not reach the maps' knots."""
    rec = frames.recipe
    if float(rec.get("sr") or 0.0) / 2 < max(k[0][-1] for k in MAPS.values()):
        return None
    blocks = []
    for name, (out_k, in_k) in MAPS.items():
        M = map_matrix(rec, out_k, in_k)
        if M is None:
            return None
        ga = None if g is None else np.asarray([f"{v}@{name}" for v in g], dtype=object)
        blocks.append(build("sequence", MappedFrames(frames, M), ga, p)[1])
    n = len(frames.ids)
    return np.concatenate(blocks), np.tile(np.arange(n), len(blocks))


def confusable(pred: np.ndarray, y: np.ndarray, share: float = PAIR_SHARE) -> set[frozenset]:
    """Pairs of classes read as each other (both ways summed) in at least ``share`` of
    the clips (and at least twice).

    Examples
    --------
    >>> sorted(map(sorted, confusable(np.array([1, 0, 0, 2]), np.array([0, 1, 0, 2]), 0.5)))
    [[0, 1]]
    """
    n: dict[frozenset, int] = {}
    for a, b in zip(np.asarray(y).tolist(), np.asarray(pred).tolist(), strict=True):
        if a != b:
            n[frozenset((a, b))] = n.get(frozenset((a, b)), 0) + 1
    need = max(2.0, share * len(y))
    return {k for k, v in n.items() if v >= need}


def arbitrate(V: np.ndarray, A: np.ndarray, classes: np.ndarray,
              pairs: set[frozenset]) -> np.ndarray:
    """The vote's probabilities ``V``, except where its two best classes are one of
    ``pairs``: there their summed probability is split between them as the arbiter's
    ``A`` splits it (so the arbiter decides between them; the rows still sum to 1)."""
    Q = np.array(V, dtype=np.float64, copy=True)
    if not pairs or len(classes) < 2:
        return Q
    top = np.argsort(-Q, axis=1, kind="stable")[:, :2]
    for i, (a, b) in enumerate(top):
        if frozenset((classes[a], classes[b])) in pairs:
            s, t = Q[i, a] + Q[i, b], A[i, a] + A[i, b]
            wa = A[i, a] / t if t > 0 else 0.5
            Q[i, a], Q[i, b] = s * wa, s * (1 - wa)
    return Q


def at_vote_warp(vote: dict[float, np.ndarray], arbiter: dict[float, np.ndarray] | None,
                 g: np.ndarray | None) -> tuple[np.ndarray, Any, dict[Any, float]]:
    """The vote's and the arbiter's probabilities (None without one), each group read at
    the warp its vote is most confident at (:func:`~.model.most_confident_view`), and
    those warps."""
    from audiopipe.stages.classify.model import most_confident_view

    Q, chosen = most_confident_view(vote, g)
    if arbiter is None:
        return Q, None, chosen
    A = arbiter[1.0].copy()
    for grp, a in chosen.items():
        m = np.asarray(g, dtype=object) == grp
        A[m] = arbiter[a][m]
    return Q, A, chosen


def arbiter_oof(vote: dict[float, np.ndarray], arbiter: dict[float, np.ndarray],
                g: np.ndarray | None, y: np.ndarray, folds: list, classes: np.ndarray,
                ) -> tuple[np.ndarray, dict[Any, float]]:
    """Out-of-fold ``ensemble-accent`` probabilities and each group's warp
    (:func:`at_vote_warp`); each fold's pairs are those the vote confuses in the other
    folds' clips (:func:`confusable`), as a fit takes them from all its clips."""
    Q, A, chosen = at_vote_warp(vote, arbiter, g)
    pred = classes[Q.argmax(1)]
    out = Q.copy()
    for _, te in folds:
        rest = np.setdiff1d(np.arange(len(y)), te)
        out[te] = arbitrate(Q[te], A[te], classes, confusable(pred[rest], y[rest]))
    return out, chosen

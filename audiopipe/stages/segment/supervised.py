"""Supervised segmentation: frame classifier + sticky-HMM smoothing → labelled segments.

Standardised frame features plus their moving average over ``context_s`` go into a
class-balanced logistic regression; its posteriors (divided by the class priors: scaled
likelihoods) are smoothed by a sticky HMM decoded with the stages' one Viterbi decoder
(:mod:`audiopipe.stages._viterbi`), staying with ``1 - hop_s / min_duration_s``.
:func:`out_of_fold_segments` segments labelled clips by clip-level K-fold CV, warning
(:class:`SegmentWarning`) about a fold whose training part lacks labels of its test part.

Examples
--------
>>> import numpy as np
>>> labels_to_segments(np.array(["a", "a", "b"]), 0.5)
[(0.0, 1.0, 'a', 1.0), (1.0, 1.5, 'b', 1.0)]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiopipe.stages._viterbi import viterbi

__all__ = [
    "sticky_transition", "labels_to_segments", "FrameSegmenter", "SegmentWarning",
    "out_of_fold_segments",
]


class SegmentWarning(UserWarning):
    """A degenerate input the segmenter can still run on (said, never silent)."""


def sticky_transition(n_states: int, p_stay: float) -> np.ndarray:
    """Transition matrix staying with ``p_stay``, switching uniformly otherwise."""
    if n_states == 1:
        return np.ones((1, 1))
    A = np.full((n_states, n_states), (1.0 - p_stay) / (n_states - 1))
    np.fill_diagonal(A, p_stay)
    return A


def labels_to_segments(
    labels: np.ndarray, hop_s: float, confidence: np.ndarray | None = None
) -> list[tuple[float, float, str, float]]:
    """Runs of equal frame labels → ``(start_s, end_s, label, mean confidence)``."""
    labels = np.asarray(labels)
    out: list[tuple[float, float, str, float]] = []
    if labels.size == 0:
        return out
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, labels.size]
    for s, e in zip(starts, ends, strict=True):
        c = float(np.mean(confidence[s:e])) if confidence is not None else 1.0
        out.append((float(s * hop_s), float(e * hop_s), str(labels[s]), c))
    return out


def _context(X: np.ndarray, width: int) -> np.ndarray:
    """Frames with their moving average over ``width`` frames appended."""
    if width <= 1 or len(X) == 0:
        return np.c_[X, X]
    k = np.ones(width) / width
    pad = np.pad(X, ((width // 2, width - 1 - width // 2), (0, 0)), mode="edge")
    sm = np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(X.shape[1])], axis=1)
    return np.c_[X, sm]


class FrameSegmenter(BaseEstimator):
    """Frame classification + sticky-HMM Viterbi smoothing → labelled segments.

    Parameters
    ----------
    hop_s : float, default 512 / 22050
        Seconds per frame.
    context_s : float, default 0.5
        Moving-average context appended to every frame.
    min_duration_s : float, default 1.0
        Expected shortest segment; the HMM stays with ``1 - hop_s / min_duration_s``.
    C : float, default 1.0
    max_train_frames : int, default 20000
        Frames sampled (with ``random_state``) to train the frame classifier.
    random_state : int, default 0

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (100, 3)), rng.normal(2, 1, (100, 3))]
    >>> y = np.array(["a"] * 100 + ["b"] * 100)
    >>> seg = FrameSegmenter(hop_s=0.05).fit([X], [y])
    >>> [(s, e, lab) for s, e, lab, _ in seg.predict_segments(X)]
    [(0.0, 5.0, 'a'), (5.0, 10.0, 'b')]
    """

    def __init__(
        self,
        hop_s: float = 512 / 22050,
        context_s: float = 0.5,
        min_duration_s: float = 1.0,
        C: float = 1.0,
        max_train_frames: int = 20000,
        random_state: int = 0,
    ) -> None:
        self.hop_s = hop_s
        self.context_s = context_s
        self.min_duration_s = min_duration_s
        self.C = C
        self.max_train_frames = max_train_frames
        self.random_state = random_state

    def _width(self) -> int:
        return max(1, int(round(self.context_s / self.hop_s)))

    def fit(self, frames: list[np.ndarray], labels: list[np.ndarray]) -> FrameSegmenter:
        """``frames``: per clip ``(n_frames, n_dims)``; ``labels``: per clip frame labels."""
        X = np.concatenate([_context(np.asarray(f, np.float64), self._width()) for f in frames])
        y = np.concatenate([np.asarray(lab).astype(str) for lab in labels])
        if len(np.unique(y)) < 2:
            raise ValueError("need at least 2 frame labels to fit a segmenter")
        rng = np.random.default_rng(self.random_state)
        if len(y) > self.max_train_frames:
            keep = np.sort(rng.choice(len(y), self.max_train_frames, replace=False))
            X, y = X[keep], y[keep]
        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, class_weight="balanced", max_iter=500)
        )
        self.model_.fit(X, y)
        self.classes_ = self.model_.classes_
        self.log_prior_ = np.log(np.bincount(np.searchsorted(self.classes_, y)) / len(y))
        return self

    def predict_proba(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, np.float64)
        if len(frames) == 0:
            return np.zeros((0, len(self.classes_)))
        return self.model_.predict_proba(_context(frames, self._width()))

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Smoothed frame labels of one clip."""
        P = self.predict_proba(frames)
        if len(P) == 0:
            return np.zeros(0, dtype=self.classes_.dtype)
        p_stay = float(np.clip(1.0 - self.hop_s / self.min_duration_s, 0.5, 0.9999))
        ll = np.log(P + 1e-12) - self.log_prior_  # scaled likelihoods
        path = viterbi(ll, np.log(sticky_transition(len(self.classes_), p_stay)))
        return self.classes_[path]

    def predict_segments(self, frames: np.ndarray) -> list[tuple[float, float, str, float]]:
        """``(start_s, end_s, label, confidence)`` of one clip."""
        P = self.predict_proba(frames)
        lab = self.predict(frames)
        conf = P[np.arange(len(lab)), np.searchsorted(self.classes_, lab)] if len(lab) else None
        return labels_to_segments(lab, self.hop_s, conf)


def out_of_fold_segments(
    seg: FrameSegmenter,
    frames: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    n_splits: int,
    random_state: int = 0,
    notes: list[str] | None = None,
) -> dict[str, list]:
    """Segments of every clip of ``labels`` by a copy of ``seg`` fitted on the other folds.

    Clip-level K-fold (``min(n_splits, clips)`` folds, at least 2, shuffled with
    ``random_state``; fewer than 2 clips: ``ValueError``). A fold whose training part has no
    frames of a label its test clips have is warned about (:class:`SegmentWarning`, as
    classify warns): those frames cannot be predicted (they get other labels, typically the
    background) and the CV scores count them as errors. Each warning's text is also appended
    to ``notes`` when given (the stage lists them in its run report).
    """
    ids = list(labels)
    if len(ids) < 2:
        raise ValueError(f"out-of-fold segments need at least 2 labelled clips, got {len(ids)}")
    k = max(2, min(n_splits, len(ids)))
    order = np.random.default_rng(random_state).permutation(len(ids))
    folds = np.empty(len(ids), dtype=int)
    folds[order] = np.arange(len(ids)) % k
    oof: dict[str, list] = {}
    for f in range(k):
        tr = [c for c, g in zip(ids, folds, strict=True) if g != f]
        te = [c for c, g in zip(ids, folds, strict=True) if g == f]
        have = {str(x) for c in tr for x in np.unique(labels[c])}
        miss = sorted({str(x) for c in te for x in np.unique(labels[c])} - have)
        if miss:
            note = (
                f"segment: fold {f}: its training part has no frames of "
                f"{', '.join(map(repr, miss))}; its {len(te)} test clip(s) cannot be given "
                "those labels (they get others, e.g. the background) and the CV scores count "
                "those frames as errors: a fold whose training part lacks classes of its test "
                "part (give more clips of those labels)"
            )
            if notes is not None:
                notes.append(note)
            warnings.warn(note, SegmentWarning, stacklevel=2)
        m = FrameSegmenter(**seg.get_params()).fit([frames[c] for c in tr], [labels[c] for c in tr])
        for c in te:
            oof[c] = m.predict_segments(frames[c])
    return oof

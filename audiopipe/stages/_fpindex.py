"""The landmark index of :mod:`audiopipe.stages.fingerprint`: sorted hashes with (clip,
time) postings, offset voting, and the calibrated confidence of a match.

Examples
--------
>>> import numpy as np
>>> idx = FingerprintIndex.from_arrays(
...     np.array([5, 5, 9]), np.array([0, 3, 1]), np.array([0, 1, 0]), ["a", "b"])
>>> len(idx), idx.match(np.array([5, 9]), np.array([0, 1]))["votes"]
(3, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SR", "HOP_LENGTH", "CONF_COEF", "CONF_COEFS", "MIN_CONFIDENCE", "confidence",
           "confidence_features", "FingerprintIndex"]

#: analysis rate and hop of the landmark spectrogram (one frame = 23.2 ms)
SR = 11025
HOP_LENGTH = 256
#: default ``min_confidence``: "more likely right than wrong"; above the 0.235 that keeps tuning
#: non-member false positives at 0.5 % (see the fingerprint module docstring)
MIN_CONFIDENCE = 0.5
#: logistic calibration of :func:`confidence` (intercept, log1p votes, log1p runner-up),
#: fitted on tuning queries by ``benchmarks/tune_fingerprint.py``
CONF_COEF = (-7.595, 13.068, -12.978)
#: the calibration per peak neighbourhood ``(f_sd, t_sd)`` of the index (round 3 fitted
#: ``f_sd=2``'s on its own tuning queries); other shapes use :data:`CONF_COEF`
CONF_COEFS: dict[tuple[int, int], tuple[float, float, float]] = {
    (5, 2): CONF_COEF,
    (2, 2): (-10.76500, 10.30348, -8.84473),
}


def confidence_features(votes: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """``(n, 2)`` features of :func:`confidence`: ``log1p(votes)``, ``log1p(runner_up)``."""
    v = np.asarray(votes, np.float64)
    r = np.asarray(runner_up, np.float64)
    return np.stack([np.log1p(v), np.log1p(r)], axis=-1)


def confidence(
    votes: int, runner_up: int, coef: tuple[float, float, float] = CONF_COEF
) -> float:
    """Estimated probability that a best match of ``votes`` aligned hashes, against a best
    other clip of ``runner_up``, is the right recording.

    A logistic model of ``log1p(votes)`` and ``log1p(runner_up)`` fitted on tuning queries
    (about half of indexed recordings, clean and at 0 dB white noise and babble, half of
    non-members); the fitted model is nearly a function of ``(1 + votes) / (1 + runner_up)``:
    the runner-up measures how high chance alignments reach for this query in this index.

    Examples
    --------
    >>> confidence(40, 5) > 0.99, confidence(8, 7) < 0.1
    (True, True)
    """
    if votes <= 0:
        return 0.0
    x = confidence_features(np.array([votes]), np.array([runner_up]))[0]
    z = coef[0] + coef[1] * x[0] + coef[2] * x[1]
    return float(1.0 / (1.0 + np.exp(-z)))


class FingerprintIndex:
    """Inverted landmark index: sorted hashes with (clip, time) postings.

    Parameters
    ----------
    min_votes : int
        Fewest aligned hashes for a match.
    min_confidence : float
        Lowest confidence for a match (see the module docstring).

    Attributes
    ----------
    peak_params : dict
        Peak-shape parameters the index was built with (``fingerprint.PEAK_PARAMS``; empty:
        the defaults): its queries are analysed with them, and its confidence uses their
        calibration (:data:`CONF_COEFS`).

    Examples
    --------
    >>> idx = FingerprintIndex.from_arrays(
    ...     np.array([5, 5, 9]), np.array([0, 3, 1]), np.array([0, 1, 0]), ["a", "b"])
    >>> len(idx)
    3
    """

    def __init__(
        self,
        min_votes: int = 8,
        min_confidence: float = MIN_CONFIDENCE,
        peak_params: dict[str, Any] | None = None,
    ) -> None:
        self.min_votes = min_votes
        self.min_confidence = min_confidence
        self.peak_params: dict[str, Any] = dict(peak_params or {})
        shape = (int(self.peak_params.get("f_sd", 5)), int(self.peak_params.get("t_sd", 2)))
        self.coef = CONF_COEFS.get(shape, CONF_COEF)

    @classmethod
    def from_arrays(
        cls,
        hashes: np.ndarray,
        times: np.ndarray,
        clips: np.ndarray,
        clip_ids: Sequence[str],
        **params: Any,
    ) -> FingerprintIndex:
        """Build from parallel arrays; ``clips`` indexes into ``clip_ids``."""
        self = cls(**params)
        hashes = np.asarray(hashes, np.int64)
        o = np.lexsort((np.asarray(times), np.asarray(clips), hashes))  # same index, any row order
        self.hashes_ = hashes[o]
        self.times_ = np.asarray(times, np.int64)[o]
        self.clips_ = np.asarray(clips, np.int64)[o]
        self.clip_ids_ = list(clip_ids)
        frames = np.zeros(len(self.clip_ids_), np.int64)  # offsets a clip offers: its length
        if self.clips_.size:
            np.maximum.at(frames, self.clips_, self.times_ + 1)
        self.clip_frames_ = frames
        return self

    @classmethod
    def from_table(cls, table: Any, **params: Any) -> FingerprintIndex:
        """Build from a ``fingerprints`` table (hash, clip_id, t)."""
        # (read from Arrow's buffers: neither pandas nor pyarrow.compute is imported)
        from audiopipe.store.tables import column_to_numpy, string_codes

        if table.num_rows == 0:
            return cls.from_arrays(np.zeros(0), np.zeros(0), np.zeros(0), [], **params)
        names, codes = string_codes(table.column("clip_id"))  # clips numbered in id order
        return cls.from_arrays(
            column_to_numpy(table.column("hash")),
            column_to_numpy(table.column("t")),
            codes,
            names,
            **params,
        )

    def __len__(self) -> int:
        return int(self.hashes_.size)

    def match(self, hashes: np.ndarray, times: np.ndarray) -> dict[str, Any]:
        """Best clip and offset for query landmarks.

        Returns a dict with ``clip_id`` (None when no match), ``offset_s`` (where the
        query starts in the clip), ``confidence`` in [0, 1], ``votes`` (aligned hashes)
        and ``runner_up`` (votes of the best competing clip or offset).
        """
        none = {"clip_id": None, "offset_s": None, "confidence": 0.0, "votes": 0, "runner_up": 0}
        hashes = np.asarray(hashes, np.int64)
        times = np.asarray(times, np.int64)
        if hashes.size == 0 or len(self) == 0:
            return none
        lo = np.searchsorted(self.hashes_, hashes, side="left")
        hi = np.searchsorted(self.hashes_, hashes, side="right")
        n = hi - lo
        if n.sum() == 0:
            return none
        q = np.repeat(np.arange(hashes.size), n)
        pos = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        clip = self.clips_[pos]
        off = self.times_[pos] - times[q]
        span = int(off.max() - off.min()) + 3
        key = clip * span + (off - off.min() + 1)
        # a vote is a distinct hash value: stationary sounds (a held tone, a hum) repeat the
        # same hash at every frame and would otherwise pile up votes at any offset
        kh = np.unique(key << 21 | hashes[q]) >> 21  # (key, hash) pairs, hashes < 2^21
        uk, cnt = np.unique(kh, return_counts=True)
        # votes in a ±1 frame window (queries are not aligned to the hop)
        win = cnt.astype(np.int64).copy()
        for d in (-1, 1):
            j = np.searchsorted(uk, uk + d)
            j = np.minimum(j, uk.size - 1)
            win += np.where(uk[j] == uk + d, cnt[j], 0)
        best = int(np.argmax(win))  # first of ties: lowest clip, earliest offset
        votes = int(win[best])
        bk = int(uk[best])
        c = bk // span
        # runner-up: the best offset of any other clip (a clip that repeats itself, e.g. a
        # loop, has several good offsets; that makes the offset ambiguous, not the clip)
        other = uk // span != c
        runner = int(win[other].max()) if np.any(other) else 0
        conf = confidence(votes, runner, self.coef)
        offset_frames = bk % span - 1 + int(off.min())
        # refine the offset: vote-weighted mean of the three frames around the peak
        nb = np.array([bk - 1, bk, bk + 1])
        jj = np.minimum(np.searchsorted(uk, nb), uk.size - 1)
        w = np.where(uk[jj] == nb, cnt[jj], 0).astype(float)
        offset_frames = offset_frames + float((w * np.array([-1, 0, 1])).sum() / max(w.sum(), 1))
        out = {
            "clip_id": self.clip_ids_[c],
            "offset_s": offset_frames * HOP_LENGTH / SR,
            "confidence": conf,
            "votes": votes,
            "runner_up": runner,
        }
        if votes < self.min_votes or conf < self.min_confidence:
            out["clip_id"] = None
        return out

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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SR", "HOP_LENGTH", "FINE_FFT", "CONF_COEF", "CONF_COEFS", "MIN_CONFIDENCE", "confidence",
           "confidence_features", "FingerprintIndex"]

#: analysis rate and hop of the landmark spectrogram (one frame = 23.2 ms)
SR = 11025
HOP_LENGTH = 256
#: default ``min_confidence``: "more likely right than wrong"; above the thresholds that keep
#: tuning non-member false positives at 0.5 % (0.31, 0.235, 0.12 in rounds 1-2, 3 and 4)
MIN_CONFIDENCE = 0.5
#: FFT size of the fingerprint's second landmark layer (round 6; 0: none)
FINE_FFT = 2048
#: logistic calibration of :func:`confidence` (intercept, log1p score, log1p runner-up
#: score), fitted on tuning queries by ``benchmarks/tune_fingerprint.py --weighting`` (two
#: indexes, short queries, query-weighted votes; round 6: two landmark layers, f_sd 2;
#: round 4's, one layer, (-21.2345, 10.3701, -4.2683); round 3's (-7.595, 13.068, -12.978))
CONF_COEF = (-35.5149, 16.3157, -7.5325)
#: the calibration per peak shape ``(f_sd, t_sd, fine_fft)`` of the index (each fitted on
#: its own tuning queries; ``fine_fft`` 0: indexes built before round 6); other shapes use
#: :data:`CONF_COEF`
CONF_COEFS: dict[tuple[int, int, int], tuple[float, float, float]] = {
    (2, 2, FINE_FFT): CONF_COEF,
    (5, 2, FINE_FFT): (-25.5405, 11.8660, -4.6900),  # round 6, the ±5 candidate
    (5, 2, 0): (-21.2345, 10.3701, -4.2683),  # round 4 (the default until round 6)
    (2, 2, 0): (-30.7504, 15.7426, -7.6946),  # round 4 (round 3: (-10.765, 10.303, -8.845))
}


def confidence_features(score: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """``(n, 2)`` features of :func:`confidence`: ``log1p(score)``, ``log1p(runner_up)``."""
    v = np.asarray(score, np.float64)
    r = np.asarray(runner_up, np.float64)
    return np.stack([np.log1p(v), np.log1p(r)], axis=-1)


def confidence(
    score: float, runner_up: float, coef: tuple[float, float, float] = CONF_COEF
) -> float:
    """Estimated probability that a best match of ``score`` (weighted aligned hashes, see
    :meth:`FingerprintIndex.match`), against a best other clip of ``runner_up``, is the
    right recording.

    A logistic model of ``log1p(score)`` and ``log1p(runner_up)`` fitted on tuning queries
    (about half of indexed recordings, clean and at 0 dB white noise and babble; non-members,
    among them short whole clips; against the split's index and against its music alone).
    Round 3's fit was nearly a function of ``(1 + votes) / (1 + runner_up)``, which made a
    few chance votes of a short query (8 against 3) 0.96 sure; round 4's asks for a large
    score too (the runner-up measures how high chance alignments reach in this index).

    Examples
    --------
    >>> confidence(40, 5) > 0.99, confidence(8, 7) < 0.1
    (True, True)
    """
    if score <= 0:
        return 0.0
    x = confidence_features(np.array([score]), np.array([runner_up]))[0]
    z = coef[0] + coef[1] * x[0] + coef[2] * x[1]
    return float(1.0 / (1.0 + np.exp(-z)))


#: how a (clip, offset) bin weighs a hash that the query holds at several times (see
#: :meth:`FingerprintIndex.match`); "none" (each distinct hash one vote) was rounds 1-3's
VOTE_WEIGHTING = "query"
#: the weightings :func:`vote_weights` knows (``benchmarks/tune_fingerprint.py --weighting``)
WEIGHTINGS = ("none", "query", "qsqrt", "queryj", "queryt", "anchor", "anchorq")


def vote_weights(mode: str, hashes: np.ndarray, qi: np.ndarray, times: np.ndarray | None = None,
                 key: np.ndarray | None = None) -> np.ndarray:
    """Weight of the votes of query landmarks ``qi`` (indices into the query's ``hashes``).

    ``"query"``: ``1 / n`` for a hash the query holds at ``n`` anchor times: a stationary or
    repetitive sound repeats its hashes, each copy another chance to meet a repeated pattern
    of a track at the same offset, and those meetings are one piece of evidence, not ``n``.
    ``"qsqrt"``: ``1 / sqrt(n)``; ``"queryj"``: ``1 / n`` counting near-repeats too (f1, df
    and dt each within ±1; ``"queryt"``: dt only); ``"anchor"``: each query anchor time at
    most one vote per bin (``"anchorq"``: and ``1 / n``); ``"none"``: 1. Only ``"query"``
    is calibrated; the others are ``benchmarks/tune_fingerprint.py --weighting``'s study.

    Examples
    --------
    >>> vote_weights("query", np.array([7, 7, 9]), np.array([0, 2])).tolist()
    [0.5, 1.0]
    """
    if mode == "none":
        return np.ones(qi.size)
    if mode in ("anchor", "anchorq"):  # each query anchor time at most one vote per bin
        if times is None or key is None:
            raise ValueError(f"vote weighting {mode!r} needs the query times and bin keys")
        _, inv, cnt_a = np.unique(key << 20 | times[qi], return_inverse=True, return_counts=True)
        w = 1.0 / cnt_a[inv]
        return w if mode == "anchor" else w * vote_weights("query", hashes, qi)
    if mode not in WEIGHTINGS:
        raise ValueError(f"vote weighting must be one of {WEIGHTINGS}, got {mode!r}")
    uh, cnt = np.unique(hashes, return_counts=True)
    if mode in ("queryj", "queryt"):
        hq = np.unique(hashes[qi])
        tot = np.zeros(hq.size)
        near = (-1, 0, 1) if mode == "queryj" else (0,)
        for d1 in near:
            for d2 in near:
                for d3 in (-1, 0, 1):
                    nb = hq + (d1 << 12) + (d2 << 6) + d3
                    j = np.minimum(np.searchsorted(uh, nb), uh.size - 1)
                    tot += np.where(uh[j] == nb, cnt[j], 0)
        return 1.0 / tot[np.searchsorted(hq, hashes[qi])]
    n = cnt[np.searchsorted(uh, hashes[qi])].astype(np.float64)
    return 1.0 / (n if mode == "query" else np.sqrt(n))


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
        self.set_thresholds(min_votes=min_votes, min_confidence=min_confidence)
        self.peak_params: dict[str, Any] = dict(peak_params or {})
        pp = self.peak_params
        shape = (int(pp.get("f_sd", 2)), int(pp.get("t_sd", 2)), int(pp.get("fine_fft", FINE_FFT)))
        self.coef = CONF_COEFS.get(shape, CONF_COEF)
        #: vote weighting (:func:`vote_weights`); its calibration is :attr:`coef`
        self.weighting = VOTE_WEIGHTING

    def set_thresholds(self, **thresholds: Any) -> None:
        """Set ``min_votes`` (a whole number >= 1) and/or ``min_confidence`` (in [0, 1]);
        anything else, or a value out of range (NaN matched nothing, silently), is refused."""
        for k, v in thresholds.items():
            if k == "min_votes" and not (math.isfinite(float(v)) and float(v) == int(v) >= 1):
                raise ValueError(f"min_votes must be a whole number >= 1, got {v!r}")
            if k == "min_confidence" and not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"min_confidence must be within [0, 1], got {v!r}")
            if k not in ("min_votes", "min_confidence"):
                raise TypeError(f"unknown threshold {k!r} (min_votes, min_confidence)")
            setattr(self, k, int(v) if k == "min_votes" else float(v))

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

    @property
    def n_landmarks(self) -> int:
        """Indexed landmarks, not counting the marker rows (hash -1) of clips without any."""
        return int(self.hashes_.size - np.searchsorted(self.hashes_, 0))

    def match(self, hashes: np.ndarray, times: np.ndarray) -> dict[str, Any]:
        """Best clip and offset for query landmarks.

        Votes are cast per (clip, offset) bin, a distinct hash value once per bin, counted
        in a ±1 frame window. Each vote weighs :func:`vote_weights` (:attr:`weighting`,
        default ``"query"``: ``1 / n`` for a hash the query holds at ``n`` times), and the
        best bin is the one of the largest ``score`` (summed weights): a stationary sound
        (a chainsaw, a helicopter) repeats its hashes, and the copies meet a repeated
        pattern of a track at one offset without being independent evidence (round 3
        matched such clips to music tracks with 32 votes against 12, 0.99 sure).

        Returns a dict with ``clip_id`` (None when no match), ``offset_s`` (where the
        query starts in the clip), ``confidence`` in [0, 1] (of ``score`` and
        ``runner_up_score``), ``votes`` (aligned distinct hashes in the best bin; a match
        needs ``min_votes``), ``runner_up`` (votes of the best bin of any other clip) and
        ``score`` / ``runner_up_score`` (the weighted votes of the two). An index without
        any landmark (only silent or too short clips) can identify nothing: it says so in
        ``error``, with a warning, rather than answer "not in the dataset".
        """
        none = {"clip_id": None, "offset_s": None, "confidence": 0.0, "votes": 0, "runner_up": 0,
                "score": 0.0, "runner_up_score": 0.0}
        hashes = np.asarray(hashes, np.int64)
        times = np.asarray(times, np.int64)
        if self.n_landmarks == 0:
            import warnings

            msg = (f"the fingerprint index holds no landmarks (its {len(self.clip_ids_)} "
                   "clip(s) are silent or too short): nothing can be identified")
            warnings.warn(msg, UserWarning, stacklevel=2)
            return {**none, "error": msg}
        if hashes.size == 0:
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
        u, first = np.unique(key << 21 | hashes[q], return_index=True)  # hashes < 2^21
        kh = u >> 21
        w = vote_weights(self.weighting, hashes, q[first], times, kh)
        uk, inv = np.unique(kh, return_inverse=True)
        cnt = np.bincount(inv, minlength=uk.size).astype(np.int64)
        sc = np.bincount(inv, weights=w, minlength=uk.size)
        # votes in a ±1 frame window (queries are not aligned to the hop)
        win = cnt.copy()
        swin = sc.copy()
        for d in (-1, 1):
            j = np.searchsorted(uk, uk + d)
            j = np.minimum(j, uk.size - 1)
            hit = uk[j] == uk + d
            win += np.where(hit, cnt[j], 0)
            swin += np.where(hit, sc[j], 0.0)
        best = int(np.argmax(swin))  # first of ties: lowest clip, earliest offset
        votes = int(win[best])
        score = float(swin[best])
        bk = int(uk[best])
        c = bk // span
        # runner-up: the best offset of any other clip (a clip that repeats itself, e.g. a
        # loop, has several good offsets; that makes the offset ambiguous, not the clip)
        other = uk // span != c
        runner = int(win[other].max()) if np.any(other) else 0
        runner_score = float(swin[other].max()) if np.any(other) else 0.0
        conf = confidence(score, runner_score, self.coef)
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
            "score": score,
            "runner_up_score": runner_score,
        }
        if votes < self.min_votes or conf < self.min_confidence:
            out["clip_id"] = None
        return out

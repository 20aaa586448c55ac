"""Decoding half of :class:`~audiopipe.stages.heart.model.HeartSegmenter` (a mixin): duration
models, heart-period candidates, the HSMM decoding with refinement, the S1/S2 identity check,
and the segments. Split from :mod:`.model` (training and features) to keep both small.

The steps of :meth:`Decoding.analyse_features` are methods of their own, so that a stress
test can replace one (``benchmarks/tune_heart.py`` forces the heart period through
:meth:`Decoding.rate_candidates`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from audiopipe.stages.heart.features import cycle_candidates, fundamental_first
from audiopipe.stages.heart.hsmm import (
    gaussian_durations,
    hsmm_viterbi,
    hsmm_viterbi_many,
    path_to_runs,
)
from audiopipe.stages.heart.identity import SWAP, identity_evidence
from audiopipe.stages.heart.references import STATES

__all__ = ["Decoding", "MIN_GAP_S", "RATE_STEP", "SYSTOLE_SD"]

#: Springer's spread of the systole duration (s)
SYSTOLE_SD = 0.025
#: shortest systole (S1 end to S2 start) and diastole of a heart-period candidate (s)
MIN_GAP_S = 0.04
#: relative step of ``rate_search``'s periods around the chosen one
RATE_STEP = 0.02


class Decoding:
    """The decoding methods of :class:`~audiopipe.stages.heart.model.HeartSegmenter` (they
    read its parameters and fitted attributes)."""

    # set by HeartSegmenter
    feature_rate: float
    sound_durations_: np.ndarray

    # ---- decoding ------------------------------------------------------------------------
    def duration_model(self, period_s: float, systole_s: float) -> np.ndarray:
        """Log duration pmf ``(4, D)`` in frames for a heart period and systolic interval."""
        fr = self.feature_rate
        (s1, s1_sd), (s2, s2_sd) = self.sound_durations_
        sys = max(systole_s - s1, 0.5 / fr)
        dia = max(period_s - systole_s - s2, 0.5 / fr)
        means = np.array([s1, sys, s2, dia]) * fr
        sd_dia = float(np.hypot(0.07 * dia + 0.006, self.rate_sd * period_s))
        sds = np.array([s1_sd, SYSTOLE_SD, s2_sd, sd_dia]) * fr
        lp = gaussian_durations(means, sds)
        if self.relative_durations:
            lp = lp - lp.max(axis=1, keepdims=True)
        return lp

    def posteriors(self, F: np.ndarray) -> np.ndarray:
        """Logistic-regression ``P(state | frame)``, ``(n_frames, 4)``."""
        if len(F) == 0:
            return np.zeros((0, 4))
        return self.model_.predict_proba(self._design(F))

    def log_emissions(self, F: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
        """Weighted log scaled likelihoods ``(n_frames, 4)`` of the states."""
        P = self.posteriors(F) if P is None else P
        return self.emission_weight * (np.log(P + 1e-12) - self.log_prior_)

    def _decode(self, log_b: np.ndarray, period: float, systole: float):
        path, score = hsmm_viterbi(
            log_b, self.duration_model(period, systole), partial_edges=self.partial_edges
        )
        return path, score

    def _holds_sounds(self, period: float, systole: float) -> bool:
        """Whether a cycle of ``period`` s with S2 ``systole`` s after S1 leaves at least
        :data:`MIN_GAP_S` of systole and of diastole beside the sounds' mean durations."""
        (s1, _), (s2, _) = self.sound_durations_
        return systole - s1 >= MIN_GAP_S and period - systole - s2 >= MIN_GAP_S

    def _cycle_from_path(self, path: np.ndarray) -> tuple[float, float] | None:
        runs = path_to_runs(path)
        s1 = [s for s, _, k in runs if k == 0]
        if len(s1) < 3:
            return None
        s2 = np.array([s for s, _, k in runs if k == 2])
        starts = np.array(s1)
        sys = [s2[(s2 > a)][0] - a for a in starts if np.any(s2 > a)]
        if not sys:
            return None
        return float(np.median(np.diff(starts))) / self.feature_rate, float(
            np.median(sys)
        ) / self.feature_rate

    def rate_candidates(
        self, F: np.ndarray, post: np.ndarray, duration_s: float
    ) -> list[tuple[float, float]]:
        """``(period_s, systole_s)`` pairs to decode (``select`` and ``n_candidates``), from
        the autocorrelation of the envelope (``F[:, 0]``) or of the S1 posterior ``post``."""
        env = F[:, 0] if F.shape[1] else np.zeros(len(F))
        self._check_rate_options()
        harmonic = self.select == "harmonic"
        cands = cycle_candidates(
            env if self.rate_from == "envelope" else post[:, 0],
            self.feature_rate,
            self.min_bpm,
            self.max_bpm,
            # room for the ones dropped below; the harmonic check needs every peak
            n_candidates=64 if harmonic else int(self.n_candidates) + 3,
            window_s=self.ac_window_s,
            systole_env=env,
            detrend=self.detrend,
        )
        if not cands:
            warnings.warn(
                f"no heart cycle measurable in a {duration_s:.2f} s recording: "
                "decoding with 60 bpm durations",
                RuntimeWarning,
                stacklevel=3,
            )
            cands = [(1.0, 0.35, 0.0)]
        lo_p, hi_p = 60.0 / self.max_bpm, 60.0 / self.min_bpm
        cands = [(float(np.clip(p, lo_p, hi_p)), s, r) for p, s, r in cands]
        # a cycle must hold its sounds: a candidate whose systole (S1 end to S2 start) or
        # diastole would be shorter than MIN_GAP_S is half the true period (S1-S2 and S2-S1
        # intervals look periodic too); unless no candidate fits, it is not decoded
        cands = [c for c in cands if self._holds_sounds(c[0], c[1])] or cands
        if harmonic:  # the fundamental, not a subharmonic; no decoding scores compared
            cands = fundamental_first(cands, ratio=self.harmonic_ratio)[:1]
        elif self.select == "autocorrelation":
            cands = cands[:1]
        return [(p, s) for p, s, _ in cands[: int(self.n_candidates)]]

    def analyse(self, y: np.ndarray, sr: float) -> dict[str, Any]:
        """Everything the decoding found for one recording.

        Returns a dict with ``features`` (frames x features), ``path`` (state index per
        frame), ``segments`` (as :meth:`predict`), ``confidence`` (per segment, the mean
        logistic-regression posterior of its state), ``heart_rate_bpm``, ``systole_s``
        (S1 start to S2 start), ``score`` (per frame) and ``candidates`` (the period and
        systole candidates with their scores). A recording too short or too flat to show a
        heart cycle gets a warning and the state durations of 60 bpm.
        """
        return self.analyse_features(self.envelopes(y, sr), len(y) / sr, y=y, sr=sr)

    def analyse_features(
        self, F: np.ndarray, duration_s: float, y: np.ndarray | None = None,
        sr: float | None = None,
    ) -> dict[str, Any]:
        """:meth:`analyse` on precomputed :meth:`envelopes` of a ``duration_s`` recording
        (``y``, ``sr``: its audio, for ``identity_check``'s pitch cue)."""
        if not hasattr(self, "model_"):
            raise ValueError("HeartSegmenter is not fitted: call fit() first")
        post = self.posteriors(F)
        log_b = self.log_emissions(F, post)
        cands = self.rate_candidates(F, post, duration_s)
        lo_p, hi_p = 60.0 / self.max_bpm, 60.0 / self.min_bpm
        if self.rate_search > 0:  # each candidate's neighbours, decoded in the same pass
            k = int(np.floor(self.rate_search / RATE_STEP + 1e-9))
            steps = [1.0 + i * RATE_STEP for i in range(-k, k + 1)]
            cands = [(float(np.clip(p * f, lo_p, hi_p)), s) for p, s in cands for f in steps]
            cands = [c for c in cands if self._holds_sounds(*c)] or cands
        paths, scores = hsmm_viterbi_many(
            log_b, [self.duration_model(p, s) for p, s in cands], partial_edges=self.partial_edges
        )
        tried = [(float(scores[i]), p, s) for i, (p, s) in enumerate(cands)]
        best = int(np.argmax(scores))
        score, (period, systole), path = float(scores[best]), cands[best], paths[best]
        for _ in range(int(self.refine)):
            new = self._cycle_from_path(path)
            if new is None:
                break
            p2, s2 = float(np.clip(new[0], lo_p, hi_p)), new[1]
            # the bounds the candidates were searched in: room for the sounds, and a systolic
            # interval of at most half the period (Springer's rule; beyond it the path has S1
            # and S2 swapped, which near 120 bpm can decode as well or better)
            if not self._holds_sounds(p2, s2) or s2 > p2 / 2:
                break
            path2, score2 = self._decode(log_b, p2, s2)
            tried.append((score2, p2, s2))
            if score2 <= score:
                break
            path, score, period, systole = path2, score2, p2, s2
        identity = None
        if self.identity_check:
            if y is None:
                warnings.warn("identity_check without the audio: only the interval cue counts",
                              RuntimeWarning, stacklevel=2)
            identity = self._identity(path, y, sr)
            if self.identity_compare:
                # round 8: the path decoded with S1 and S2 exchanged is measured too (a path
                # that is not a clean swap, e.g. every sound called S1, has cues of its own);
                # for a clean swap its evidence is minus this one's, as the sign rule says
                path_b, score_b = self._decode(log_b[:, SWAP], period, systole)
                other = self._identity(path_b, y, sr)
                identity["evidence_swapped"] = other["evidence"]
                identity["regularity_swapped"] = other["regularity"]
                swapped = other["evidence"] > identity["evidence"] + 2 * self.identity_margin
                gap = other["regularity"] - identity["regularity"]
                identity["swapped"] = self._regularity_decides(gap / 2, swapped)
                if identity["swapped"]:
                    post, log_b = post[:, SWAP], log_b[:, SWAP]
                    path, score = path_b, score_b
            else:
                identity["swapped"] = self._regularity_decides(
                    -identity["regularity"], identity["evidence"] < -self.identity_margin)
                if identity["swapped"]:  # S1 and S2 (systole, diastole) exchanged, decoded again
                    post, log_b = post[:, SWAP], log_b[:, SWAP]
                    path, score = self._decode(log_b, period, systole)
        n = max(len(path), 1)
        # confidence of a segment: the mean posterior of its state over its frames
        conf = [float(post[s:e, k].mean()) for s, e, k in path_to_runs(path)]
        return {
            "features": F,
            "path": path,
            "segments": self._segments(path, duration_s),
            "confidence": conf,
            "heart_rate_bpm": 60.0 / period,
            "systole_s": systole,
            "score": score / n,
            "candidates": [(60.0 / p, s, sc / n) for sc, p, s in tried],
            "identity": identity,
        }

    def _identity(self, path: np.ndarray, y: np.ndarray | None, sr: float | None) -> dict:
        """The identity cues of a decoded path with the configured weights."""
        return identity_evidence(
            path, y, sr, self.feature_rate, self.identity_interval_weight,
            spread_weight=self.identity_spread_weight,
            width_weight=self.identity_width_weight,
            regularity_weight=self.identity_regularity_weight,
            regularity=self.identity_regularity_margin is not None,
        )

    def _regularity_decides(self, towards_swap: float, otherwise: bool) -> bool:
        """Round 9's decisive regularity: with ``identity_regularity_margin`` set, a
        regularity cue favouring the swap (``towards_swap``) or the path by more than the
        margin decides alone; else (or with the margin ``None``) ``otherwise`` stands."""
        m = self.identity_regularity_margin
        if m is not None and abs(towards_swap) > m:
            return bool(towards_swap > 0)
        return bool(otherwise)

    def _segments(self, path: np.ndarray, duration: float) -> list[tuple[float, float, str]]:
        out = []
        for s, e, k in path_to_runs(path):
            out.append((s / self.feature_rate, min(e / self.feature_rate, duration), STATES[k]))
        if out:  # the last frame's remainder (< one frame) belongs to the last state
            s, _, k = out[-1]
            out[-1] = (s, duration, k)
        return out

    def predict(self, y: np.ndarray, sr: float) -> list[tuple[float, float, str]]:
        """``(start_s, end_s, state)`` segments covering the whole recording."""
        return self.analyse(y, sr)["segments"]

    def sounds(self, y: np.ndarray, sr: float) -> dict[str, np.ndarray]:
        """Centre times (s) of the decoded S1 and S2 sounds: ``{"S1": ..., "S2": ...}``."""
        segs = self.predict(y, sr)
        return {
            k: np.array([(s + e) / 2 for s, e, lab in segs if lab == k]) for k in ("S1", "S2")
        }


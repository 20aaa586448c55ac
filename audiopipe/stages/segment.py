"""Stage ``segment``: split recordings into homogeneous (start, end, label) segments.

Three modes:

- ``supervised``: a frame classifier (standardised frame features plus their moving
  average over ``context_s``, logistic regression) whose posteriors are smoothed by a
  sticky HMM (:func:`viterbi`; staying probability from ``min_duration_s``) into labelled
  segments. Training labels come from an events table (path, onset_s, offset_s, label);
  frames outside every event get ``background``. Evaluated by clip-level K-fold CV.
- ``novelty``: Foote's checkerboard kernel on the self-similarity matrix of frame
  features (:func:`novelty_curve`), peaks → boundaries (:func:`novelty_boundaries`).
  Unsupervised; labels are ``seg0, seg1, ...``.
- ``periodic``: a two-state (S1/S2) periodic model for heart sounds
  (:class:`PeriodicSegmenter`): band-passed Shannon-energy envelope, heart period from
  its autocorrelation, then dynamic programming over envelope peaks with alternating
  S1/S2 states and interval costs (systole shorter than diastole).

Evaluation: mir_eval's segment boundary detection F-measure at ±0.5 s and ±3 s and frame
accuracy (supervised), against the events' boundaries when given; for ``periodic``
against reference S1/S2 times (``reference``: CSV path, time_s, label) with ±``tolerance_s``.

Params
------
mode : {"supervised", "novelty", "periodic"}, default "supervised"
events : str
    CSV (path, onset_s, offset_s, label); ``path`` matches the end of a clip's uri.
    Required for ``supervised``; optional reference for ``novelty``.
background : str, default "background"
feature : str or list of str, default "mfcc"
    Frame feature(s) used by ``supervised`` and ``novelty`` (several are concatenated).
context_s : float, default 0.5
min_duration_s : float, default 1.0
kernel_s : float, default 4.0
    Width of the checkerboard kernel (novelty).
peak_delta : float, default 0.1
    Minimum peak prominence relative to the curve's maximum (novelty).
reference : str, optional
    CSV (path, time_s, label) of S1/S2 times for ``periodic`` (``file``/``sound`` accepted,
    as in ../shared/corpora/heart/pascal_a/s1s2_locations.csv); scored within the
    annotated span of each recording.
tolerance_s : float, default 0.1 (periodic)
n_splits : int, default 3; random_state : int, default 0

Outputs: ``segments`` (clip_id, start_s, end_s, label, confidence, mode, run_id),
``metrics``, model ``models/segment.skops`` (supervised), PNG ``segment-<mode>`` (first
clip: feature image, reference and estimated segments).

Examples
--------
>>> import numpy as np
>>> X = np.r_[np.zeros((50, 2)), np.ones((50, 2))] + 0.01
>>> novelty_boundaries(X, hop_s=0.1, kernel_s=2.0)
array([5.])
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import signal
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from audiopipe.stages._common import (
    StageInputError,
    load_model,
    metric_rows,
    plot_path,
    save_model,
    write_metrics,
)
from audiopipe.stages._frames import as_int, as_list, read_frames_many, stable_id
from audiopipe.store.dataset import Dataset
from audiopipe.store.frames import open_part

__all__ = [
    "viterbi",
    "labels_to_segments",
    "FrameSegmenter",
    "novelty_curve",
    "novelty_boundaries",
    "PeriodicSegmenter",
    "synthetic_pcg",
    "evaluate_segments",
    "run",
]

TRUSTED = ["audiopipe.stages.segment.FrameSegmenter"]


# ---- HMM smoothing ----------------------------------------------------------------------
def viterbi(
    log_prob: np.ndarray, transition: np.ndarray, p_init: np.ndarray | None = None
) -> np.ndarray:
    """Most likely state path given per-frame log-likelihoods ``(n_frames, n_states)``."""
    log_prob = np.asarray(log_prob, dtype=np.float64)
    n, k = log_prob.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    logA = np.log(np.asarray(transition, dtype=np.float64) + 1e-300)
    p0 = np.full(k, 1.0 / k) if p_init is None else np.asarray(p_init, dtype=np.float64)
    delta = np.log(p0 + 1e-300) + log_prob[0]
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        cand = delta[:, None] + logA
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(k)] + log_prob[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


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
        path = viterbi(ll, sticky_transition(len(self.classes_), p_stay))
        return self.classes_[path]

    def predict_segments(self, frames: np.ndarray) -> list[tuple[float, float, str, float]]:
        """``(start_s, end_s, label, confidence)`` of one clip."""
        P = self.predict_proba(frames)
        lab = self.predict(frames)
        conf = P[np.arange(len(lab)), np.searchsorted(self.classes_, lab)] if len(lab) else None
        return labels_to_segments(lab, self.hop_s, conf)


# ---- novelty --------------------------------------------------------------------------------
def _checkerboard(half: int) -> np.ndarray:
    x = np.arange(-half, half) + 0.5
    g = np.exp(-0.5 * (x / (0.5 * half)) ** 2)
    return np.outer(g, g) * np.outer(np.sign(x), np.sign(x))


def novelty_curve(X: np.ndarray, kernel_size: int) -> np.ndarray:
    """Foote novelty of frames ``X`` (n_frames, d): checkerboard kernel along the SSM diagonal.

    The self-similarity is the cosine similarity of standardised frames; the curve is
    normalised to max 1 (zeros when flat).
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 4:
        return np.zeros(n)
    Z = (X - X.mean(0)) / (X.std(0) + 1e-9)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True) + 1e-9
    S = Z @ Z.T
    half = max(2, kernel_size // 2)
    K = _checkerboard(half)
    Sp = np.pad(S, half, mode="constant")
    nov = np.array([np.sum(K * Sp[i : i + 2 * half, i : i + 2 * half]) for i in range(n)])
    nov = np.maximum(nov, 0)
    return nov / nov.max() if nov.max() > 0 else nov


def novelty_boundaries(
    X: np.ndarray,
    hop_s: float,
    kernel_s: float = 4.0,
    peak_delta: float = 0.1,
    max_frames: int = 3000,
) -> np.ndarray:
    """Boundary times (s) from novelty peaks; frames are mean-pooled to ≤ ``max_frames``."""
    X = np.asarray(X, dtype=np.float64)
    step = max(1, int(np.ceil(len(X) / max_frames)))
    if step > 1:
        n = len(X) // step * step
        X = X[:n].reshape(-1, step, X.shape[1]).mean(axis=1)
    hop = hop_s * step
    k = max(4, int(round(kernel_s / hop)))
    nov = novelty_curve(X, k)
    if nov.max() <= 0:
        return np.zeros(0)
    peaks, _ = signal.find_peaks(nov, prominence=peak_delta, distance=max(1, k // 2))
    return peaks * hop


# ---- periodic (heart sounds) -----------------------------------------------------------------
class PeriodicSegmenter(BaseEstimator):
    """Two-state periodic (S1/S2, "lub/dub") segmentation of a phonocardiogram.

    Parameters
    ----------
    fmin, fmax : float, default 25, 400
        Band-pass of the heart-sound band (Hz).
    env_rate : int, default 100
        Envelope frame rate (Hz).
    sound_s : float, default 0.1
        Duration reported for each S1 / S2 sound.

    Examples
    --------
    >>> import numpy as np
    >>> y, sr, s1, s2 = synthetic_pcg(duration=10.0, seed=0)
    >>> ev = PeriodicSegmenter().sounds(y, sr)
    >>> abs(len(ev["S1"]) - len(s1)) <= 1
    True
    """

    def __init__(
        self, fmin: float = 25.0, fmax: float = 400.0, env_rate: int = 100, sound_s: float = 0.1
    ) -> None:
        self.fmin = fmin
        self.fmax = fmax
        self.env_rate = env_rate
        self.sound_s = sound_s

    def fit(self, X: Any = None, y: Any = None) -> PeriodicSegmenter:
        return self  # nothing to learn: the model's timing comes from each recording

    def envelope(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Normalised Shannon-energy envelope at ``env_rate`` Hz."""
        y = np.asarray(y, dtype=np.float64)
        hi = min(self.fmax, 0.45 * sr)
        sos = signal.butter(4, [self.fmin, hi], btype="band", fs=sr, output="sos")
        x = signal.sosfiltfilt(sos, y)
        x = x / (np.abs(x).max() + 1e-12)
        e = -(x**2) * np.log(x**2 + 1e-12)
        hop = max(1, int(sr // self.env_rate))
        n = len(e) // hop
        env = e[: n * hop].reshape(n, hop).mean(axis=1)
        env = np.convolve(env, np.hanning(7) / np.hanning(7).sum(), mode="same")
        return (env - env.mean()) / (env.std() + 1e-12)

    def period(self, env: np.ndarray) -> float:
        """Heart period (s) from the envelope autocorrelation peak in 0.4-2.0 s."""
        r = np.correlate(env, env, mode="full")[len(env) - 1 :]
        lo, hi = int(0.4 * self.env_rate), min(len(r) - 1, int(2.0 * self.env_rate))
        if hi <= lo:
            return 0.8
        return (lo + int(np.argmax(r[lo:hi]))) / self.env_rate

    def sounds(self, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Times (s) of S1 and S2 sounds: ``{"S1": ..., "S2": ...}``."""
        if len(y) < sr * 0.5 or not np.any(y):
            return {"S1": np.zeros(0), "S2": np.zeros(0)}
        env = self.envelope(y, sr)
        P = self.period(env)
        peaks, props = signal.find_peaks(env, distance=int(0.12 * self.env_rate), height=0.0)
        if len(peaks) < 2:
            return {"S1": np.zeros(0), "S2": np.zeros(0)}
        t = peaks / self.env_rate
        amp = props["peak_heights"]
        dt = np.diff(t)
        short = dt[dt < 0.55 * P]
        Ts = float(np.median(short)) if len(short) else 0.35 * P
        Ts = float(np.clip(Ts, 0.15, 0.5 * P))
        expect = {0: Ts, 1: P - Ts}  # after S1 comes S2 after Ts; after S2, S1 after P - Ts
        n = len(t)
        best = np.full((n, 2), -np.inf)
        back = np.full((n, 2), -1)
        for j in range(n):
            for s in (0, 1):
                best[j, s] = amp[j]
                prev = 1 - s
                for i in range(j - 1, -1, -1):
                    d = t[j] - t[i]
                    if d > 1.6 * P:
                        break
                    T = expect[prev]
                    cost = ((d - T) / (0.15 * T + 0.03)) ** 2
                    v = best[i, prev] + amp[j] - cost
                    if v > best[j, s]:
                        best[j, s], back[j, s] = v, i
        j, s = np.unravel_index(int(np.argmax(best)), best.shape)
        chosen = []
        while j >= 0:
            chosen.append((t[j], s))
            j, s = back[j, s], 1 - s
        chosen.reverse()
        return {
            "S1": np.array([x for x, st in chosen if st == 0]),
            "S2": np.array([x for x, st in chosen if st == 1]),
        }

    def predict_segments(self, y: np.ndarray, sr: int) -> list[tuple[float, float, str, float]]:
        """S1 / systole / S2 / diastole segments between the detected sounds."""
        ev = self.sounds(y, sr)
        marks = sorted([(x, "S1") for x in ev["S1"]] + [(x, "S2") for x in ev["S2"]])
        h = self.sound_s / 2
        out: list[tuple[float, float, str, float]] = []
        for k, (x, lab) in enumerate(marks):
            out.append((max(0.0, x - h), x + h, lab, 1.0))
            if k + 1 < len(marks):
                nxt = marks[k + 1][0] - h
                if nxt > x + h:
                    out.append((x + h, nxt, "systole" if lab == "S1" else "diastole", 1.0))
        return out


def synthetic_pcg(
    duration: float = 20.0,
    sr: int = 4000,
    bpm: float = 72.0,
    systole_s: float = 0.3,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """A PCG-like test signal: S1 (low, longer) and S2 (higher, shorter) damped bursts.

    Returns ``(y, sr, s1_times, s2_times)``; beat-to-beat period varies by ±5 %.
    """
    rng = np.random.default_rng(seed)
    y = noise * rng.standard_normal(int(duration * sr))
    s1, s2 = [], []
    t = float(rng.uniform(0.1, 0.5))
    while t + 0.6 < duration:
        for when, f, d, a, lst in ((t, 50, 0.1, 1.0, s1), (t + systole_s, 80, 0.07, 0.7, s2)):
            n = int(d * sr)
            tt = np.arange(n) / sr
            burst = a * np.sin(2 * np.pi * f * tt) * np.sin(np.pi * tt / d) ** 2
            i = int(when * sr)
            y[i : i + n] += burst[: len(y) - i]
            lst.append(when + d / 2)
        t += 60.0 / bpm * float(rng.uniform(0.95, 1.05))
    return y.astype(np.float32), sr, np.array(s1), np.array(s2)


# ---- evaluation --------------------------------------------------------------------------------
def evaluate_segments(
    ref: list[tuple[float, float, str]], est: list[tuple[float, float, str]], hop_s: float = 0.05
) -> dict[str, float]:
    """Boundary F-measure at ±0.5 s and ±3 s (mir_eval) and frame accuracy (labels)."""
    import mir_eval

    def intervals(segs):
        return np.array([[s, e] for s, e, *_ in segs], dtype=float)

    ri, ei = intervals(ref), intervals(est)
    end = max(ri[:, 1].max(), ei[:, 1].max())
    ri[-1, 1] = ei[-1, 1] = end  # same span for both
    out = {}
    for w in (0.5, 3.0):
        with warnings.catch_warnings():  # no inner boundary on one side: F = 0, said once here
            warnings.simplefilter("ignore", UserWarning)
            p, r, f = mir_eval.segment.detection(ri, ei, window=w, trim=True)
        out[f"f@{w:g}s"] = f
    t = np.arange(0, end, hop_s) + hop_s / 2

    def at(segs):
        lab = np.array([""] * len(t), dtype=object)
        for s, e, label, *_ in segs:
            lab[(t >= s) & (t < e)] = label
        return lab

    out["frame_accuracy"] = float(np.mean(at(ref) == at(est)))
    return out


# ---- dataset adapter ---------------------------------------------------------------------------
def _hop_s(ds: Dataset) -> float:
    t = ds.table("frames_index", ["part"])
    if t.num_rows == 0:
        raise StageInputError(f"dataset {ds.name!r} has no frames: ingest it first")
    g = open_part(ds.location.frames_uri(t.column("part")[0].as_py()), ds.location.fsspec_options)
    recipe = g.attrs.get("recipe", {})
    return float(recipe.get("hop_length", 512)) / float(g.attrs.get("sr", recipe.get("sr", 22050)))


def _clips(ds: Dataset) -> pd.DataFrame:
    return ds.table("clips", ["clip_id", "uri", "duration_s"]).to_pandas()


def _match(uris: pd.Series, path: str) -> str | None:
    p = "/" + str(path).lstrip("/")
    hit = uris[uris.str.endswith(p) | (uris == path)]
    return hit.index[0] if len(hit) else None


def _reference(ds: Dataset, params: dict, clips: pd.DataFrame) -> dict[str, list]:
    """Per clip id: full reference segmentation from an events CSV (background filled in)."""
    path = params.get("events")
    if not path:
        return {}
    try:
        ev = pd.read_csv(path)
    except FileNotFoundError:
        raise StageInputError(f"dataset {ds.name!r}: events file {path} does not exist") from None
    for c in ("path", "onset_s", "offset_s", "label"):
        if c not in ev.columns:
            raise StageInputError(
                f"dataset {ds.name!r}: events file {path} has no column {c!r} "
                f"(columns: {', '.join(map(str, ev.columns))})"
            )
    bg = str(params.get("background", "background"))
    uris = clips.set_index("clip_id")["uri"]
    out: dict[str, list] = {}
    for p, grp in ev.groupby("path"):
        cid = _match(uris, str(p))
        if cid is None:
            continue
        dur = float(clips.set_index("clip_id").loc[cid, "duration_s"])
        segs, t = [], 0.0
        for _, r in grp.sort_values("onset_s").iterrows():
            on, off = float(r.onset_s), min(float(r.offset_s), dur)
            if on > t:
                segs.append((t, on, bg))
            segs.append((on, off, str(r.label)))
            t = off
        if t < dur:
            segs.append((t, dur, bg))
        out[cid] = segs
    if not out:
        raise StageInputError(
            f"dataset {ds.name!r}: no clip of events file {path} is in the dataset"
        )
    return out


def _frame_labels(segs: list, n: int, hop_s: float, bg: str) -> np.ndarray:
    t = np.arange(n) * hop_s
    lab = np.array([bg] * n, dtype=object)
    for s, e, label in segs:
        lab[(t >= s) & (t < e)] = label
    return lab.astype(str)


def _plot(
    path: str, frames: np.ndarray | None, hop_s: float, ref: list | None, est: list, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3 if frames is not None else 2, 1, figsize=(9, 4.5), sharex=True)
    ax = list(np.atleast_1d(axes))
    end = max([e for _, e, *_ in est] + [e for _, e, *_ in (ref or [])] + [1.0])
    if frames is not None:
        a = ax.pop(0)
        a.imshow(
            frames.T,
            aspect="auto",
            origin="lower",
            extent=(0, len(frames) * hop_s, 0, frames.shape[1]),
        )
        a.set_ylabel("feature")
    labels = sorted({s[2] for s in est} | {s[2] for s in (ref or [])})
    cmap = plt.get_cmap("tab10")
    for a, segs, name in ((ax[0], ref or [], "reference"), (ax[1], est, "estimated")):
        for s, e, lab, *_ in segs:
            a.axvspan(s, e, color=cmap(labels.index(lab) % 10), alpha=0.7)
            if e - s > 0.03 * end:
                a.text((s + e) / 2, 0.5, lab, ha="center", va="center", fontsize=7)
        a.set_yticks([])
        a.set_ylabel(name)
    ax[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _segments_table(rows: list[tuple], mode: str, run_id: str) -> pa.Table:
    return pa.table(
        {
            "clip_id": pa.array([r[0] for r in rows], pa.string()),
            "start_s": pa.array([float(r[1]) for r in rows], pa.float64()),
            "end_s": pa.array([float(r[2]) for r in rows], pa.float64()),
            "label": pa.array([str(r[3]) for r in rows], pa.string()),
            "confidence": pa.array([float(r[4]) for r in rows], pa.float64()),
            "mode": pa.array([mode] * len(rows), pa.string()),
            "run_id": pa.array([run_id] * len(rows), pa.string()),
        }
    )


def run(ds: Dataset, params: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    """Segment every clip of ``ds`` in ``mode``; see module doc."""
    mode = str(params.get("mode", "supervised"))
    if mode not in ("supervised", "novelty", "periodic"):
        raise StageInputError(
            f"dataset {ds.name!r}: segment mode must be supervised, novelty or periodic, got {mode!r}"
        )
    clips = _clips(ds)
    if clips.empty:
        raise StageInputError(f"dataset {ds.name!r} has no clips: ingest it first")
    if mode == "periodic":
        return _run_periodic(ds, params, clips, run_id)
    feats = as_list(params.get("feature")) or ["mfcc"]
    for f in feats:
        if f not in ds.features_available():
            raise StageInputError(
                f"dataset {ds.name!r} has no frame feature {f!r} "
                f"(has: {', '.join(ds.features_available())})"
            )
    hop_s = _hop_s(ds)
    rs = as_int(params.get("random_state"), 0)
    ref = _reference(ds, params, clips)
    bg = str(params.get("background", "background"))
    if mode == "supervised" and not ref:
        raise StageInputError(
            f"dataset {ds.name!r}: supervised segmentation needs param 'events' "
            "(CSV: path, onset_s, offset_s, label)"
        )
    ids = list(ref) if mode == "supervised" else clips.clip_id.tolist()
    per_feat = [read_frames_many(ds, ids, f) for f in feats]
    frames = {
        c: np.concatenate([np.asarray(pf[i], np.float64) for pf in per_feat], axis=1)
        for i, c in enumerate(ids)
    }
    est: dict[str, list] = {}
    model_path = None
    model_id = stable_id("segment", mode, {k: str(v) for k, v in params.items()}, ids)
    if mode == "supervised":
        labels = {c: _frame_labels(ref[c], len(frames[c]), hop_s, bg) for c in ids}
        if len({x for v in labels.values() for x in v}) < 2:
            raise StageInputError(
                f"dataset {ds.name!r}: events file {params['events']} gives one label only"
            )
        seg = FrameSegmenter(
            hop_s=hop_s,
            context_s=float(params.get("context_s", 0.5)),
            min_duration_s=float(params.get("min_duration_s", 1.0)),
            random_state=rs,
        )
        k = max(2, min(as_int(params.get("n_splits"), 3), len(ids)))
        order = np.random.default_rng(rs).permutation(len(ids))
        folds = np.empty(len(ids), dtype=int)
        folds[order] = np.arange(len(ids)) % k
        for f in range(k):
            tr = [c for c, g in zip(ids, folds, strict=True) if g != f]
            te = [c for c, g in zip(ids, folds, strict=True) if g == f]
            m = seg.__class__(**seg.get_params()).fit(
                [frames[c] for c in tr], [labels[c] for c in tr]
            )
            for c in te:
                est[c] = m.predict_segments(frames[c])
        final = seg.fit([frames[c] for c in ids], [labels[c] for c in ids])
    else:
        for c in ids:
            b = novelty_boundaries(
                frames[c],
                hop_s,
                float(params.get("kernel_s", 4.0)),
                float(params.get("peak_delta", 0.1)),
            )
            end = len(frames[c]) * hop_s
            edges = np.r_[0.0, b[(b > 0) & (b < end)], end]
            est[c] = [
                (s, e, f"seg{i}", 1.0)
                for i, (s, e) in enumerate(zip(edges[:-1], edges[1:], strict=True))
            ]
    metrics: dict[str, float] = {}
    scored = [c for c in ids if c in ref]
    if scored:
        per = [evaluate_segments(ref[c], est[c]) for c in scored]
        metrics = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        if mode == "novelty":
            metrics.pop("frame_accuracy")  # unsupervised labels are not comparable
        metrics["n_clips"] = float(len(scored))

    rows = [(c, s, e, lab, conf) for c in ids for s, e, lab, conf in est[c]]
    if mode == "supervised":
        model_path = save_model(ds, "segment", final)
    ds.write_table("segments", _segments_table(rows, mode, run_id))
    if metrics:
        write_metrics(
            ds,
            metric_rows(
                "segment",
                model_id,
                metrics,
                split=f"{mode}-cv" if mode == "supervised" else mode,
                run_id=run_id,
            ),
        )
    png = plot_path(ds, f"segment-{mode}")
    c0 = ids[0]
    _plot(png, frames[c0], hop_s, ref.get(c0), est[c0], f"{ds.name} {mode}: {c0[:10]}")
    return {
        "model_id": model_id,
        "mode": mode,
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "n_segments": len(rows),
        "tables": ["segments", "metrics"] if metrics else ["segments"],
        "model": model_path,
        "plots": [png],
    }


def _run_periodic(ds: Dataset, params: dict, clips: pd.DataFrame, run_id: str) -> dict[str, Any]:
    import mir_eval

    seg = PeriodicSegmenter()
    tol = float(params.get("tolerance_s", 0.1))
    ref: dict[str, pd.DataFrame] = {}
    if params.get("reference"):
        r = pd.read_csv(params["reference"])
        r = r.rename(columns={"file": "path", "sound": "label"})
        for c in ("path", "time_s", "label"):
            if c not in r.columns:
                raise StageInputError(
                    f"dataset {ds.name!r}: reference file {params['reference']} has no column {c!r}"
                )
        uris = clips.set_index("clip_id")["uri"]
        for p, grp in r.groupby("path"):
            cid = _match(uris, str(p))
            if cid is not None:
                ref[cid] = grp
    rows, per, first = [], [], None
    for cid in clips.clip_id:
        y, sr = ds.load_audio(cid)
        segs = seg.predict_segments(y, sr)
        rows += [(cid, s, e, lab, conf) for s, e, lab, conf in segs]
        first = first or (cid, segs)
        if cid in ref:
            g = ref[cid]
            ev = seg.sounds(y, sr)
            lo, hi = g.time_s.min() - 0.5, g.time_s.max() + 0.5  # annotated span only
            m = {}
            for lab in ("S1", "S2"):
                est_t = ev[lab][(ev[lab] >= lo) & (ev[lab] <= hi)]
                m[f"f_{lab}"] = mir_eval.onset.f_measure(
                    np.sort(g[g.label == lab].time_s.to_numpy()), est_t, window=tol
                )[0]
            allr = np.sort(g.time_s.to_numpy())
            both = np.sort(np.r_[ev["S1"], ev["S2"]])
            m["f_sounds"] = mir_eval.onset.f_measure(
                allr, both[(both >= lo) & (both <= hi)], window=tol
            )[0]
            per.append(m)
    metrics = {k: float(np.mean([p[k] for p in per])) for k in per[0]} if per else {}
    if per:
        metrics["n_clips"] = float(len(per))
    model_id = stable_id("segment", "periodic", seg.get_params(), tol)
    ds.write_table("segments", _segments_table(rows, "periodic", run_id))
    if metrics:
        write_metrics(
            ds, metric_rows("segment", model_id, metrics, split="periodic", run_id=run_id)
        )
    png = plot_path(ds, "segment-periodic")
    _plot(png, None, 0.01, None, first[1], f"{ds.name} periodic (S1/S2): {first[0][:10]}")
    return {
        "model_id": model_id,
        "mode": "periodic",
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "n_segments": len(rows),
        "tables": ["segments", "metrics"] if metrics else ["segments"],
        "plots": [png],
    }


def load_segmenter(path: str) -> FrameSegmenter:
    """Load a saved supervised segmenter (skops, refusing other types)."""
    return load_model(path, trusted=TRUSTED)

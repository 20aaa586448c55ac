"""The candidate models classify chooses from, and the clip features each one reads.

Every candidate is a clip feature matrix (built from the frame store) and a
:class:`~audiopipe.stages.classify.model.ClipClassifier`:

==========  =========================================================================
candidate   features → model
==========  =========================================================================
stats       rich clip statistics of every frame feature of the trimmed clip (mean,
            std, 10th/50th/90th percentiles and mean absolute frame-to-frame change)
            → RBF SVM. Environmental sounds, timbre.
sequence    the trimmed clip's MFCC frames, resampled to ``frames`` frames
            (time normalisation keeps the order of sounds), + their mean/std and log
            length → RBF SVM, trained with VTLN-warped copies (the whole spectrum,
            and above 1 kHz only: another accent's vowels). Words, digits.
hgb         the rich statistics of ``stats`` → histogram gradient boosting.
mlp         log-mel patches: the trimmed clip's log-mel bands (the ``melspectrogram``
            frame feature) mean-pooled over ``patches`` equal time steps, + the bands'
            clip mean/std → a one-hidden-layer network (scikit-learn, CPU).
ensemble    the mean class probabilities of the other candidates tried (soft vote);
            also scored as ``ensemble-top2``: the two best of them by the same CV.
==========  =========================================================================

With a ``groups`` column the features are standardised within each group (speaker
normalisation, label-free; ``sequence`` also normalises its frames by the group's frame
statistics). A group seen at prediction time with few clips is normalised with statistics
shrunk toward the training set's (:func:`shrunk_stats`): one clip of a new speaker gets
the speaker-independent training normalisation, hundreds get their own. The same
candidate without ``groups`` reads each clip alone (``sequence``: utterance mean
normalisation of the MFCCs): classify scores these per-clip variants beside the
group-normalised ones.

Examples
--------
>>> a = np.c_[np.arange(10.0), np.ones(10)]
>>> X, names = rich_stats({"f": [a]}, [(0, 10)])
>>> X.shape, names[:2]
((1, 12), ['f_mean[0]', 'f_mean[1]'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.stages._clipfeatures import shrunk_stats
from audiopipe.stages._frames import frames_recipe, read_frames_many, segment_pool, trim_bounds

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "CANDIDATES",
    "FEATURES_VERSION",
    "MODEL_OF",
    "rich_stats",
    "mel_patches",
    "shrunk_stats",
    "build",
    "priors",
    "describe",
    "candidate_names",
    "Frames",
    "SEQUENCE_FRAMES",
    "TRIM_DB",
]

#: candidate name -> one line saying what it is (the stage's metrics and docs use these)
CANDIDATES: dict[str, str] = {
    "stats": "clip statistics (mean, std, p10/p50/p90, mean |delta|) of every frame feature + RBF SVM",
    "sequence": "time-normalised MFCC sequences + RBF SVM with warped training copies",
    "hgb": "clip statistics (as stats) + histogram gradient boosting",
    "mlp": "log-mel patches + a one-hidden-layer neural network (CPU)",
    "ensemble": "soft vote (mean class probabilities) of the other candidates tried, or of "
                "the best two by CV (ensemble-top2)",
}
#: saved with a model; a model of other features is refused at predict time (2: stats and
#: hgb read the texture statistics too; 3: sequence reads the MFCCs without their deltas)
FEATURES_VERSION = 3
#: candidate name -> ClipClassifier model
MODEL_OF = {"stats": "svm", "sequence": "svm", "hgb": "hgb", "mlp": "mlp"}

_STATS = ("mean", "std", "p10", "p50", "p90", "dabs")
#: the frame features of ``sequence`` when ``frame_features`` is not given: the MFCCs
#: alone (FSDD tuning speakers, ``benchmarks/tune_classify.py --sequences``: 0.815 against
#: 0.777 with their deltas; the deltas double the columns and add speaker noise)
SEQUENCE_FRAMES = ("mfcc",)
#: default silence trim: a clip's frames within this many dB of its loudest rms frame
#: (FSDD tuning speakers, ``benchmarks/tune_classify.py --trim``: vote of all four 0.835 at
#: 30 dB -> 0.884 at 20 dB, ``stats`` 0.803 -> 0.870; ESC tuning classes 0.945 -> 0.955)
TRIM_DB = 20.0


class Frames:
    """Frames of many clips per feature, read once from the store (and trim bounds)."""

    def __init__(self, ds: Dataset, clip_ids: list[str], trim_db: float = TRIM_DB) -> None:
        self.ds, self.ids, self.trim_db = ds, list(clip_ids), trim_db
        self.available = list(ds.features_available())
        self._cache: dict[str, list[np.ndarray]] = {}
        self._bounds: list[tuple[int, int]] | None = None
        self._recipe: dict[str, Any] | None = None

    def get(self, feature: str, warp: float = 1.0, above: float = 0.0) -> list[np.ndarray]:
        """Frames of ``feature`` per clip; ``warp`` ≠ 1 warps MFCC-family and log-mel
        frames along frequency (``f -> warp * f``, or above ``above`` Hz only; other
        features unchanged)."""
        if feature not in self._cache:
            fr = read_frames_many(self.ds, self.ids, feature)
            self._cache[feature] = [a.reshape(len(a), -1) for a in fr]
        fr = self._cache[feature]
        W = self.warp_matrix(feature, warp, above) if warp != 1.0 else None
        return fr if W is None else [a @ W.T if len(a) else a for a in fr]

    @property
    def recipe(self) -> dict[str, Any]:
        if self._recipe is None:
            self._recipe = frames_recipe(self.ds)
        return self._recipe

    def rate(self) -> float | None:
        """Frames per second (None when the recipe does not say)."""
        r = self.recipe
        return r["sr"] / r["hop_length"] if r.get("sr") and r.get("hop_length") else None

    def warp_matrix(self, feature: str, warp: float, above: float = 0.0) -> np.ndarray | None:
        """The frequency-warp map of ``feature``'s frames (None: not warpable)."""
        from audiopipe.stages._clipfeatures import mel_warp_matrix, warp_matrix

        if feature.startswith("mfcc"):
            return warp_matrix(warp, self.recipe, above)
        m = (self.recipe.get("compute") or {}).get(feature)
        if feature == "melspectrogram" and m is not None and self.recipe.get("sr"):
            return mel_warp_matrix(warp, int(m.get("n_mels", 128)), float(m.get("fmin") or 0.0),
                                   float(m.get("fmax") or self.recipe["sr"] / 2),
                                   bool(m.get("htk", False)), above)
        return None

    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each clip's frames within ``trim_db`` of its loudest rms frame."""
        if self._bounds is None:
            if "rms" in self.available:
                self._bounds = [
                    trim_bounds(a[:, 0], self.trim_db) if len(a) else (0, 0)
                    for a in self.get("rms")
                ]
            else:
                first = self.get(self.available[0])
                self._bounds = [(0, len(a)) for a in first]
        return self._bounds


def rich_stats(
    seqs: dict[str, list[np.ndarray]], bounds: list[tuple[int, int]]
) -> tuple[np.ndarray, list[str]]:
    """Per clip and feature dimension: mean, std, 10/50/90th percentiles, mean |Δ| of the
    trimmed frames (``bounds``); one row per clip. Empty clips give zeros."""
    blocks, names = [], []
    for f, fr in seqs.items():
        d = fr[0].shape[1] if fr else 0
        rows = np.zeros((len(fr), len(_STATS) * d))
        for i, (a, (b0, b1)) in enumerate(zip(fr, bounds, strict=True)):
            a = np.asarray(a[b0:b1] if b1 > b0 else a, dtype=np.float64)
            if len(a) == 0:
                continue
            p10, p50, p90 = np.percentile(a, [10, 50, 90], axis=0)
            da = np.abs(np.diff(a, axis=0)).mean(axis=0) if len(a) > 1 else np.zeros(d)
            rows[i] = np.concatenate([a.mean(0), a.std(0), p10, p50, p90, da])
        blocks.append(rows)
        names += [f"{f}_{s}[{j}]" for s in _STATS for j in range(d)]
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(bounds), 0))
    return np.nan_to_num(X), names


def mel_patches(
    mel: list[np.ndarray], bounds: list[tuple[int, int]], n_patches: int = 8
) -> tuple[np.ndarray, list[str]]:
    """Log-mel patches: each clip's trimmed bands mean-pooled over ``n_patches`` equal time
    steps, then the bands' clip mean and std; one row per clip.

    Examples
    --------
    >>> m = [np.ones((20, 4)), np.zeros((3, 4))]
    >>> X, names = mel_patches(m, [(0, 20), (0, 3)], n_patches=2)
    >>> X.shape, names[0]
    ((2, 16), 'mel_p0[0]')
    """
    rows = []
    d = mel[0].shape[1] if mel else 0
    for a, (b0, b1) in zip(mel, bounds, strict=True):
        a = np.asarray(a[b0:b1] if b1 > b0 else a, dtype=np.float64)
        if len(a) == 0:
            rows.append(np.zeros((n_patches + 2) * d))
            continue
        rows.append(np.r_[segment_pool(a, n_patches).astype(np.float64), a.mean(0), a.std(0)])
    names = [f"mel_p{t}[{j}]" for t in range(n_patches) for j in range(d)]
    names += [f"mel_mean[{j}]" for j in range(d)] + [f"mel_std[{j}]" for j in range(d)]
    return np.nan_to_num(np.asarray(rows).reshape(len(mel), len(names))), names


def candidate_names(frames: Frames) -> dict[str, str]:
    """The candidates this dataset's frame features allow, and why any is not."""
    out = {}
    if not any(f.startswith("mfcc") for f in frames.available):
        out["sequence"] = "no mfcc frames"
    if "melspectrogram" not in frames.available:
        out["mlp"] = "no melspectrogram frames (add it to the recipe)"
    return out


def stats_matrix(frames: Frames, features: list[str] | None,
                 warp: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """:func:`rich_stats` of ``features`` (default: every frame feature) of ``frames``,
    and, when the log-mel frames are among them, their :func:`~.texture.texture_stats`
    (modulation spectrum, spectral contrast, onsets). ``warp``: frequency-warped frames."""
    from audiopipe.stages.classify.texture import texture_stats

    use = [f for f in (features or frames.available) if f in frames.available]
    seqs = {f: frames.get(f, warp) for f in use}
    X, names = rich_stats(seqs, frames.bounds())
    rate = frames.rate()
    if "melspectrogram" in seqs and rate:
        T, tnames = texture_stats(seqs["melspectrogram"], frames.bounds(), rate)
        X, names = np.concatenate([X, T], axis=1), names + [f"mel_{n}" for n in tnames]
    return X, names


def patch_matrix(frames: Frames, n_patches: int,
                 warp: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """:func:`mel_patches` of the ``melspectrogram`` frames (``warp``: frequency-warped)."""
    return mel_patches(frames.get("melspectrogram", warp), frames.bounds(), n_patches)


def describe(scores: dict[str, float], chosen: str, skipped: dict[str, str]) -> str:
    """One sentence saying what was chosen and why."""
    order = sorted(scores, key=lambda k: -scores[k])
    parts = ", ".join(f"{k} {scores[k]:.3f}" for k in order)
    why = f"chose {chosen}: highest inner grouped-CV accuracy ({parts})"
    if skipped:
        why += "; not tried: " + ", ".join(f"{k} ({v})" for k, v in skipped.items())
    return why



def build(
    name: str,
    frames: Frames,
    groups: np.ndarray | None,
    p: dict[str, Any],
    *,
    prior: dict[str, Any] | None = None,
    prior_n: float = 0.0,
    warp: float = 1.0,
    warp_above: float = 0.0,
    clip_level: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features of candidate ``name`` for the clips of ``frames``: ``(X_raw, X, names)``.

    ``X_raw`` is before, ``X`` after standardisation within ``groups`` (None: none).
    ``p`` holds the stage's parameters (``features``, ``frame_features``, ``frames``,
    ``n_ceps``, ``patches``). ``prior`` (from :func:`priors` of a training set) and
    ``prior_n`` shrink small groups' statistics toward the training set's; ``warp`` ≠ 1
    warps MFCC-family and log-mel frames along frequency (training copies of ``stats`` and
    ``sequence``, test-time readings of every candidate; ``sequence``: above
    ``warp_above`` Hz only when it is > 0).
    ``clip_level=False`` skips the clip-level standardisation (``groups`` then only
    normalise ``sequence``'s frames: one group per clip is utterance CMVN).
    """
    from audiopipe.stages._clipfeatures import sequence_features
    from audiopipe.stages.classify.model import standardize_within

    prior = prior or {}
    if name in ("stats", "hgb"):
        X_raw, names = stats_matrix(frames, p.get("features"), warp)
    elif name == "mlp":
        X_raw, names = patch_matrix(frames, int(p.get("patches", 8)), warp)
    elif name == "sequence":
        seqs = {}
        for f in p.get("frame_features") or SEQUENCE_FRAMES:
            if f in frames.available:
                seqs[f] = (frames.get(f, warp, warp_above) if f.startswith("mfcc")
                           else frames.get(f))
        rms = frames.get("rms") if "rms" in frames.available else None
        X_raw, names = sequence_features(
            seqs, rms, int(p["frames"]), n_ceps=p["n_ceps"], trim_db=frames.trim_db,
            groups=groups, prior=prior.get("frames"), prior_n=prior_n,
        )
    else:
        raise ValueError(f"unknown candidate {name!r} (one of {', '.join(CANDIDATES)})")
    if groups is None or not clip_level:
        return X_raw, X_raw, names
    X = standardize_within(X_raw, groups, prior.get("clip"), prior_n)
    return X_raw, X, names


def priors(name: str, frames: Frames, X_raw: np.ndarray, p: dict[str, Any]) -> dict[str, Any]:
    """Speaker-independent statistics of a training set: clip features' mean/var and, for
    ``sequence``, its frame features' mean/var over every training frame."""
    out: dict[str, Any] = {"clip": (X_raw.mean(axis=0), X_raw.var(axis=0))}
    if name == "sequence":
        fp = {}
        for f in p.get("frame_features") or SEQUENCE_FRAMES:
            if f in frames.available:
                allf = np.concatenate([a[:, : p["n_ceps"]] for a in frames.get(f) if len(a)])
                fp[f] = (allf.mean(axis=0).astype(np.float64), allf.var(axis=0).astype(np.float64))
        out["frames"] = fp
    return out

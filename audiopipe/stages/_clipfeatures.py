"""Clip feature matrices shared by the learning stages (classify, tag, recommend).

:func:`clip_features` stacks, per clip: statistics of the ``features`` table, means of
frame features over equal time segments, and time-normalised frame sequences
(:func:`sequence_features`: trimmed, normalised per group or per clip, resampled to a fixed
number of frames), optionally warped along frequency (:func:`warp_matrix`, a
vocal-tract-length perturbation for training copies).

Examples
--------
>>> import numpy as np
>>> a = np.outer(np.arange(20.0), np.ones(3))
>>> X, names = sequence_features({"mfcc": [a, a[:5]]}, None, 4, n_ceps=2)
>>> X.shape, names[0]
((2, 13), 'mfcc_t0[0]')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.stages._common import StageInputError, feature_matrix
from audiopipe.stages._frames import (
    frames_recipe,
    map_frames,
    read_frames_many,
    segment_pool,
    time_normalize,
    trim_bounds,
)

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "clip_features",
    "sequence_features",
    "warp_matrix",
    "mel_warp_matrix",
    "band_reading_matrix",
    "group_cmvn",
    "shrunk_stats",
]


def clip_features(
    ds: Dataset,
    clip_ids: list[str],
    features: list[str] | None = None,
    segments: int = 3,
    frame_features: list[str] | None = None,
    cmn: bool = True,
    stats: tuple[str, ...] = ("mean", "std"),
    groups: np.ndarray | None = None,
    *,
    frames: int = 0,
    n_ceps: int | None = None,
    trim_db: float = 30.0,
    warp: float = 1.0,
) -> tuple[np.ndarray, list[str]]:
    """Feature matrix for ``clip_ids``: clip statistics, pooled segments, time-normalised frames.

    Clip statistics of the ``features`` table are included when ``features`` is given
    or ``frames`` is 0. With ``segments > 0``, the means of ``frame_features`` over that
    many equal time segments; with ``frames > 0``, :func:`sequence_features` of the
    trimmed frames (needs the ``rms`` frame feature for trimming; without it clips are
    used whole). ``warp`` (≠ 1) first warps MFCC-family frames along frequency
    (:func:`warp_matrix`, vocal-tract-length perturbation for training copies).
    With ``groups`` (one value per clip), frames are first normalised by the mean and
    std of all frames of their group (speaker CMVN); otherwise MFCCs are mean-normalised
    per clip (``cmn``).
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    if features is not None or frames <= 0:
        X_all, ids, tnames = feature_matrix(ds, features, stats=tuple(stats))
        pos = {c: i for i, c in enumerate(ids)}
        missing = [c for c in clip_ids if c not in pos]
        if missing:
            raise StageInputError(f"dataset {ds.name!r}: clips without features: {missing[:3]}")
        blocks.append(X_all[[pos[c] for c in clip_ids]])
        names += list(tnames)
    avail = set(ds.features_available())
    W = None
    if warp != 1.0:
        W = warp_matrix(warp, frames_recipe(ds))
    if segments > 0 and frames <= 0 and groups is None:
        # clip-level pooling only: stream the frame store part by part (bounded memory)
        for f in frame_features or ["mfcc", "mfcc_delta"]:
            if f not in avail:
                continue
            Wf = W.T.astype(np.float32) if W is not None and f.startswith("mfcc") else None
            centre = cmn and f == "mfcc"

            def pool(a: np.ndarray, Wf: Any = Wf, centre: bool = centre) -> np.ndarray:
                if len(a) and Wf is not None:
                    a = a @ Wf
                if len(a) and centre:
                    a = a - a.mean(axis=0)
                return segment_pool(a, segments)

            pooled, _ = map_frames(ds, clip_ids, f, pool)
            blocks.append(np.stack(pooled))
            d = pooled[0].size // segments if pooled else 0
            names += [f"{f}_seg{s}[{j}]" for s in range(segments) for j in range(d)]
    elif segments > 0 or frames > 0:
        seqs: dict[str, list[np.ndarray]] = {}
        for f in frame_features or ["mfcc", "mfcc_delta"]:
            if f not in avail:
                continue
            fr = read_frames_many(ds, clip_ids, f)
            if W is not None and f.startswith("mfcc"):
                fr = [a @ W.T.astype(np.float32) if len(a) else a for a in fr]
            seqs[f] = fr
        if segments > 0:
            for f, fr in seqs.items():
                if groups is not None:
                    fr = group_cmvn(fr, np.asarray(groups, dtype=object))
                elif cmn and f == "mfcc":
                    fr = [a - a.mean(axis=0) if len(a) else a for a in fr]
                blocks.append(np.stack([segment_pool(a, segments) for a in fr]))
                d = fr[0].shape[1] if fr else 0
                names += [f"{f}_seg{s}[{j}]" for s in range(segments) for j in range(d)]
        if frames > 0 and seqs:
            rms = read_frames_many(ds, clip_ids, "rms") if "rms" in avail else None
            Xs, snames = sequence_features(
                seqs, rms, frames, n_ceps=n_ceps, trim_db=trim_db, groups=groups, cmn=cmn
            )
            blocks.append(Xs)
            names += snames
    if not blocks:
        return np.zeros((len(clip_ids), 0)), []
    X = np.concatenate(blocks, axis=1).astype(np.float64)
    return np.nan_to_num(X), names


def sequence_features(
    seqs: dict[str, list[np.ndarray]],
    rms: list[np.ndarray] | None,
    n_frames: int = 10,
    *,
    n_ceps: int | None = 13,
    trim_db: float = 30.0,
    groups: np.ndarray | None = None,
    cmn: bool = True,
    prior: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    prior_n: float = 0.0,
) -> tuple[np.ndarray, list[str]]:
    """Time-normalised frame sequences: one row per clip.

    Each clip's frames (every feature of ``seqs``, first ``n_ceps`` columns) are trimmed
    to the part within ``trim_db`` of the loudest ``rms`` frame, normalised (by their
    ``groups``' frame mean/std, else per-clip mean for ``mfcc`` when ``cmn``), resampled
    to ``n_frames`` frames (linear interpolation) and flattened; the trimmed sequence's
    mean and std and log length (in frames) are appended. ``prior[feature] = (mean, var)``
    shrinks a small group's frame statistics toward it (:func:`group_cmvn`).

    Examples
    --------
    >>> a = np.outer(np.arange(20.0), np.ones(3))
    >>> X, names = sequence_features({"mfcc": [a, a[:5]]}, None, 4, n_ceps=2)
    >>> X.shape, names[0]
    ((2, 13), 'mfcc_t0[0]')
    """
    feats = list(seqs)
    n = len(next(iter(seqs.values()))) if seqs else 0
    bounds = [
        trim_bounds(rms[i][:, 0] if rms[i].ndim == 2 else rms[i], trim_db)
        if rms is not None and len(rms[i])
        else (0, len(seqs[feats[0]][i]))
        for i in range(n)
    ]
    cut: dict[str, list[np.ndarray]] = {}
    for f in feats:
        fr = [np.asarray(a, np.float64)[:, :n_ceps] for a in seqs[f]]
        if groups is not None:
            pf = (prior or {}).get(f)
            fr = group_cmvn(fr, np.asarray(groups, dtype=object), pf, prior_n)
        elif cmn and f == "mfcc":
            fr = [a - a.mean(axis=0) if len(a) else a for a in fr]
        cut[f] = [a[b0:b1] for a, (b0, b1) in zip(fr, bounds, strict=True)]
    rows = []
    for i in range(n):
        seq = np.concatenate([cut[f][i] for f in feats], axis=1)
        empty = len(seq) == 0
        mu = np.zeros(seq.shape[1]) if empty else seq.mean(axis=0)
        sd = np.zeros(seq.shape[1]) if empty else seq.std(axis=0)
        rows.append(
            np.concatenate(
                [time_normalize(seq, n_frames).ravel(), mu, sd, [np.log(max(len(seq), 1))]]
            )
        )
    dims = [f"{f}[{j}]" for f in feats for j in range(cut[f][0].shape[1] if n else 0)]
    names = [f"{d.split('[')[0]}_t{t}[{d.split('[')[1]}" for t in range(n_frames) for d in dims]
    names += [f"{d}_mean" for d in dims] + [f"{d}_std" for d in dims] + ["log_n_frames"]
    return np.asarray(rows, dtype=np.float64).reshape(n, len(names)), names


def warp_matrix(alpha: float, recipe: dict[str, Any], above: float = 0.0) -> np.ndarray | None:
    """Linear map of MFCC vectors for a frequency warp ``f -> alpha * f`` (VTLN-like), or
    of the spectrum above ``above`` Hz only (:func:`mel_warp_matrix`).

    MFCCs are taken back to a (smoothed) log-mel spectrum with the transposed DCT,
    the mel bands are re-read at ``f / alpha`` (linear interpolation between band
    centres) and transformed back: ``W = D M D^T`` (lifter undone and redone). Linear, so
    it applies to the deltas too. ``None`` when the recipe has no MFCC.

    Examples
    --------
    >>> rec = {"sr": 8000, "compute": {"mfcc": {"n_mfcc": 13, "n_mels": 40}}}
    >>> bool(np.allclose(warp_matrix(1.0, rec), np.eye(13), atol=1e-5))
    True
    """
    m = (recipe.get("compute") or {}).get("mfcc")
    if m is None or "sr" not in recipe:
        return None
    n_mfcc, n_mels = int(m.get("n_mfcc", 20)), int(m.get("n_mels", 128))
    fmax = m.get("fmax") or recipe["sr"] / 2
    lifter = float(m.get("lifter") or 0.0)
    import audiopipe.features as F

    D = F.dct_matrix(n_out=n_mfcc, n_in=n_mels).astype(np.float64)
    L = np.ones(n_mfcc)
    if lifter > 0:
        L = 1 + (lifter / 2) * np.sin(np.pi * np.arange(1, n_mfcc + 1) / lifter)
    M = mel_warp_matrix(alpha, n_mels, float(m.get("fmin") or 0.0), fmax,
                        bool(m.get("htk", False)), above)
    return (L[:, None] * D) @ M @ (D.T / L[None, :])


def mel_warp_matrix(alpha: float, n_mels: int, fmin: float, fmax: float,
                    htk: bool = False, above: float = 0.0) -> np.ndarray:
    """``(n_mels, n_mels)`` map re-reading mel bands at ``f / alpha`` (a frequency warp
    ``f -> alpha * f``, linear interpolation between band centres); applies to log-mel
    frames as ``frames @ M.T``. With ``above`` > 0 only the bands above ``above`` Hz move
    (read at ``above + (f - above) / alpha``, the bands below kept): F2 and F3 moved with
    F1 kept, as a vowel differs between accents.

    Examples
    --------
    >>> bool(np.allclose(mel_warp_matrix(1.0, 40, 0.0, 4000.0), np.eye(40)))
    True
    >>> M = mel_warp_matrix(1.4, 40, 0.0, 4000.0, above=1000.0)
    >>> bool(np.allclose(M[:17], np.eye(40)[:17])), bool(np.allclose(M[20:], np.eye(40)[20:]))
    (True, False)
    """
    import audiopipe.features as F

    c = F.mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)[1:-1]
    return band_reading_matrix(c, np.where(c > above, above + (c - above) / alpha, c))


def band_reading_matrix(c: np.ndarray, src: np.ndarray) -> np.ndarray:
    """``(n, n)`` matrix whose row ``k`` reads band ``k`` (centre ``c[k]``, Hz) at frequency
    ``src[k]``: linear interpolation between the two band centres around it (clipped to the
    first and last band); applies to frames as ``frames @ M.T``.

    Examples
    --------
    >>> c = np.array([100.0, 200.0, 300.0])
    >>> band_reading_matrix(c, np.array([100.0, 150.0, 300.0]))[1].tolist()
    [0.5, 0.5, 0.0]
    """
    n = len(c)
    pos = np.interp(np.clip(src, c[0], c[-1]), c, np.arange(n))
    lo = np.minimum(np.floor(pos).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = pos - lo
    M = np.zeros((n, n))
    np.add.at(M, (np.arange(n), lo), 1 - w)
    np.add.at(M, (np.arange(n), hi), w)
    return M


def group_cmvn(
    frames: list[np.ndarray],
    groups: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    prior_n: float = 0.0,
) -> list[np.ndarray]:
    """Frames normalised by the mean and std of all frames of their group (speaker CMVN).

    With ``prior = (mean, var)`` a group's statistics are shrunk toward it as if the prior
    were ``prior_n`` more clips of the group's average length (one clip of a new speaker:
    mostly the prior).
    """
    out = list(frames)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        allf = np.concatenate([frames[i] for i in idx if len(frames[i])] or [np.zeros((1, 1))])
        if prior is not None and allf.shape[1] == len(prior[0]):
            per_clip = len(allf) / max(len(idx), 1)
            mu, sd = shrunk_stats(allf, prior, prior_n * per_clip)
        else:
            mu, sd = allf.mean(axis=0), allf.std(axis=0)
        sd = sd + 1e-6
        for i in idx:
            if len(frames[i]):
                out[i] = (frames[i] - mu) / sd
    return out


def shrunk_stats(
    x: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None, prior_n: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the rows of ``x``, shrunk toward ``prior = (mean, var)`` as if the
    prior were ``prior_n`` more rows: ``w = n / (n + prior_n)``.

    Examples
    --------
    >>> mu, sd = shrunk_stats(np.array([[4.0]]), (np.array([0.0]), np.array([1.0])), 1.0)
    >>> float(mu[0]), float(sd[0])
    (2.0, 0.7071...)
    """
    mu, var = x.mean(axis=0), x.var(axis=0)
    if prior is None or prior_n <= 0:
        return mu, np.sqrt(var)
    w = len(x) / (len(x) + prior_n)
    return w * mu + (1 - w) * prior[0], np.sqrt(w * var + (1 - w) * prior[1])

"""The ``separate`` stage's mask method: training from labelled clips, held-out scores.

:func:`fit_mask` trains a :class:`~audiopipe.stages.masking.MaskSeparator` on a dataset's
labelled isolated clips, keeping a ``holdout`` share of each source's clips out of training;
:func:`holdout_scores` scores it on 0 dB mixtures of those clips in fixed order (plain SDR
per stem, :func:`plain_sdr`), next to the ideal ratio mask (the bound of a mask method) and
stems = mixture / n_sources.

Examples
--------
>>> round(plain_sdr(np.ones(4), np.full(4, 0.9)), 1)
20.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import audiopipe.features as F
from audiopipe.stages.base import StageContext
from audiopipe.stages.masking import MaskSeparator, _mono, _resample, ratio_masks

__all__ = ["MaskState", "fit_mask", "holdout_scores", "plain_sdr", "zero_db_mixtures"]


def plain_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(|s|^2 / |s - s_hat|^2)`` in dB (the plain SDR, no allowed distortion).

    Examples
    --------
    >>> round(plain_sdr(np.ones(4), np.full(4, 0.9)), 1)
    20.0
    """
    s = np.asarray(reference, np.float64)
    e = s - np.asarray(estimate, np.float64)
    return float(10 * np.log10(max(np.sum(s**2), 1e-20) / max(np.sum(e**2), 1e-20)))


def zero_db_mixtures(
    sources: Mapping[str, Sequence[np.ndarray]], n: int, length: int, seed: int = 0
) -> list[list[np.ndarray]]:
    """``n`` mixtures' parts: one random excerpt of ``length`` samples (or the whole
    recording, padded) per source, every part scaled to the first part's RMS (0 dB)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts = []
        for recs in sources.values():
            r = recs[int(rng.integers(len(recs)))]
            a = int(rng.integers(0, max(1, r.size - length + 1)))
            x = np.pad(r[a : a + length], (0, max(0, length - r.size)))
            parts.append(x.astype(np.float64))
        ref = np.sqrt(np.mean(parts[0] ** 2))
        out.append([(p * ref / max(np.sqrt(np.mean(p**2)), 1e-12)).astype(np.float32)
                    for p in parts])
    return out


def holdout_scores(
    sep: MaskSeparator, sources: Mapping[str, Sequence[np.ndarray]], sr: float, n: int = 12,
    duration: float = 4.0,
) -> dict[str, float]:
    """Plain SDR per stem (fixed order, no permutation) of ``sep`` on ``n`` 0 dB mixtures
    of ``sources`` (recordings it was not trained on, at rate ``sr``), next to the ideal
    ratio mask (the bound) and stems = mixture / n_sources: ``{"sdr_<name>": ...,
    "irm_sdr_<name>": ..., "half_sdr_<name>": ..., "sdr_mean": ..., "n_mixtures": n}``."""
    mixes = zero_db_mixtures(
        {k: [_mono(r) for r in v] for k, v in sources.items()}, n, int(duration * sr)
    )
    names = list(sources)
    rows: dict[str, list[float]] = {}
    for parts in mixes:
        mix = np.sum(parts, axis=0)
        est = sep.separate(mix, sr=sr)
        x = _resample(mix, sr, sep.sr)
        Ds = [sep._stft(_resample(p, sr, sep.sr)) for p in parts]
        D = sep._stft(x)
        kw = {"n_fft": sep.n_fft, "hop_length": sep.hop_length, "length": x.size}
        ideal = [_resample(F.istft(D * m, **kw), sep.sr, sr)[: mix.size]
                 for m in ratio_masks([np.abs(d) for d in Ds])]
        for i, k in enumerate(names):
            rows.setdefault(f"sdr_{k}", []).append(plain_sdr(parts[i], est[k]))
            rows.setdefault(f"irm_sdr_{k}", []).append(plain_sdr(parts[i], ideal[i]))
            rows.setdefault(f"half_sdr_{k}", []).append(
                plain_sdr(parts[i], mix / len(names)))
    out = {k: float(np.mean(v)) for k, v in rows.items()}
    out["sdr_mean"] = float(np.mean([out[f"sdr_{k}"] for k in names]))
    out["n_mixtures"] = float(len(mixes))
    return out


@dataclass
class MaskState:
    """What :meth:`Separate.fit` leaves for the clips in mask mode."""

    model: Any
    model_id: str
    model_uri: str
    scores: dict[str, float]


def fit_mask(ctx: StageContext, labels: dict[str, Any], model_id: str) -> MaskState:
    """Train a MaskSeparator on the labelled clips (a ``holdout`` share of each source's
    clips kept out and scored), save it with skops."""
    from audiopipe.stages._common import StageInputError, save_model

    p = ctx.params
    rng = np.random.default_rng(p["random_state"])
    train: dict[str, list[np.ndarray]] = {}
    held: dict[str, list[np.ndarray]] = {}
    for s in p["sources"]:
        # ``labels`` follows ``clips`` order, which is content order: the held-out split
        # and the training order depend on the recordings, not on where the dataset lives
        ids = [c for c, v in labels.items() if v == s]
        if not ids:
            raise StageInputError(f"dataset {ctx.ds.name!r}: no clip has {p['label_column']}="
                                  f"{s!r} to learn source {s!r}")
        ids = [ids[i] for i in rng.permutation(len(ids))]
        k = int(round(p["holdout"] * len(ids))) if len(ids) >= 2 else 0
        k = min(k, len(ids) - 1)
        audio = [ctx.ds.load_audio(c, sr=p["mask_sr"])[0] for c in ids]
        held[str(s)], train[str(s)] = audio[:k], audio[k:]
    lo, hi = sorted(float(g) for g in p["gain_db"])
    est = MaskSeparator(
        sr=p["mask_sr"], hidden_layer_sizes=(p["hidden_units"],), max_iter=p["max_iter"] or 20,
        n_mixtures=p["n_mixtures"], duration=p["mix_duration_s"], gain_db=(lo, hi),
        mask_exponent=p["mask_exponent"], random_state=p["random_state"],
    ).fit(train, sr=p["mask_sr"])
    scores = {}
    if all(held.values()):
        scores = holdout_scores(est, held, p["mask_sr"], duration=p["mix_duration_s"])
        scores["n_train_clips"] = float(sum(len(v) for v in train.values()))
        scores["n_holdout_clips"] = float(sum(len(v) for v in held.values()))
    return MaskState(est, model_id, save_model(ctx, "separate", est), scores)

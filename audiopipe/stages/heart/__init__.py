"""Supervised heart-sound segmentation (S1 / systole / S2 / diastole), after Springer et al.

A logistic-regression HSMM (Springer, Tarassenko & Clifford 2016; Schmidt et al. 2010):
envelope features, per-state emission probabilities learned from labelled recordings,
heart rate and systolic interval estimated per recording (30-240 bpm), and a
duration-dependent Viterbi decoder that segments every recording from start to end.

Modules
-------
features : envelopes (homomorphic, Hilbert, PSD, wavelet band, octave bands), spike
    removal, heart period candidates from the windowed envelope autocorrelation.
hsmm : the cyclic semi-Markov Viterbi decoder (several duration models in one pass) and
    the duration distributions.
model : :class:`HeartSegmenter` (scikit-learn estimator; skops-persistable, trust
    :data:`TRUSTED`): features and training.
decode : its decoding half (a mixin): duration models, heart-period candidates
    (:meth:`~.decode.Decoding.rate_candidates`), HSMM decoding with refinement and the
    optional local rate search, the identity check, segments.
identity : whether a decoded path has S1 and S2 in place or swapped, by cues that hold
    across patients and sites (S1 lower-pitched, systole shorter than diastole, systole
    steadier than diastole from beat to beat); used by
    ``HeartSegmenter(identity_check=True)``.
references : CirCor ``.tsv`` intervals, PASCAL CSV points, :func:`read_references` for a
    folder / file of either.
evaluate : :func:`cross_val_segments` (grouped, e.g. leave-one-patient-out), frame
    accuracy over annotated frames, S1/S2 F-measure within the reference's annotated
    stretches (:func:`annotated_stretches`: not where the annotators skipped beats),
    :func:`score_recording`, and :func:`plot_heart`.

Wiring into the ``segment`` stage (a ``heart`` mode)
----------------------------------------------------
1. ``refs = read_references(params["reference"], params.get("sample_rate"))``; match each
   key to a clip (the clip's uri ends with the key, with or without the audio extension).
2. ``est = HeartSegmenter(**{k: params[k] for k in HeartSegmenter().get_params() if k in
   params})``; recordings ``(y, sr)`` from ``ds.load_audio``.
3. Metrics: ``cross_val_segments(est, recs, [r["intervals"] ...], groups)`` with groups
   the patient (CirCor: the name up to the first ``_``), then the mean of
   :func:`score_recording` (``frame_accuracy``, ``f_S1``, ``f_S2``, ``f_sounds``; window
   ``tolerance_s``, default 0.1).
4. ``final = est.fit(recs, intervals)``; ``final.analyse(y, sr)`` for every clip gives
   ``segments`` (whole-recording coverage) and their ``confidence``, plus
   ``heart_rate_bpm``; save ``final`` with skops, load with ``trusted=TRUSTED``;
   :func:`plot_heart` (envelope + reference and estimated states; ``span`` of ~5 s).

Examples
--------
>>> from audiopipe.stages.heart import HeartSegmenter, STATES
>>> STATES
('S1', 'systole', 'S2', 'diastole')
"""

from audiopipe.stages.heart.evaluate import (
    annotated_stretches,
    cross_val_segments,
    f_measure,
    frame_accuracy,
    plot_heart,
    score_recording,
    sound_centres,
    sound_scores,
)
from audiopipe.stages.heart.features import cycle_candidates, envelope_features
from audiopipe.stages.heart.hsmm import gaussian_durations, hsmm_viterbi
from audiopipe.stages.heart.model import HeartSegmenter
from audiopipe.stages.heart.references import (
    STATES,
    intervals_to_frames,
    points_to_intervals,
    read_interval_reference,
    read_point_references,
    read_references,
)

__all__ = [
    "STATES",
    "annotated_stretches",
    "TRUSTED",
    "HeartSegmenter",
    "cross_val_segments",
    "cycle_candidates",
    "envelope_features",
    "f_measure",
    "frame_accuracy",
    "gaussian_durations",
    "hsmm_viterbi",
    "intervals_to_frames",
    "plot_heart",
    "points_to_intervals",
    "read_interval_reference",
    "read_point_references",
    "read_references",
    "score_recording",
    "sound_centres",
    "sound_scores",
]

TRUSTED = ["audiopipe.stages.heart.model.HeartSegmenter"]

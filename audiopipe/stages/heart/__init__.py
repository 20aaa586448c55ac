"""Supervised heart-sound segmentation (S1 / systole / S2 / diastole), after Springer et al.

A logistic-regression HSMM (Springer, Tarassenko & Clifford 2016; Schmidt et al. 2010):
envelope features, per-state emission probabilities learned from labelled recordings,
heart rate and systolic interval estimated per recording (30-240 bpm), and a
duration-dependent Viterbi decoder that segments every recording from start to end.

Modules
-------
features : envelopes (homomorphic, Hilbert, PSD, wavelet band), spike removal, heart
    period candidates from the envelope autocorrelation.
hsmm : the cyclic semi-Markov Viterbi decoder and duration distributions.
model : :class:`HeartSegmenter`, the scikit-learn-style estimator.
references : CirCor ``.tsv`` interval and PASCAL CSV point references.
evaluate : frame accuracy, S1/S2 F-measure, and :func:`plot_heart`.

Examples
--------
>>> from audiopipe.stages.heart import HeartSegmenter, STATES
>>> STATES
('S1', 'systole', 'S2', 'diastole')
"""

from audiopipe.stages.heart.evaluate import (
    f_measure,
    frame_accuracy,
    plot_heart,
    score_recording,
    sound_centres,
    sound_scores,
)
from audiopipe.stages.heart.features import cycle_candidates, envelope_features
from audiopipe.stages.heart.hsmm import gaussian_durations, hsmm_viterbi
from audiopipe.stages.heart.model import HeartSegmenter, cross_val_segments
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

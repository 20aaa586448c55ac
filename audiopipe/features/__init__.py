"""audiopipe.features: pure numpy/scipy audio features, librosa-compatible names.

Functional API (``audiopipe.features.mfcc(y=y, sr=sr)``, ``stft``, ``istft``, ...; keyword
arguments as librosa's) and the recipe machinery the pipeline uses: :data:`FEATURES`,
:func:`check_recipe`, :func:`recipe_hash`, :data:`DEFAULT_RECIPE` and :class:`Extractor` (all
features of a recipe from one shared STFT, whole clips or streamed blocks). No I/O, no
librosa import; float32 outputs in librosa's ``(..., n_dims, n_frames)`` layout. Every
public function, and one Extractor, may be called from many threads at once.

Layout: each feature's module holds its function, its block kernels and its recipe
declaration (:func:`~audiopipe.features.registry.feature`): ``mel`` (melspectrogram, mfcc),
``spectral`` (spectrogram and shape), ``contrast``, ``paa`` (pyAudioAnalysis' entropy and
flux), ``temporal``, ``chroma``, ``rhythm`` (onset strength, tempogram), ``speech`` (the
speech front end, gfcc, bfcc), ``lpc``, ``pncc``, ``cepstral`` (real cepstrum). They build
on ``frontend`` (the one spectrogram front end: ``y`` or ``S``), ``extractor``, ``registry``,
``filters``, ``db``, ``deltas`` and ``_core``.

Examples
--------
>>> import numpy as np, audiopipe.features as F
>>> ex = F.Extractor(F.DEFAULT_RECIPE, sr=22050)
>>> out = ex(np.zeros(22050, np.float32))
>>> sorted(out)[:3]
['melspectrogram', 'mfcc', 'mfcc_delta']
"""

from ._core import as_audio, fft_frequencies, frame, get_window, istft, stft
from .cepstral import real_cepstrum
from .chroma import chroma_stft, estimate_tuning, piptrack
from .contrast import spectral_contrast
from .db import amplitude_to_db, db_to_power, power_to_db
from .deltas import delta
from .extractor import Extractor
from .filters import (
    bark_filterbank,
    chroma_filterbank,
    dct_matrix,
    gammatone_filterbank,
    hz_to_mel,
    mel_filterbank,
    mel_frequencies,
    mel_to_hz,
)
from .lpc import lpc, lpcc
from .mel import melspectrogram, mfcc
from .paa import spectral_entropy, spectral_flux
from .pncc import pncc
from .registry import DEFAULT_RECIPE, FEATURES, FEATURES_VERSION, check_recipe, recipe_hash
from .rhythm import onset_strength, tempogram
from .spectral import (
    spectral_bandwidth,
    spectral_centroid,
    spectral_flatness,
    spectral_rolloff,
    spectrogram,
    spectrum,
)
from .speech import bfcc, gfcc
from .temporal import energy, energy_entropy, rms, zero_crossing_rate

__all__ = [
    "DEFAULT_RECIPE",
    "FEATURES",
    "FEATURES_VERSION",
    "amplitude_to_db",
    "as_audio",
    "bark_filterbank",
    "bfcc",
    "check_recipe",
    "chroma_filterbank",
    "chroma_stft",
    "db_to_power",
    "dct_matrix",
    "delta",
    "energy",
    "energy_entropy",
    "estimate_tuning",
    "Extractor",
    "fft_frequencies",
    "frame",
    "gammatone_filterbank",
    "get_window",
    "gfcc",
    "hz_to_mel",
    "istft",
    "lpc",
    "lpcc",
    "mel_filterbank",
    "mel_frequencies",
    "mel_to_hz",
    "melspectrogram",
    "mfcc",
    "onset_strength",
    "piptrack",
    "pncc",
    "power_to_db",
    "real_cepstrum",
    "recipe_hash",
    "rms",
    "spectral_bandwidth",
    "spectral_centroid",
    "spectral_contrast",
    "spectral_entropy",
    "spectral_flatness",
    "spectral_flux",
    "spectral_rolloff",
    "spectrogram",
    "spectrum",
    "stft",
    "tempogram",
    "zero_crossing_rate",
]

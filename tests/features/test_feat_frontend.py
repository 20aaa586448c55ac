"""frontend: the one spectrogram front end and the keyword-only public API.

Every spectral function goes through ``frontend.spectral``: from ``y`` through the cached
recipe Extractor when the call is expressible as a recipe, otherwise through its direct
kernel on ``|stft|**power`` or a given ``S``. Both paths must give the same numbers, the
right path must be taken, and misspelt keywords must be errors.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from feat_helpers import assert_rel, noise

import audiopipe.features as F
from audiopipe.features import frontend

#: librosa's positional parameters (the data a function works on); everything else of every
#: public function is keyword-only, as in librosa
POSITIONAL = {
    "as_audio": ["y"], "stft": ["y"], "istft": ["stft_matrix"], "frame": ["y"],
    "zero_crossing_rate": ["y"], "energy": ["y"], "energy_entropy": ["y"], "lpc": ["y"],
    "delta": ["data"], "power_to_db": ["S"], "amplitude_to_db": ["S"], "db_to_power": ["S_db"],
    "get_window": ["window", "win_length"], "hz_to_mel": ["frequencies"], "mel_to_hz": ["mels"],
    "mel_frequencies": ["n_mels"], "dct_matrix": ["n_out", "n_in"],
    "check_recipe": ["recipe"], "recipe_hash": ["recipe"],
}


def _functions():
    return [n for n in F.__all__ if inspect.isfunction(inspect.unwrap(getattr(F, n)))]


@pytest.mark.parametrize("name", _functions())
def test_public_functions_are_keyword_only(name):
    sig = inspect.signature(getattr(F, name))
    positional = [p.name for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert positional == POSITIONAL.get(name, []), name


def test_every_fast_function_is_covered():
    assert len(_functions()) > 40 and set(FAST) <= set(_functions())


Y = noise(22050 * 3, seed=3)
SR = 22050
WIN = F.get_window("hann", 2048)  # the same window as an array: not a recipe -> direct path

#: the functions with a recipe path, with arguments
FAST = {
    "melspectrogram": dict(sr=SR, n_mels=64, fmax=8000.0),
    "mfcc": dict(sr=SR, n_mfcc=13, lifter=10.0),
    "spectral_centroid": dict(sr=SR),
    "spectral_bandwidth": dict(sr=SR, p=3.0),
    "spectral_rolloff": dict(sr=SR, roll_percent=0.6),
    "spectral_flatness": dict(power=1.0),
    "spectral_contrast": dict(sr=SR, n_bands=5),
    "chroma_stft": dict(sr=SR, tuning=0.1),
    "onset_strength": dict(sr=SR, n_mels=64),
}


@pytest.mark.parametrize("name", sorted(FAST))
def test_recipe_path_equals_direct_path(name):
    fn, kw = getattr(F, name), FAST[name]
    frontend._extractor.cache_clear()
    fast = fn(y=Y, **kw)
    assert frontend._extractor.cache_info().currsize == 1, "the recipe path was not taken"
    if name == "onset_strength":  # no window keyword: the uncentred envelope is direct
        direct = fn(y=Y, center=False, **kw)
        n_pad = 2048 // (2 * 512)
        np.testing.assert_allclose(fast[n_pad + 1 :], direct[1 : len(direct) - n_pad],
                                   rtol=1e-4, atol=1e-4)
        return
    frontend._extractor.cache_clear()
    direct = fn(y=Y, window=WIN, **kw)
    assert frontend._extractor.cache_info().currsize == 0, "the direct path used a recipe"
    assert fast.shape == direct.shape and fast.dtype == direct.dtype == np.float32
    assert_rel(fast, direct, 1e-4, name)  # float32 rounding of two summation orders


@pytest.mark.parametrize("name", sorted(set(FAST) - {"mfcc", "onset_strength"}))
def test_precomputed_S_equals_y(name):
    """``S`` (magnitude, or power for mel and chroma) gives what ``y`` gives."""
    fn, kw = getattr(F, name), FAST[name]
    M = np.abs(F.stft(Y))
    S = M**2 if name in ("melspectrogram", "chroma_stft") else M
    assert_rel(fn(S=S, **kw), fn(y=Y, **kw), 1e-5, name)


def test_misspelt_keywords_are_errors():
    with pytest.raises(TypeError, match=r"mfcc\(\).*'hop'.*hop_length"):
        F.mfcc(y=Y, sr=SR, hop=256)
    with pytest.raises(TypeError, match=r"spectral_centroid\(\).*'nfft'"):
        F.spectral_centroid(y=Y, nfft=1024)
    with pytest.raises(TypeError, match=r"spectrogram\(\).*'n_mels'"):
        F.spectrogram(y=Y, n_mels=40)
    with pytest.raises(TypeError, match=r"gfcc\(\).*'n_mels'.*pre_emphasis"):
        F.gfcc(y=Y, sr=16000, n_mels=40)
    with pytest.raises(TypeError, match=r"spectral_flux\(\).*'win_length'"):
        F.spectral_flux(y=Y, sr=SR, win_length=512)
    with pytest.raises(TypeError):
        F.mfcc(Y, sr=SR)  # keyword-only
    with pytest.raises(ValueError, match="either y or S"):
        F.spectral_rolloff(sr=SR)


def test_odd_n_fft_direct_path_matches_librosa(librosa):
    """The direct path uses the requested n_fft (not 2 (bins - 1)) for banks and frequencies."""
    kw = dict(n_fft=1025, hop_length=256, pad_mode="reflect")  # reflect: the direct path
    assert_rel(F.melspectrogram(y=Y, sr=SR, **kw),
               librosa.feature.melspectrogram(y=Y, sr=SR, **kw), 1e-4)
    assert_rel(F.spectral_centroid(y=Y, sr=SR, **kw),
               librosa.feature.spectral_centroid(y=Y, sr=SR, **kw), 1e-4)

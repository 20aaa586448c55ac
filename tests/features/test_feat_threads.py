"""Every public feature function gives the serial answer when called from many threads.

Eight threads run every public callable of ``audiopipe.features`` on their own clips, twice:
first in lockstep (a barrier before each case, so eight calls of the same function on eight
clips run at once, as a thread pool mapping one function over clips does), then each thread
in its own shuffled order (different functions at once). Every result must equal the serial
result for that clip exactly: same process, same code path, so any difference is shared
state, not rounding. A shared :class:`~audiopipe.features.Extractor` is called and streamed
from all threads at once in the same way.

The case table must cover every callable in ``audiopipe.features.__all__``: a new public
function without a threaded case fails :func:`test_every_public_callable_has_a_case`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import audiopipe.features as F

N_THREADS = 8
SR = 22050


class Clip:
    """One thread's input: a distinct signal plus inputs derived from it (made serially)."""

    def __init__(self, i: int) -> None:
        rng = np.random.default_rng(100 + i)
        n = int(SR * (2.5 + 0.3 * i))  # different lengths per clip
        t = np.arange(n) / SR
        f0 = 110.0 * 2 ** (i / 5)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2.7 * f0 * t)
        y = y * (0.5 + 0.5 * np.sin(2 * np.pi * (1 + i) * t) ** 2)  # onsets
        y += (0.02 + 0.01 * i) * rng.standard_normal(n)
        self.i = i
        self.y = y.astype(np.float32)
        self.pcm = (self.y * 16000).astype(np.int16)
        D = F.stft(self.y)
        self.D = D
        self.M = np.abs(D)
        self.P = self.M**2
        self.S_db = F.power_to_db(self.P)
        self.mfcc = F.mfcc(y=self.y, sr=SR)
        self.chunks = np.split(self.y, np.sort(rng.integers(0, n, 12)))
        self.recipe = {"compute": {"mfcc": {"n_mfcc": 10 + i, "deltas": 1}, "rms": {}}}


def _shared_extractor() -> F.Extractor:
    """One Extractor of every recipe feature, including the two-pass whole-clip constants."""
    compute: dict[str, dict] = {name: {} for name in F.FEATURES}
    compute["mfcc"] = {"deltas": 2, "top_db": 80.0}
    compute["melspectrogram"] = {"log": True, "top_db": 80.0}
    compute["chroma_stft"] = {"tuning": None}
    compute["real_cepstrum"] = {"n_ceps": 30}
    return F.Extractor({"compute": compute}, SR)


EX = _shared_extractor()


#: public callable -> cases, each ``f(clip) -> result``
CASES: dict[str, list[Callable[[Clip], Any]]] = {
    "amplitude_to_db": [lambda c: F.amplitude_to_db(c.M, ref=np.max)],
    "as_audio": [lambda c: F.as_audio(c.pcm)],
    "bark_filterbank": [lambda c: F.bark_filterbank(sr=16000, n_fft=512, n_bands=20 + c.i)],
    "bfcc": [lambda c: F.bfcc(y=c.y, sr=16000)],
    "check_recipe": [lambda c: F.check_recipe(c.recipe)],
    "chroma_filterbank": [lambda c: F.chroma_filterbank(sr=SR, n_fft=2048,
                                                        tuning=0.05 * c.i - 0.2)],
    "chroma_stft": [lambda c: F.chroma_stft(y=c.y, sr=SR),
                    lambda c: F.chroma_stft(y=c.y, sr=SR, tuning=0.0),
                    lambda c: F.chroma_stft(S=c.P, sr=SR)],
    "db_to_power": [lambda c: F.db_to_power(c.S_db)],
    "dct_matrix": [lambda c: F.dct_matrix(13 + c.i, 40)],
    "delta": [lambda c: F.delta(c.mfcc), lambda c: F.delta(c.mfcc, order=2)],
    "energy": [lambda c: F.energy(c.y, sr=SR)],
    "energy_entropy": [lambda c: F.energy_entropy(c.y, sr=SR)],
    "estimate_tuning": [lambda c: F.estimate_tuning(y=c.y, sr=SR)],
    "Extractor": [lambda c: EX(c.y),
                  lambda c: list(EX.stream([c.chunks[0], c.chunks[1]] + c.chunks[2:]))],
    "fft_frequencies": [lambda c: F.fft_frequencies(sr=SR, n_fft=256 * (c.i + 1))],
    "frame": [lambda c: F.frame(c.y, frame_length=2048, hop_length=512).copy()],
    "gammatone_filterbank": [lambda c: F.gammatone_filterbank(sr=16000, n_fft=512,
                                                              n_bands=20 + c.i)],
    "get_window": [lambda c: F.get_window("hann", 100 + c.i),
                   lambda c: F.get_window(("kaiser", 4.0 + c.i), 256)],
    "gfcc": [lambda c: F.gfcc(y=c.y, sr=16000)],
    "hz_to_mel": [lambda c: F.hz_to_mel(np.linspace(0, 8000, 50 + c.i))],
    "istft": [lambda c: F.istft(c.D, length=len(c.y))],
    "lpc": [lambda c: F.lpc(c.y, sr=16000)],
    "lpcc": [lambda c: F.lpcc(y=c.y, sr=16000), lambda c: F.lpcc(S=c.P, sr=SR)],
    "mel_filterbank": [lambda c: F.mel_filterbank(sr=SR, n_fft=2048, n_mels=40 + c.i)],
    "mel_frequencies": [lambda c: F.mel_frequencies(n_mels=40 + c.i, fmax=8000.0)],
    "mel_to_hz": [lambda c: F.mel_to_hz(np.linspace(0, 40, 50 + c.i))],
    "melspectrogram": [lambda c: F.melspectrogram(y=c.y, sr=SR),
                       lambda c: F.melspectrogram(y=c.y, sr=SR, n_mels=40 + c.i, htk=True),
                       lambda c: F.melspectrogram(S=c.P, sr=SR)],
    "mfcc": [lambda c: F.mfcc(y=c.y, sr=SR),
             lambda c: F.mfcc(y=c.y, sr=SR, n_mfcc=13, top_db=None, lifter=22.0),
             lambda c: F.mfcc(y=c.y, sr=SR, dct_type=3)],
    "onset_strength": [lambda c: F.onset_strength(y=c.y, sr=SR),
                       lambda c: F.onset_strength(y=c.y, sr=SR, detrend=True, max_size=3)],
    "piptrack": [lambda c: F.piptrack(y=c.y, sr=SR)],
    "pncc": [lambda c: F.pncc(y=c.y, sr=16000)],
    "power_to_db": [lambda c: F.power_to_db(c.P)],
    "real_cepstrum": [lambda c: F.real_cepstrum(y=c.y, n_ceps=40)],
    "recipe_hash": [lambda c: F.recipe_hash(c.recipe)],
    "rms": [lambda c: F.rms(y=c.y), lambda c: F.rms(S=c.M)],
    "spectral_bandwidth": [lambda c: F.spectral_bandwidth(y=c.y, sr=SR)],
    "spectral_centroid": [lambda c: F.spectral_centroid(y=c.y, sr=SR),
                          lambda c: F.spectral_centroid(S=c.M, sr=SR)],
    "spectral_contrast": [lambda c: F.spectral_contrast(y=c.y, sr=SR)],
    "spectral_entropy": [lambda c: F.spectral_entropy(y=c.y, sr=SR)],
    "spectral_flatness": [lambda c: F.spectral_flatness(y=c.y)],
    "spectral_flux": [lambda c: F.spectral_flux(y=c.y, sr=SR)],
    "spectral_rolloff": [lambda c: F.spectral_rolloff(y=c.y, sr=SR)],
    "spectrogram": [lambda c: F.spectrogram(y=c.y, power=2.0)],
    "spectrum": [lambda c: F.spectrum(y=c.y)],
    "stft": [lambda c: F.stft(c.y)],
    "tempogram": [lambda c: F.tempogram(y=c.y, sr=SR)],
    "zero_crossing_rate": [lambda c: F.zero_crossing_rate(c.y)],
}


def same(a: Any, b: Any) -> bool:
    """Exact equality of results: arrays (dtype, shape, values), tuples, lists, dicts, scalars."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return type(a) is type(b) and a == b


def test_every_public_callable_has_a_case():
    public = {n for n in F.__all__ if callable(getattr(F, n))}
    assert public - set(CASES) == set(), "public callables without a threaded case"
    assert set(CASES) - public == set(), "cases for names that are not public"


@pytest.fixture(scope="module")
def clips():
    return [Clip(i) for i in range(N_THREADS)]


def test_features_from_eight_threads_equal_serial(clips):
    jobs = [(name, j) for name, fs in CASES.items() for j in range(len(fs))]
    serial = {(name, j, c.i): CASES[name][j](c) for name, j in jobs for c in clips}
    barrier = threading.Barrier(N_THREADS)
    got: dict[tuple, list] = {}
    errors: list[BaseException] = []

    def work(c: Clip) -> None:
        shuffled = list(jobs)
        random.Random(c.i).shuffle(shuffled)
        try:
            for name, j in jobs:  # lockstep: the same case in all threads at once
                barrier.wait()
                got.setdefault((name, j, c.i), []).append(CASES[name][j](c))
            barrier.wait()
            for name, j in shuffled:  # each thread its own order: different cases at once
                got.setdefault((name, j, c.i), []).append(CASES[name][j](c))
        except BaseException as e:  # noqa: BLE001 - reported below with the others
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c,)) for c in clips]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, f"threads raised: {errors!r}"
    wrong = sorted({f"{name}[{j}]" for (name, j, i), outs in got.items()
                    for out in outs if not same(out, serial[(name, j, i)])})
    n_wrong = sum(not same(out, serial[k]) for k, outs in got.items() for out in outs)
    assert not wrong, (f"{n_wrong} of {2 * len(serial)} threaded calls differ from the serial "
                       f"result: {', '.join(wrong)}")

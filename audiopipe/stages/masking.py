"""Discriminative separation: a ratio-mask estimator trained on synthesised mixtures.

:class:`MaskSeparator` learns, from labelled *isolated* recordings of each source (e.g.
``{"speech": [...], "music": [...]}``), to predict every source's ratio mask from the
mixture's spectrogram with temporal context, then separates new mixtures with those masks.

Training (:meth:`MaskSeparator.fit`): every epoch, ``n_mixtures`` *fresh* mixtures of
``duration`` seconds are synthesised from random excerpts of the sources (short recordings are
concatenated until an excerpt is full), each excerpt is changed in speed and pitch together by a random resampling
factor in ``speed`` (vocal-tract-length and tempo variety when few speakers are available),
RMS-normalised and given a random gain in ``gain_db`` (dB, uniform, per source). The target
is the ideal ratio mask ``|S_i|^2 / sum_j |S_j|^2`` of each STFT bin (the bound a mask method
can reach); the input of frame ``t`` is the mixture's log-mel spectrogram, normalised per
recording (each band's mean over time removed, divided by the recording's standard deviation),
at the frames ``t + c`` for each offset ``c`` of ``context``, plus the recording's mean log-mel
shape. A small network (:class:`~audiopipe.stages._masknet.MaskNet`: ReLU hidden layer,
sigmoid outputs) maps it to the masks, trained with Adam on the squared mask error of every bin
weighted by the mixture's magnitude there to the ``weight_power`` (1: the error counts where
the signal is, as in SDR; mean weight 1 per mixture), the learning rate decaying from
``learning_rate_init`` to ``learning_rate_end`` times it (cosine) over ``max_iter`` epochs.
The last ``validation_fraction`` of each source's recordings (by duration) is kept out of the
training excerpts; mixtures of it score every epoch, the best epoch's weights are kept and
training stops after ``n_iter_no_change`` epochs without a better one.

Measured (``benchmarks/separate_mask.py``: 0 dB speech + music, speakers and tracks used
neither in training nor in tuning, fixed order, bss_eval SDR): 8.33 dB and 5.62 dB on its two
report splits (ideal ratio mask 16.29 / 14.50 dB, supervised NMF 3.34 / 0.51 dB), fit ~3.5
min on one shared core; with scikit-learn's ``MLPRegressor`` in place of this trainer
(identity outputs, plain squared error, fixed rate, one set of 200 mixtures) it was 4.82 /
3.64 dB in ~17 min. On the validation part the defaults were chosen on, the magnitude weighting
alone was worth 1.3 dB (5.16 against 3.85 dB unweighted, subsampled).

Separation (:meth:`MaskSeparator.separate`): the predicted masks are clipped to ``[0, 1]`` and
normalised to sum to one over sources in every bin, applied to the mixture's complex STFT and
inverted (``audiopipe.features.istft``) at the input's length: the stems *sum to the mixture*
(the last source also takes the ISTFT's rounding residue, ~1e-7, and, when the input rate
differs from the model's ``sr``, everything above the model's band: the input is resampled to
``sr`` for the masks and the stems back to the input rate). Stems are returned in the order of
the ``sources`` given to ``fit`` (:attr:`MaskSeparator.sources_`), keyed by source name: the
stem named ``"speech"`` is what the model learned as speech; there is no permutation.

Persistence: plain attributes (numpy arrays, tuples, a ``MaskNet`` of numpy arrays), no
lambdas, so ``skops.io.dump`` / ``load(trusted=[...MaskSeparator, ..._masknet.MaskNet])``
round-trips it.

Examples
--------
>>> import numpy as np
>>> sr = 8000
>>> t = np.arange(sr) / sr
>>> rng = np.random.default_rng(0)
>>> tones = [np.sin(2 * np.pi * f * t).astype(np.float32) for f in (300, 450)]
>>> noise = [rng.standard_normal(sr).astype(np.float32) for _ in range(2)]
>>> sep = MaskSeparator(sr=sr, n_fft=256, hop_length=64, n_mels=16, n_mixtures=20,
...                     duration=0.5, hidden_layer_sizes=(16,), max_iter=20)
>>> sep = sep.fit({"tone": tones, "noise": noise}, sr=sr)
>>> stems = sep.separate(tones[0] + 0.3 * noise[0], sr=sr)
>>> list(stems), bool(np.allclose(stems["tone"] + stems["noise"], tones[0] + 0.3 * noise[0],
...                                atol=1e-4))
(['tone', 'noise'], True)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

import audiopipe.features as F

__all__ = [
    "MaskSeparator",
    "ratio_masks",
    "mixture_features",
    "DEFAULT_CONTEXT",
]

#: Frame offsets of the default temporal context (hop 16 ms at 16 kHz: +-256 ms), denser near
#: the centre frame.
DEFAULT_CONTEXT = (-16, -10, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 10, 16)


def _mono(y: np.ndarray, what: str = "y") -> np.ndarray:
    """float32 1-D: multichannel ``(..., n)`` or soundfile's ``(n, ch)`` averaged; checked."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2 and y.shape[1] <= 8 and y.shape[0] > y.shape[1]:
        y = y.mean(axis=1)
    elif y.ndim > 1:
        y = y.reshape(-1, y.shape[-1]).mean(axis=0)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{what}: need a non-empty audio signal, got shape {np.shape(y)}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{what}: audio contains NaN or infinite samples")
    return y


def ratio_masks(mags: Sequence[np.ndarray], power: float = 2.0) -> np.ndarray:
    """Ideal ratio masks ``|S_i|^p / sum_j |S_j|^p``, ``(n_sources, ...)``, 1/n where all are 0.

    Examples
    --------
    >>> m = ratio_masks([np.array([3.0, 0.0]), np.array([4.0, 0.0])])
    >>> m.astype(np.float64).round(2).tolist()
    [[0.36, 0.5], [0.64, 0.5]]
    """
    P = np.stack([np.abs(np.asarray(m, dtype=np.float64)) ** power for m in mags])
    tot = P.sum(axis=0)
    return np.where(tot > 0, P / np.where(tot > 0, tot, 1.0), 1.0 / len(P)).astype(np.float32)


def mixture_features(
    D: np.ndarray, mel_basis: np.ndarray, context: Sequence[int] = DEFAULT_CONTEXT
) -> np.ndarray:
    """Per-frame input of the mask estimator: ``(n_frames, n_mels * (len(context) + 1))``.

    Log-mel power of the complex STFT ``D`` ``(1 + n_fft // 2, n_frames)``, floored 80 dB below
    the recording's mean mel power, each band's mean over time removed and the result divided
    by its standard deviation (gain, channel and level invariant); frame ``t`` gets the frames
    ``t + c`` for each ``c`` in ``context`` (edges repeated), followed by the recording's mean
    log-mel shape (zero-mean, same scale).

    Examples
    --------
    >>> D = np.ones((129, 10), np.complex64)
    >>> mixture_features(D, F.mel_filterbank(sr=8000, n_fft=256, n_mels=16), (-1, 0, 1)).shape
    (10, 64)
    """
    mel = mel_basis @ (np.abs(D) ** 2)
    floor = 1e-8 * max(float(mel.mean()), 1e-20)
    L = np.log(mel + floor).astype(np.float32)  # (n_mels, T)
    mu = L.mean(axis=1, keepdims=True)
    Z = L - mu
    sd = float(Z.std()) or 1.0
    Z /= sd
    shape = (mu[:, 0] - mu.mean()) / sd
    T = Z.shape[1]
    idx = np.clip(np.arange(T)[:, None] + np.asarray(context, dtype=int)[None, :], 0, T - 1)
    X = Z.T[idx].reshape(T, -1)  # (T, len(context) * n_mels), context-major
    return np.concatenate([X, np.broadcast_to(shape, (T, shape.size))], axis=1).astype(np.float32)


def _excerpt(
    recs: list[np.ndarray], n: int, rng: np.random.Generator, weights: np.ndarray
) -> np.ndarray:
    """``n`` samples from random recordings (chosen by length): a random window of one long
    enough, else consecutive random recordings until full."""
    out = np.zeros(n, np.float32)
    i = 0
    while i < n:
        r = recs[int(rng.choice(len(recs), p=weights))]
        need = n - i
        if r.size > need:
            a = int(rng.integers(0, r.size - need + 1))
            out[i:] = r[a : a + need]
            break
        out[i : i + r.size] = r
        i += r.size
    return out


def _resample(y: np.ndarray, sr_in: float, sr_out: float) -> np.ndarray:
    if sr_in == sr_out:
        return y
    import soxr

    return soxr.resample(y, sr_in, sr_out).astype(np.float32)


class MaskSeparator:
    """Ratio-mask separation learned from labelled isolated sources (scikit-learn style).

    Parameters
    ----------
    sr : int
        Rate the model works at (16000: wideband speech); inputs at other rates are resampled.
    n_fft, hop_length : int
        STFT of ``audiopipe.features.stft`` at ``sr`` (64 ms / 16 ms at 16 kHz).
    n_mels : int
        Mel bands of the input features.
    context : tuple of int
        Frame offsets stacked around each frame (:data:`DEFAULT_CONTEXT`: +-16 frames).
    hidden_layer_sizes : tuple of int
        Hidden layers of the network (ReLU).
    alpha : float
        L2 penalty of the network.
    max_iter : int
        Training epochs (Adam, minibatches of ``batch_size`` frames).
    batch_size : int
        Frames per minibatch.
    n_mixtures : int
        Training mixtures synthesised for each epoch (fresh ones every epoch).
    duration : float
        Seconds per training mixture.
    gain_db : tuple of float
        Range of each source's random gain (dB) after RMS normalisation.
    speed : tuple of float
        Range of the random speed-and-pitch factor of each excerpt (resampling).
    eq_db : float
        Each source of a training mixture gets a random smooth EQ within +-``eq_db`` dB
        (microphone and room colour variety; 0: none).
    random_state : int
        Seeds the synthesis and the network: same sources and parameters, same model.
    mask_exponent : float
        Masks are raised to this power and renormalised to sum to one before they are
        applied (> 1 sharpens them: less leakage, more artefacts); used at separation only.
    weight_power : float
        The loss weights each bin's mask error by ``|mixture|^weight_power`` (0: plain).
    learning_rate_init, learning_rate_end : float
        Adam's rate at the first epoch, and the last epoch's as a share of it (cosine decay).
    validation_fraction : float
        Share of each source's duration kept for the validation mixtures (0: validate on
        training material).
    n_iter_no_change : int
        Stop after this many epochs without a better validation loss.
    verbose : bool
        Print the training and validation loss per epoch.

    Attributes
    ----------
    sources_ : tuple of str
        Source names, in the order of ``fit``'s ``sources``: the order of ``separate``'s stems.
    model_ : audiopipe.stages._masknet.MaskNet
        Maps features to the masks (one per bin for 2 sources: the first source's mask;
        ``n_sources`` per bin otherwise).
    loss_curve_, validation_scores_ : list of float
        Weighted training and validation loss per epoch.
    best_epoch_ : int
        The epoch whose weights were kept (lowest validation loss).
    """

    def __init__(
        self,
        sr: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 64,
        context: tuple[int, ...] = DEFAULT_CONTEXT,
        hidden_layer_sizes: tuple[int, ...] = (256,),
        alpha: float = 1e-4,
        max_iter: int = 20,
        batch_size: int = 256,
        n_mixtures: int = 100,
        duration: float = 4.0,
        gain_db: tuple[float, float] = (-6.0, 6.0),
        speed: tuple[float, float] = (0.85, 1.15),
        eq_db: float = 0.0,
        random_state: int = 0,
        mask_exponent: float = 1.0,
        weight_power: float = 1.0,
        learning_rate_init: float = 1e-3,
        learning_rate_end: float = 0.05,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 6,
        verbose: bool = False,
    ) -> None:
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.context = context
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.n_mixtures = n_mixtures
        self.duration = duration
        self.gain_db = gain_db
        self.speed = speed
        self.eq_db = eq_db
        self.random_state = random_state
        self.mask_exponent = mask_exponent
        self.weight_power = weight_power
        self.learning_rate_init = learning_rate_init
        self.learning_rate_end = learning_rate_end
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _stft(self, y: np.ndarray) -> np.ndarray:
        return F.stft(y, n_fft=self.n_fft, hop_length=self.hop_length)

    def _mel(self) -> np.ndarray:
        return F.mel_filterbank(sr=self.sr, n_fft=self.n_fft, n_mels=self.n_mels)

    def _check_params(self) -> None:
        if not (0 < self.speed[0] <= self.speed[1]):
            raise ValueError(f"speed: need 0 < low <= high, got {self.speed}")
        if self.gain_db[0] > self.gain_db[1]:
            raise ValueError(f"gain_db: need low <= high, got {self.gain_db}")
        for k in ("n_mixtures", "n_fft", "hop_length", "n_mels", "max_iter", "batch_size"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k}: must be >= 1, got {getattr(self, k)}")
        if not 0 <= self.validation_fraction < 1 or self.weight_power < 0:
            raise ValueError("need 0 <= validation_fraction < 1 and weight_power >= 0, got "
                             f"{self.validation_fraction}, {self.weight_power}")
        if len(self.context) == 0:
            raise ValueError("context: need at least one frame offset (0 = the frame itself)")

    def synthesise(
        self, sources: Mapping[str, Sequence[np.ndarray]], rng: np.random.Generator
    ) -> list[np.ndarray]:
        """One training example: each source's excerpt (speed-changed, RMS-scaled, random
        gain), ``(n_sources, n)`` at ``self.sr``; their sum is the mixture."""
        n = int(round(self.duration * self.sr))
        out = []
        for recs in sources.values():
            w = np.array([r.size for r in recs], dtype=np.float64)
            f = float(rng.uniform(*self.speed))
            m = int(np.ceil(n * f)) + 16
            x = _excerpt(list(recs), m, rng, w / w.sum())
            if f != 1.0:
                x = _resample(x, self.sr * f, self.sr)
            x = x[:n]
            if x.size < n:
                x = np.pad(x, (0, n - x.size))
            rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
            g = 10 ** (rng.uniform(*self.gain_db) / 20)
            out.append((x * (g / rms if rms > 0 else 0.0)).astype(np.float32))
        return out

    def _random_eq(self, rng: np.random.Generator) -> np.ndarray:
        """A smooth random gain per STFT bin: values uniform in +-``eq_db`` dB at 6
        log-spaced frequencies (50 Hz .. Nyquist), interpolated in log frequency."""
        f = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        knots = np.geomspace(50.0, self.sr / 2, 6)
        db = rng.uniform(-self.eq_db, self.eq_db, knots.size)
        g = np.interp(np.log(np.maximum(f, 1.0)), np.log(knots), db)
        return (10 ** (g / 20)).astype(np.float32)

    def _training_set(
        self, sources: Mapping[str, Sequence[np.ndarray]], rng: np.random.Generator, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` fresh mixtures: features, target masks and the loss weights (each bin's
        mixture magnitude to the ``weight_power``, mean 1 per mixture)."""
        mel = self._mel()
        Xs, Ys, Ws = [], [], []
        p = float(self.weight_power)
        for _ in range(int(n)):
            parts = self.synthesise(sources, rng)
            Ds = [self._stft(p_) for p_ in parts]
            if self.eq_db:
                Ds = [d * self._random_eq(rng)[:, None] for d in Ds]
            D = np.sum(Ds, axis=0)
            Xs.append(mixture_features(D, mel, self.context))
            M = ratio_masks([np.abs(d) for d in Ds])  # (n_src, F, T)
            Ys.append(self._encode(M))
            if p:
                w = np.abs(D).astype(np.float64) ** p
                w /= max(float(w.mean()), 1e-20)
            else:
                w = np.ones(D.shape)
            Ws.append(self._encode(np.broadcast_to(w.astype(np.float32), M.shape)))
        return np.concatenate(Xs), np.concatenate(Ys), np.concatenate(Ws)

    def _split_validation(
        self, sources: Mapping[str, list[np.ndarray]]
    ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
        """Each source's recordings (seeded order) cut so the last ``validation_fraction`` of
        their duration is for validation only (one recording may be cut in two)."""
        rng = np.random.default_rng(self.random_state + 7)
        train, val = {}, {}
        for k, recs in sources.items():
            recs = [recs[i] for i in rng.permutation(len(recs))]
            need = int(float(self.validation_fraction) * sum(r.size for r in recs))
            tr, va = [], []
            for r in reversed(recs):
                if need <= 0:
                    tr.append(r)
                elif r.size <= need:
                    va.append(r)
                    need -= r.size
                else:
                    tr.append(r[: r.size - need])
                    va.append(r[r.size - need :])
                    need = 0
            if not any(np.any(r) for r in tr):
                warnings.warn(f"sources[{k!r}]: no sound left to train on after keeping a "
                              "validation part; validating on training material", stacklevel=3)
                tr = va
            train[k], val[k] = tr, va or tr
        return train, val

    def _encode(self, M: np.ndarray) -> np.ndarray:
        """Masks ``(n_src, F, T)`` -> regression targets ``(T, outputs)``."""
        if M.shape[0] == 2:
            return np.ascontiguousarray(M[0].T)
        return np.ascontiguousarray(M.transpose(2, 0, 1).reshape(M.shape[2], -1))

    def _decode(self, Y: np.ndarray, n_bins: int) -> np.ndarray:
        """Network outputs ``(T, outputs)`` -> masks ``(n_src, F, T)`` in [0, 1] summing to 1."""
        Y = np.clip(np.asarray(Y, dtype=np.float32), 0.0, 1.0)
        n_src = len(self.sources_)
        if n_src == 2:
            m = Y.T.reshape(n_bins, -1)
            M = np.stack([m, 1.0 - m])
        else:
            M = Y.reshape(Y.shape[0], n_src, n_bins).transpose(1, 2, 0)
        a = float(getattr(self, "mask_exponent", 1.0))
        if a != 1.0:
            M = M**a
        if n_src == 2 and a == 1.0:
            return M
        tot = M.sum(axis=0, keepdims=True)
        return np.where(tot > 0, M / np.where(tot > 0, tot, 1.0), 1.0 / n_src).astype(np.float32)

    # ------------------------------------------------------------------ API
    def fit(self, sources: Mapping[str, Sequence[np.ndarray]], sr: float) -> MaskSeparator:
        """Learn the masks from isolated recordings of each source, at rate ``sr``.

        ``sources`` maps each source name to a list of mono recordings (>= 2 sources, each with
        at least one non-silent recording); its order is the order of the stems.
        """
        self._check_params()
        if not isinstance(sources, Mapping) or len(sources) < 2:
            raise ValueError("sources: need a mapping of at least 2 source names to recordings")
        clean: dict[str, list[np.ndarray]] = {}
        for name, recs in sources.items():
            if isinstance(recs, np.ndarray):
                recs = [recs]
            rs = [_resample(_mono(r, f"sources[{name!r}]"), sr, self.sr) for r in recs]
            rs = [r for r in rs if np.any(r)]
            if not rs:
                raise ValueError(f"sources[{name!r}]: no non-silent recording to learn from")
            clean[str(name)] = rs
        self.sources_ = tuple(clean)
        from audiopipe.stages._masknet import MaskNet

        train, val = (self._split_validation(clean) if self.validation_fraction > 0
                      else (clean, clean))
        rng = np.random.default_rng(self.random_state)
        n_val = max(2, int(round(self.n_mixtures * self.validation_fraction)))
        Xv, Yv, Wv = self._training_set(val, np.random.default_rng(self.random_state + 1), n_val)
        net = MaskNet(self.hidden_layer_sizes, self.alpha, self.batch_size, self.random_state)
        net.initialise(Xv.shape[1], Yv.shape[1])
        epochs = int(self.max_iter)
        lr0, lr1 = float(self.learning_rate_init), float(self.learning_rate_init) * float(
            self.learning_rate_end)
        best, best_w, since = np.inf, net.get_weights(), 0
        self.loss_curve_, self.validation_scores_ = [], []
        n_frames = 0
        for e in range(epochs):
            X, Y, W = self._training_set(train, rng, self.n_mixtures)  # fresh every epoch
            n_frames += len(X)
            lr = lr1 + 0.5 * (lr0 - lr1) * (1 + np.cos(np.pi * e / max(epochs - 1, 1)))
            self.loss_curve_.append(net.train_epoch(X, Y, W, lr, rng))
            vl = net.loss(Xv, Yv, Wv)
            self.validation_scores_.append(vl)
            if self.verbose:
                print(f"epoch {e + 1}: lr {lr:.2e} loss {self.loss_curve_[-1]:.5f} "
                      f"validation {vl:.5f}", flush=True)
            if vl < best:
                best, best_w, since = vl, net.get_weights(), 0
                self.best_epoch_ = e + 1
            else:
                since += 1
                if since >= int(self.n_iter_no_change):
                    break
        net.set_weights(best_w)
        self.model_ = net.finish()
        self.n_frames_ = n_frames
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("MaskSeparator is not fitted: call fit(sources, sr) first")

    def predict_masks(self, y: np.ndarray, sr: float | None = None) -> np.ndarray:
        """Masks ``(n_sources, 1 + n_fft // 2, n_frames)`` of ``y`` resampled to ``self.sr``."""
        self._check_fitted()
        y = _resample(_mono(y), self.sr if sr is None else sr, self.sr)
        D = self._stft(y)
        return self._masks(D)

    def _masks(self, D: np.ndarray) -> np.ndarray:
        X = mixture_features(D, self._mel(), self.context)
        return self._decode(self.model_.predict(X), D.shape[0])

    def separate(self, y: np.ndarray, sr: float | None = None) -> dict[str, np.ndarray]:
        """Stems of the mono (or mixed-down) mixture ``y``: ``{name: float32 (len(y),)}``.

        The stems sum to the (mono) mixture; see the module docstring. ``sr`` defaults to the
        model's rate. A silent mixture gives silent stems; NaN/inf samples raise ValueError.
        """
        self._check_fitted()
        y = _mono(y)
        sr = self.sr if sr is None else sr
        if not np.any(y):
            return {k: np.zeros_like(y) for k in self.sources_}
        x = _resample(y, sr, self.sr)
        D = self._stft(x)
        M = self._masks(D)
        kw = {"n_fft": self.n_fft, "hop_length": self.hop_length, "length": x.size}
        stems = [_resample(F.istft(D * m, **kw), self.sr, sr) for m in M]
        stems = [np.pad(s[: y.size], (0, max(0, y.size - s.size))) for s in stems]
        stems[-1] = y - np.sum(stems[:-1], axis=0)  # the last source takes the residue
        return {k: s.astype(np.float32) for k, s in zip(self.sources_, stems, strict=True)}


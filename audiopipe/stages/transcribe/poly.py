"""Polyphonic activations: KL-NMF with fixed harmonic templates, and notes from them.

:class:`HarmonicNMF` explains the magnitude spectrogram with fixed harmonic templates (one
per MIDI pitch) and sparse KL-NMF activations (the stages' one NMF,
:mod:`audiopipe.stages._nmf`); :func:`notes_from_activations` thresholds them with
hysteresis.
"""

from __future__ import annotations

import numpy as np

from audiopipe.audio import to_mono
from audiopipe.stages.transcribe.pitch import Note, midi_to_hz

__all__ = ["HarmonicNMF", "notes_from_activations"]


class HarmonicNMF:
    """Polyphonic activations: KL-NMF with fixed harmonic templates, one per MIDI pitch.

    Parameters
    ----------
    midi_min, midi_max : int
        Pitch range of the templates (default A0..C8).
    n_harmonics : int
        Partials per template, amplitude ``h ** -harmonic_decay``.
    n_fft, hop_length : int
        STFT of ``audiopipe.features.stft``.
    max_iter : int
        Multiplicative updates of the activations (templates stay fixed).
    sparsity : float
        L1 weight on activations (discourages octave/harmonic ghosts).
    max_freq : float
        Spectrogram bins above this frequency (Hz) are left out of the fit.
    fundamental_gate : float
        Switch a pitch off in frames where the magnitude at its fundamental is below this
        fraction of its strongest partial 2-4 (0 disables; against sub-octave ghosts).

    Examples
    --------
    >>> sr = 22050
    >>> t = np.arange(sr) / sr
    >>> y = sum(np.sin(2 * np.pi * 261.63 * h * t) / h for h in (1, 2, 3)).astype(np.float32)
    >>> H = HarmonicNMF(max_iter=30).fit_transform(y, sr)
    >>> int(HarmonicNMF().midi_numbers()[H.sum(axis=1).argmax()])
    60
    """

    def __init__(
        self,
        midi_min: int = 21,
        midi_max: int = 108,
        n_harmonics: int = 8,
        harmonic_decay: float = 1.0,
        n_fft: int = 4096,
        hop_length: int = 256,
        max_iter: int = 40,
        sparsity: float = 0.1,
        max_freq: float = 5000.0,
        fundamental_gate: float = 0.1,
    ) -> None:
        self.midi_min = midi_min
        self.midi_max = midi_max
        self.n_harmonics = n_harmonics
        self.harmonic_decay = harmonic_decay
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_iter = max_iter
        self.sparsity = sparsity
        self.max_freq = max_freq
        self.fundamental_gate = fundamental_gate

    def midi_numbers(self) -> np.ndarray:
        return np.arange(self.midi_min, self.midi_max + 1)

    def templates(self, sr: float) -> np.ndarray:
        """Template matrix ``(1 + n_fft // 2, n_pitches)``, columns of unit sum."""
        freqs = np.arange(self.n_fft // 2 + 1) * sr / self.n_fft
        bw = sr / self.n_fft
        W = np.zeros((freqs.size, self.midi_numbers().size))
        for j, m in enumerate(self.midi_numbers()):
            f0 = float(midi_to_hz(m))
            for h in range(1, self.n_harmonics + 1):
                fh = f0 * h * np.sqrt(1 + 0.0004 * h * h)  # slight inharmonicity (strings)
                if fh >= sr / 2:
                    break
                sigma = max(0.7 * bw, 0.01 * fh)
                W[:, j] += h**-self.harmonic_decay * np.exp(-0.5 * ((freqs - fh) / sigma) ** 2)
        W /= np.maximum(W.sum(axis=0, keepdims=True), 1e-12)
        return W

    def fit_transform(self, y: np.ndarray, sr: float = 22050) -> np.ndarray:
        """Activations ``(n_pitches, n_frames)`` for audio ``y`` (deterministic: H starts at 1)."""
        import audiopipe.features as F

        y = to_mono(y)
        V = np.abs(F.stft(y=y, n_fft=self.n_fft, hop_length=self.hop_length))
        W = self.templates(sr).astype(np.float32)
        # bins above the highest template partial carry no information for the fit
        top = int(np.flatnonzero(W.sum(axis=1) > 1e-6 * W.sum(axis=1).max()).max()) + 1
        top = min(top, int(self.max_freq * self.n_fft / sr) + 1)
        V, W = V[:top], W[:top]
        self.templates_ = W
        H = np.full((W.shape[1], V.shape[1]), max(float(V.mean()), 1e-9), dtype=np.float32)
        if not np.any(V):
            self.activations_ = np.zeros_like(H)
            return self.activations_
        from audiopipe.stages._nmf import nmf

        _, H = nmf(V, W=W, H=H, max_iter=self.max_iter, l1_H=self.sparsity)
        H = H.astype(np.float32)
        if self.fundamental_gate > 0:
            H *= self._fundamental_support(V, sr) >= self.fundamental_gate
        self.activations_ = H
        return H

    def _fundamental_support(self, V: np.ndarray, sr: float) -> np.ndarray:
        """Per pitch and frame: magnitude near f0 over the strongest of partials 2-4.

        Harmonic templates let a pitch an octave or a twelfth below explain a note's upper
        partials ("missing fundamental" ghosts); a pitch whose fundamental region is
        ``fundamental_gate`` times weaker than its next partials is switched off.
        """
        n_bins = V.shape[0]
        out = np.zeros((self.midi_numbers().size, V.shape[1]), dtype=np.float32)

        def peak(f: float) -> np.ndarray:
            k = f * self.n_fft / sr
            lo, hi = int(np.floor(k * 0.985)), int(np.ceil(k * 1.015)) + 1
            if lo >= n_bins:
                return np.zeros(V.shape[1], dtype=np.float32)
            return V[max(lo, 0) : min(hi, n_bins)].max(axis=0)

        for j, m in enumerate(self.midi_numbers()):
            f0 = float(midi_to_hz(m))
            ref = np.max([peak(f0 * h) for h in (2, 3, 4)], axis=0)
            out[j] = peak(f0) / np.maximum(ref, 1e-9)
        return out


def notes_from_activations(
    H: np.ndarray,
    midi_numbers: np.ndarray,
    *,
    sr: float = 22050,
    hop_length: int = 256,
    onset_threshold: float = 0.2,
    frame_threshold: float = 0.05,
    min_note_duration: float = 0.05,
    onset_search: int = 8,
) -> list[Note]:
    """Hysteresis thresholding of activations (relative to their maximum) into notes.

    A note is a run above ``frame_threshold`` whose peak exceeds ``onset_threshold``; its
    onset is where it first reaches half the peak of the run's first ``onset_search`` frames.
    """
    if H.size == 0 or not np.any(H > 0):
        return []
    from scipy.ndimage import median_filter

    A = median_filter(H / H.max(), size=(1, 3), mode="nearest")
    fr = hop_length / sr
    min_frames = max(1, int(round(min_note_duration / fr)))
    notes: list[Note] = []
    for j, m in enumerate(midi_numbers):
        a = A[j]
        active = a > frame_threshold
        edges = np.diff(np.r_[0, active.astype(np.int8), 0])
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if e - s < min_frames or a[s:e].max() < onset_threshold:
                continue
            vel = int(np.clip(round(127 * np.sqrt(a[s:e].max())), 1, 127))
            # a long window sees a note before its onset: the onset is where the activation
            # first reaches half of its early peak (the onset at the window's centre)
            head = a[s : min(e, s + onset_search)]
            on = s + int(np.argmax(head >= 0.5 * head.max()))
            notes.append((round(on * fr, 4), round(e * fr, 4), int(m), vel))
    notes.sort()
    return notes



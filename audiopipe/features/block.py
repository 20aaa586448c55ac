"""What a recipe feature computes on: blocks of frames with their shared STFT products.

A :class:`Block` is one block of consecutive frames of one clip; its spectra are computed
once, on first use, into the pass's :class:`Scratch` and shared by every feature of the
recipe. A :class:`Computer` is how one feature turns blocks into outputs (made by the
feature's factory, see :func:`~audiopipe.features.registry.feature`); the
:class:`~audiopipe.features.extractor.Extractor` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from ._core import rfft_rows_into

__all__ = ["BLOCK_FRAMES", "Block", "Computer", "Scratch", "Analysis"]


class Analysis(Protocol):
    """What a block needs from its extractor: the framing, the window and the banks."""

    n_fft: int
    hop_length: int
    window: np.ndarray

    def apply_bank(self, key: Any, block: Block) -> np.ndarray: ...


BLOCK_FRAMES = 256


@dataclass
class Computer:
    """How one recipe feature is computed (built per Extractor; not changed by a pass).

    ``step(block, state, g) -> {name: (n_dims, k) float32}``: causal, per block; ``state``
    is a per-pass dict for what the feature carries from block to block.
    ``outputs``: name -> n_dims of the *base* outputs (deltas are added by the extractor);
    ``None``: one output, the feature's name, with the spec's ``dims``.
    ``needs``: whole-clip constants this feature wants (keys understood by the extractor).
    ``lookahead``: optional factory ``() -> filter`` with ``push(dict)->dict`` and
    ``flush()->dict`` applied to the step outputs (for features needing future frames).
    """

    step: Callable[[Block, dict, dict | None], dict[str, np.ndarray]]
    outputs: dict[str, int] | None = None
    needs: tuple = ()
    lookahead: Callable[[], Any] | None = None
    deltas: int = 0
    delta_width: int = 9
    delta_of: str | None = None  # which output gets deltas (default: the first)
    step_names: tuple = ()  # names ``step`` returns when they differ from ``outputs``
    #: whole-clip mode without a first pass: ``step(b, st, None)`` returns intermediates and
    #: ``finish(whole_clip_intermediates) -> outputs`` derives the constants from them
    finish: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None

    @classmethod
    def frames(cls, name: str, fn: Callable[[Block], np.ndarray]) -> Computer:
        """A feature computed from each block alone: ``fn(block) -> (n_dims, k)``."""
        return cls(lambda b, st, g: {name: fn(b)})


class Scratch:
    """Scratch buffers one pass over a clip reuses from block to block.

    One pass at a time uses one (the extractor pools them: a pass takes one and gives it
    back at its end), so passes in other threads never see it; ``k_max`` frames per block.
    Fresh arrays per block or per call would cost more in page faults than the arithmetic.
    """

    def __init__(self, n_fft: int, k_max: int) -> None:
        self.n_bins, self.k_max = n_fft // 2 + 1, k_max
        self.frames = np.empty((k_max, n_fft), np.float32)  # windowed frames
        self.fft = np.empty((k_max, self.n_bins), np.complex64)
        self._bins: dict[str, np.ndarray] = {}

    def bins(self, name: str, k: int) -> np.ndarray:
        """Reusable (k, 1 + n_fft//2) float32 buffer for one per-block spectrum product."""
        buf = self._bins.get(name)
        if buf is None:
            buf = self._bins[name] = np.empty((self.k_max, self.n_bins), np.float32)
        return buf[:k]


class Block:
    """One block of consecutive frames of one clip, with the shared STFT products cached.

    ``seg`` holds the padded signal from the block's first frame start; real (unpadded)
    samples are ``seg[lo:hi]``. Spectra are laid out (freq, frames). Spectra live in the
    pass's :class:`Scratch`, overwritten by the next block.
    """

    def __init__(self, ex: Analysis, scratch: Scratch, seg: np.ndarray, t0: int, k: int,
                 lo: int, hi: int):
        self.ex, self.scratch = ex, scratch
        self.seg, self.t0, self.k, self.lo, self.hi = seg, t0, k, lo, hi
        self._cache: dict[Any, np.ndarray] = {}

    @cached_property
    def rows(self) -> np.ndarray:
        """(k, n_fft) strided view of the frames."""
        ex = self.ex
        st = self.seg.strides[-1]
        return np.lib.stride_tricks.as_strided(
            self.seg, shape=(self.k, ex.n_fft), strides=(ex.hop_length * st, st), writeable=False
        )

    @cached_property
    def spectrum(self) -> np.ndarray:
        """Complex STFT of the block, (k, 1 + n_fft//2) complex64 (frame-major)."""
        buf = self.scratch.frames[: self.k]
        np.multiply(self.rows, self.ex.window, out=buf)
        return rfft_rows_into(buf, self.scratch.fft[: self.k])  # scratch, like mag_fm

    @cached_property
    def mag_fm(self) -> np.ndarray:
        """|X| frame-major, (k, freq) float32 C-contiguous.

        Lives in the pass's scratch memory, overwritten by the next block: a feature
        that returns or keeps it must copy it (fresh 1 MB arrays per block cost more in page
        faults than the arithmetic). ``sqrt`` of the power when that was computed first,
        else ``abs`` (hypot): equal to within one float32 rounding.
        """
        out = self.scratch.bins("mag", self.k)
        if "power_fm" in self.__dict__:
            return np.sqrt(self.power_fm, out=out)
        return np.abs(self.spectrum, out=out)

    @cached_property
    def power_fm(self) -> np.ndarray:
        """|X|^2 frame-major; scratch.

        ``re² + im²`` (1.6x faster than librosa's ``abs(X)**2``, which goes through hypot;
        the two agree to within two float32 roundings), or the square of the magnitude when
        that was computed first.
        """
        out = self.scratch.bins("power", self.k)
        if "mag_fm" in self.__dict__:
            return np.square(self.mag_fm, out=out)
        X = self.spectrum
        tmp = self.scratch.bins("tmp", self.k)
        np.square(X.real, out=out)
        np.square(X.imag, out=tmp)
        return np.add(out, tmp, out=out)

    @property
    def mag(self) -> np.ndarray:
        """|X| as a (freq, k) view (transposed; reductions over freq stay contiguous)."""
        return self.mag_fm.T

    @property
    def power(self) -> np.ndarray:
        """|X|^2 as a (freq, k) view."""
        return self.power_fm.T

    def get(self, key: Any, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """Per-block cache for products shared by several features (e.g. a mel spectrum)."""
        v = self._cache.get(key)
        if v is None:
            v = self._cache[key] = fn()
        return v

    def mel(self, bank_key: Any) -> np.ndarray:
        """Filter-bank spectrum ``bank @ |X|^power`` (n_filters, k) for a registered bank."""
        return self.get(("bank", bank_key), lambda: self.ex.apply_bank(bank_key, self))

"""The recipe extractor: every feature of a recipe from one shared STFT per clip.

Frames are processed in blocks of :data:`~audiopipe.features.block.BLOCK_FRAMES` (window →
rfft → power → filter banks → features), so the working set stays in cache and nothing is
transposed or copied as a whole. Each feature is a *computer*
(:class:`~audiopipe.features.block.Computer`, built once per :class:`Extractor` by the
feature's registered factory): ``step(block, state, g)`` returns that block's outputs from
the shared :class:`~audiopipe.features.block.Block` and a per-clip ``state``; anything
needing frames *ahead* (deltas, tempogram) is a stream filter applied after.

Whole-clip constants (``g``): a few librosa definitions depend on the whole clip
(``power_to_db(top_db=80)`` clips at the clip's maximum; ``chroma_stft(tuning=None)``
estimates tuning from the whole clip). When a recipe asks for one of those, the extractor
makes a first pass over the clip that computes only these constants, then the normal pass.
``ex(y)`` does that transparently; ``ex.stream`` needs to read the blocks twice (pass a list
or a zero-argument callable returning a fresh iterator) and raises otherwise. The pipeline's
default recipe uses only frame-local definitions, so it streams in a single pass.

Threads: an Extractor does not change after construction, except for a pool of scratch
memory. The scratch a pass reuses from block to block (windowed frames, FFT output,
spectra: a :class:`~audiopipe.features.block.Scratch`) belongs to that pass while it runs
(taken from the pool, or new when every pooled one is in use, and given back at its end),
and per-clip state lives in the pass too, so one Extractor (such as the one the functional
API caches per recipe) may be called and streamed from many threads at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ._core import as_audio, fft_frequencies, fft_window, n_frames_for
from .block import BLOCK_FRAMES, Block, Computer, Scratch
from .deltas import DeltaStream, delta
from .filters import apply_banded, banded_plan
from .registry import FEATURES, check_recipe

__all__ = ["Extractor"]

class Extractor:
    """Compute a feature recipe for clips at sample rate ``sr`` from one shared STFT.

    Parameters
    ----------
    recipe : dict
        A feature recipe (see :func:`check_recipe`); validated here.
    sr : int
        Sample rate of the audio given to the extractor (the recipe's ``sr`` is what the
        pipeline resamples to; this one is authoritative).

    Attributes
    ----------
    names : list[str]
        Output names in recipe order (``mfcc``, ``mfcc_delta``, ...).
    dims : dict[str, int]
        Rows of each output.

    Examples
    --------
    >>> ex = Extractor({"compute": {"mfcc": {"deltas": 1}, "rms": {}}}, sr=22050)
    >>> out = ex(np.zeros(22050, np.float32))
    >>> ex.names, out["mfcc"].shape, out["rms"].shape
    (['mfcc', 'mfcc_delta', 'rms'], (20, 44), (1, 44))
    """

    def __init__(self, recipe: dict, sr: int) -> None:
        self.recipe = check_recipe(recipe)
        if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
            raise ValueError(f"sr: must be a positive integer, got {sr!r}")
        self.sr = int(sr)
        r = self.recipe
        self.n_fft, self.hop_length, self.center = r["n_fft"], r["hop_length"], r["center"]
        self.win_length = r["win_length"] or self.n_fft
        w = r["window"]
        self.window = fft_window(
            tuple(w) if isinstance(w, list) else w, self.n_fft, self.win_length
        ).astype(np.float32)
        self.freq = fft_frequencies(sr=self.sr, n_fft=self.n_fft)
        self.freq.setflags(write=False)
        self._banks: dict[Any, tuple[Any, float]] = {}
        self._scratch_pool: list[Scratch] = []  # returned by finished passes (list ops are atomic)
        self.computers: list[tuple[str, Computer]] = []
        self.names: list[str] = []
        self.dims: dict[str, int] = {}
        for name, params in r["compute"].items():
            spec = FEATURES[name]
            try:
                comp = spec.make(params, self)
            except ValueError as e:
                raise ValueError(f"features.compute.{name}: {e}") from None
            if not isinstance(comp, Computer):
                comp = Computer.frames(name, comp)
            if comp.outputs is None:
                comp.outputs = {name: spec.n_dims(params, self.sr, self.n_fft)}
            if not comp.step_names:
                comp.step_names = tuple(comp.outputs)
            comp.deltas, comp.delta_width = params.get("deltas", 0), params.get("delta_width", 9)
            self.computers.append((name, comp))
            for out_name, d in comp.outputs.items():
                self.names.append(out_name)
                self.dims[out_name] = d
            base = comp.delta_of or next(iter(comp.outputs))
            for i in range(1, comp.deltas + 1):
                dn = f"{base}_delta" + ("2" if i == 2 else "")
                self.names.append(dn)
                self.dims[dn] = comp.outputs[base]
        self.needs = sorted({n for _, c in self.computers for n in c.needs}, key=repr)

    # ------------------------------------------------------------------ banks
    def register_bank(self, key: Any, bank: np.ndarray, power: float = 2.0) -> Any:
        """Register a (n_filters, freq) bank applied to ``|X|^power``; returns ``key``.

        For the computers' factories (while the Extractor is built); registering a key
        again keeps the first bank. The bank is stored as a banded plan
        (:func:`~audiopipe.features.filters.banded_plan`): groups of consecutive filters
        with the bin range they cover, each a small dense ``(bins, filters)`` matrix
        multiplied with the frame-major block.
        """
        if key not in self._banks:
            self._banks[key] = (banded_plan(np.asarray(bank, np.float32)), float(power))
        return key

    def apply_bank(self, key: Any, block: Block) -> np.ndarray:
        """``bank @ |X|^power`` of a block for the registered bank ``key``, (k, n_filters)."""
        plan, power = self._banks[key]
        if power == 2.0:
            S = block.power_fm
        elif power == 1.0:
            S = block.mag_fm
        else:
            S = block.get(("pow", power), lambda: block.power_fm ** np.float32(power / 2))
        return apply_banded(plan, S).T

    # ------------------------------------------------------------------ framing
    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a clip of ``n_samples`` samples (centred: ``1 + n // hop``)."""
        return n_frames_for(n_samples, self.n_fft, self.hop_length, self.center)

    def _blocks(self, chunks: Iterable[np.ndarray]) -> Iterator[Block]:
        """Blocks of frames of a whole clip (an array) or of consecutive 1-D chunks.

        The pass borrows a :class:`~audiopipe.features.block.Scratch` from the extractor's
        pool for its blocks and returns it when done (or closed), so concurrent passes
        never share one and a steady stream of calls allocates none.
        """
        try:
            scratch = self._scratch_pool.pop()
        except IndexError:
            scratch = Scratch(self.n_fft, BLOCK_FRAMES)
        try:
            if isinstance(chunks, np.ndarray):
                yield from self._clip_blocks(chunks, scratch)
            else:
                yield from self._stream_blocks(chunks, scratch)
        finally:
            self._scratch_pool.append(scratch)

    def _clip_blocks(self, y: np.ndarray, scratch: Scratch) -> Iterator[Block]:
        """A whole clip: padded once, no buffering; blocks inside the clip are views of it,
        only the edge blocks get a padded copy."""
        n_fft, hop = self.n_fft, self.hop_length
        pad = n_fft // 2 if self.center else 0
        if not self.center and len(y) < n_fft:
            raise ValueError(
                f"clip of {len(y)} samples is shorter than n_fft={n_fft} with center=false"
            )
        T = self.n_frames(len(y))
        n = len(y)
        for t in range(0, T, BLOCK_FRAMES):
            k = min(BLOCK_FRAMES, T - t)
            s = t * hop  # in padded coordinates
            e = s + (k - 1) * hop + n_fft
            if s >= pad and e <= pad + n:
                seg = y[s - pad : e - pad]
            else:
                seg = np.zeros(e - s, np.float32)
                a, b = max(s, pad), min(e, pad + n)
                if b > a:
                    seg[a - s : b - s] = y[a - pad : b - pad]
            yield Block(self, scratch, seg, t, k, pad - s, pad + n - s)

    def _stream_blocks(self, chunks: Iterable[np.ndarray], scratch: Scratch
                       ) -> Iterator[Block]:
        """Consecutive 1-D chunks of any lengths, holding only what the next frames need."""
        n_fft, hop = self.n_fft, self.hop_length
        pad = n_fft // 2 if self.center else 0
        buf = np.zeros(pad, dtype=np.float32)
        off = 0  # padded-signal index of buf[0]
        n_real = 0
        t = 0
        for chunk in chunks:
            c = as_audio(chunk, name="block") if np.size(chunk) else np.zeros(0, np.float32)
            if c.ndim != 1:
                raise ValueError(f"stream blocks must be 1-D, got shape {c.shape}")
            if not len(c):
                continue
            buf = np.concatenate([buf, c]) if len(buf) else c
            n_real += len(c)
            end = off + len(buf)
            avail = (end - n_fft) // hop + 1 if end >= n_fft else 0
            while avail - t >= BLOCK_FRAMES or (avail > t and len(buf) > 8 * BLOCK_FRAMES * hop):
                k = min(BLOCK_FRAMES, avail - t)
                yield self._make_block(scratch, buf, off, t, k, pad, pad + n_real)
                t += k
            drop = t * hop - off
            if drop > 0:
                buf = buf[drop:].copy() if drop < len(buf) else buf[len(buf) :]
                off += drop
        if n_real == 0:
            raise ValueError("audio is empty (no samples in any block)")
        if not self.center and n_real < n_fft:
            raise ValueError(
                f"clip of {n_real} samples is shorter than n_fft={n_fft} with center=false"
            )
        T = self.n_frames(n_real)
        buf = np.concatenate([buf, np.zeros(pad + n_fft, np.float32)])
        while t < T:
            k = min(BLOCK_FRAMES, T - t)
            yield self._make_block(scratch, buf, off, t, k, pad, pad + n_real)
            t += k

    def _make_block(self, scratch, buf, off, t, k, lo, hi) -> Block:
        s = t * self.hop_length - off
        e = s + (k - 1) * self.hop_length + self.n_fft
        return Block(self, scratch, buf[s:e], t, k, lo - (s + off), hi - (s + off))

    # ------------------------------------------------------------------ passes
    def _globals(self, chunks: Iterable[np.ndarray], needs: list | None = None) -> dict:
        """First pass: whole-clip constants the recipe asks for (empty when none)."""
        g: dict = {}
        needs = self.needs if needs is None else needs
        if not needs:
            return g
        acc: dict = {}
        for b in self._blocks(chunks):
            for need in needs:
                kind = need[0]
                if kind == "bankmax":
                    m = float(b.mel(need[1]).max())
                    acc[need] = max(acc.get(need, -np.inf), m)
                elif kind == "max":  # need = ("max", name, fn): fn(block) -> array
                    m = float(need[2](b).max())
                    acc[need] = max(acc.get(need, -np.inf), m)
                elif kind == "collect":  # ("collect", name, fn, finish): fn(block) -> tuple
                    acc.setdefault(need, []).append(need[2](b))
                else:  # pragma: no cover - programming error
                    raise AssertionError(need)
        for need in needs:
            if need[0] == "collect":
                g[need] = need[3](acc.get(need, []))
            else:
                g[need] = acc[need]
        return g

    def _run(
        self, chunks: Iterable[np.ndarray], g: dict, deferred: frozenset = frozenset()
    ) -> Iterator[tuple[Block, dict[str, np.ndarray]]]:
        """Per-block base outputs of all computers (causal part only); computers listed in
        ``deferred`` get ``g=None`` and return intermediates for their ``finish``."""
        states: list[dict] = [{} for _ in self.computers]
        for b in self._blocks(chunks):
            out: dict[str, np.ndarray] = {}
            for i, ((_, comp), st) in enumerate(zip(self.computers, states, strict=True)):
                out.update(comp.step(b, st, None if i in deferred else g))
            yield b, out

    # ------------------------------------------------------------------ public API
    def __call__(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Features of one clip ``(n_samples,)`` or a batch ``(..., n_samples)``.

        Returns ``{name: float32 (..., n_dims, n_frames)}``; a batch gives the same as one
        clip at a time. Centred analysis of a clip shorter than one frame gives
        ``1 + n // hop_length`` zero-padded frames (at least one).
        """
        y = as_audio(y)
        if y.ndim > 1:
            lead = y.shape[:-1]
            flat = y.reshape(-1, y.shape[-1])
            outs = [self(c) for c in flat]
            return {
                k: np.stack([o[k] for o in outs]).reshape(lead + outs[0][k].shape)
                for k in self.names
            }
        # constants derivable from the outputs themselves (a dB maximum) need no first pass
        deferred = frozenset(
            i for i, (_, c) in enumerate(self.computers) if c.needs and c.finish is not None
        )
        rest = sorted(
            {n for i, (_, c) in enumerate(self.computers) if i not in deferred for n in c.needs},
            key=repr,
        )
        g = self._globals(y, rest)
        parts: dict[str, list[np.ndarray]] = {}
        for _, out in self._run(y, g, deferred):
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        res = {k: np.concatenate(v, axis=-1) if len(v) > 1 else v[0] for k, v in parts.items()}
        for i, (_, comp) in enumerate(self.computers):
            if i in deferred:
                res.update(comp.finish(res))
            if comp.lookahead is not None:
                f = comp.lookahead()
                base = {k: res.pop(k) for k in list(res) if k in comp.step_names}
                done = _concat_dicts([f.push(base), f.flush()])
                res.update(done)
            name = comp.delta_of or next(iter(comp.outputs))
            for i in range(1, comp.deltas + 1):
                res[f"{name}_delta" + ("2" if i == 2 else "")] = delta(
                    res[name], width=comp.delta_width, order=i
                )
        return {k: res[k] for k in self.names}

    def stream(
        self, blocks: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]]
    ) -> Iterator[dict[str, np.ndarray]]:
        """Features of one long clip given as consecutive 1-D blocks of any lengths.

        Yields dicts ``{name: (n_dims, k)}`` (same ``k`` for all names in a dict) whose
        concatenation along frames equals ``self(y_full)`` within float32 rounding. Memory
        is bounded by the block size plus a few frames of look-ahead (``delta_width // 2``
        for deltas, half the tempogram window), not by the clip length.

        Recipes using whole-clip constants (``top_db`` set, ``chroma`` with ``tuning:
        null``) need two passes: ``blocks`` must then be re-iterable (a list, or a
        zero-argument callable returning a fresh iterator), otherwise ``ValueError``.
        """
        if self.needs:
            if callable(blocks):
                g = self._globals(blocks())
                it = blocks()
            elif isinstance(blocks, list | tuple):
                g = self._globals(blocks)
                it = blocks
            else:
                raise ValueError(
                    "this recipe uses whole-clip constants "
                    f"({', '.join(str(n[:2]) for n in self.needs)}), which take two passes "
                    "over the audio: pass blocks as a list or as a callable returning a fresh "
                    "iterator, or use frame-local parameters (top_db: null, tuning: 0)"
                )
        else:
            g, it = {}, (blocks() if callable(blocks) else blocks)
        filters = []
        for _, comp in self.computers:
            filters.append(
                (
                    comp,
                    comp.lookahead() if comp.lookahead else None,
                    [DeltaStream(comp.delta_width, i) for i in range(1, comp.deltas + 1)],
                )
            )
        pending: dict[str, list[np.ndarray]] = {k: [] for k in self.names}
        counts = dict.fromkeys(self.names, 0)

        def add(k: str, v: np.ndarray) -> None:
            if v.shape[-1]:
                pending[k].append(v)
                counts[k] += v.shape[-1]

        def feed(out: dict[str, np.ndarray] | None) -> None:
            """Push one block's base outputs (``None``: end of clip) through the filters."""
            for comp, la, ds in filters:
                if out is not None:
                    base = {k: out[k] for k in comp.step_names}
                    base = la.push(base) if la is not None else base
                else:
                    base = la.flush() if la is not None else {}
                for k, v in base.items():
                    add(k, v)
                name = comp.delta_of or next(iter(comp.outputs))
                v = base.get(name)
                for i, d in enumerate(ds, 1):
                    r = d.push(v) if v is not None else None
                    if out is None:
                        r = d.flush() if r is None else np.concatenate([r, d.flush()], axis=-1)
                    if r is not None:
                        add(f"{name}_delta" + ("2" if i == 2 else ""), r)

        def emit(final: bool) -> dict[str, np.ndarray] | None:
            n = min(counts.values())
            if n == 0 and not final:
                return None
            res = {}
            for k in self.names:
                arr = (
                    np.concatenate(pending[k], axis=-1)
                    if len(pending[k]) > 1
                    else (pending[k][0] if pending[k] else np.zeros((self.dims[k], 0), np.float32))
                )
                res[k] = arr[:, :n]
                pending[k] = [arr[:, n:]] if arr.shape[-1] > n else []
                counts[k] -= n
            return res if n else None

        for _, out in self._run(it, g):
            feed(out)
            r = emit(False)
            if r is not None:
                yield r
        feed(None)
        r = emit(True)
        if r is not None:
            yield r


def _concat_dicts(ds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = ds[0].keys()
    return {k: np.concatenate([d[k] for d in ds if d.get(k) is not None], axis=-1) for k in keys}

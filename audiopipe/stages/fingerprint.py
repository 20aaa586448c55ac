"""Landmark audio fingerprinting (Wang 2003, in the manner of audfprint) and identification.

The core is pure numpy on ``(y, sr)``: :func:`landmarks` resamples to a fixed analysis rate
(11025 Hz), takes a log-magnitude STFT (``audiopipe.features.stft``, n_fft 512, hop 256 =
23.2 ms), picks local maxima (``maximum_filter`` over ±2 bins × ±2 frames since round 6, ±5
bins before; then the loudest ``density`` peaks per one-second block; ranking by level
rather than by audfprint's high-passed onsets measured better under white noise, and the
high-pass is kept as an option), from FFT bin 3 (65 Hz) up, and pairs every anchor peak with
the next ``fanout`` peaks in a target zone (1..63 frames later, within ±31 bins). A second
layer (round 6, ``fine_fft``) does the same on a 2048-point STFT of the same frames below
1.38 kHz (``fine_density`` 20 peaks/s): a longer window raises a held partial 6 dB more over
white noise in its bin (on synthetic melodies at 0 dB white noise 3-5 times as many of its
landmarks survive as of the first layer's). Queries are denser than the index
(:data:`QUERY_PARAMS`: 120 and 40 peaks/s, fanout 16, against 45/s, 20/s and fanout 8 in the
index): under noise, noise peaks crowd between a query's true peaks, and a wider fanout
still reaches the targets the index paired. Round 2 (issue 12 §4) tried query shifts
(``shifts``), fanout 24 and a noise-floor threshold (``floor_db``): no gain, both off. Round
3 found the 0 dB white-noise misses to be short calls (a 0.3 s bark left the index 26 peaks)
and noisy textures: ``f_sd=2`` gives them peaks, but alone it also peaks babble's harmonics
(music in 0 dB babble 1.000 -> 0.938), so it was an option until round 6, where with the
second layer it gained in every tuning condition (0 dB white music 0.852 -> 1.000, non-music
0.919 -> 1.000, babble on music 0.926 -> 1.000, on a tuning part enlarged for it; held-out
white 0.875/0.918 -> 1.000/1.000, babble on the music corpus 0.986 -> 0.959); each shape has
its own calibration (:data:`CONF_COEFS`); details in ``benchmarks/tune_fingerprint.py``.
Pairs are hashed as ``f1 << 12 | (f2 - f1 + 32) << 6 | dt`` (20 bits; the second layer's
with bit 20 set) with the anchor's frame; peak picking and pairing live in ``_fppeaks``.
Queries pick peaks as their index did (:data:`PEAK_PARAMS` of the run that built it, read by
:func:`load_index`; new parameters make the next run redo every clip).

:class:`FingerprintIndex` is the inverted index held as a sorted hash array (``searchsorted``
lookup); :meth:`FingerprintIndex.match` votes on ``t_db - t_query`` per clip (distinct hash
values, counted in a ±1 frame window), each vote weighing ``1 / n`` for a hash the query
holds at ``n`` times (round 4, :data:`VOTE_WEIGHTING`: the copies of a stationary sound's
hashes meeting one repeated pattern of a track are one piece of evidence; round 3 matched
a chainsaw to a music track 0.99 sure); ``score`` is the best offset's weighted count and
the runner-up the best of any other clip. :func:`confidence` turns the two into an estimated
probability that the answer is right: a logistic model of their ``log1p`` (the runner-up
measures how high chance alignments reach for this query in this index) fitted on tuning
queries. A match needs ``votes >= min_votes`` and ``confidence >= min_confidence``
(:data:`MIN_CONFIDENCE`). (A per-clip Poisson chance level was rejected: chance alignments clump.)

Parameters, the calibration and the threshold were chosen by ``benchmarks/tune_fingerprint.py``
on a fixed split of recordings (``benchmarks/fp_split.py``): the index holds music, ESC-10
animals and nature, speech, drums; tuning queries come from half of the indexed recordings
and from non-members (other ESC-10 clips, other speech, heart sounds, whole FSDD clips; round
4 also against the index of the music alone) clean and at 0 dB white noise and babble. The
threshold is 0.5 (more likely wrong than right is no answer; tuned thresholds for 0.5 %
tuning false positives were lower). ``benchmarks/fingerprint.py`` reports on the rest.

In a dataset the index is the Delta table ``fingerprints`` (hash int64, clip_id string,
t int32), kept by the stage :class:`Fingerprint` (clip by clip: a run fingerprints only
clips not yet in the table and drops rows of clips no longer in ``clips``, in one commit;
a clip without landmarks - silence, shorter than a frame - gets one marker row (hash -1,
t -1) so it is not redone; the run's metrics count the landmarks, ``n_hashes`` (marker rows
left out), and those clips, ``n_clips_no_landmarks``; a clip that fails becomes an
``errors`` row and is tried again by the next run). :func:`identify` decodes query files and matches them against the
table (cached per process and table version; thread-safe, thresholds per call).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.standard_normal(11025 * 10).astype(np.float32)
>>> h, t = landmarks(y, 11025)
>>> idx = FingerprintIndex.from_arrays(h, t, np.zeros(len(h), np.int64), ["noise"])
>>> m = idx.match(*query_landmarks(y[11025 * 3 : 11025 * 8], 11025))
>>> m["clip_id"], round(m["offset_s"], 1)
('noise', 3.0)
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from audiopipe.audio import to_mono
from audiopipe.stages._fpindex import (
    CONF_COEF,
    CONF_COEFS,
    FINE_FFT,
    HOP_LENGTH,
    MIN_CONFIDENCE,
    SR,
    VOTE_WEIGHTING,
    FingerprintIndex,
    confidence,
    confidence_features,
)
from audiopipe.stages._fppeaks import (
    _MIN_BIN,
    FINE_FLAG,
    FINE_ROWS,
    N_FFT,
    _max_filter,  # noqa: F401  (tests and studies reach it here)
    _pairs,
    _peaks,
)
from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
from audiopipe.stages.params import Param

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "SR", "QUERY_DENSITY", "N_FFT", "HOP_LENGTH",
    "landmarks",
    "query_landmarks", "QUERY_PARAMS", "PEAK_PARAMS",
    "confidence", "confidence_features", "CONF_COEF", "CONF_COEFS",
    "MIN_CONFIDENCE", "VOTE_WEIGHTING",
    "FingerprintIndex",
    "Fingerprint",
    "load_index",
    "identify",
    "identify_many",
]

#: peaks per second taken from a query (denser than the index: more chances to meet)
QUERY_DENSITY = 120.0
#: landmark parameters of queries (see the module docstring)
QUERY_PARAMS: dict[str, Any] = {"density": QUERY_DENSITY, "fanout": 16, "fine_density": 40.0}
#: stage parameters that shape the peaks: a query takes them from the index it is matched to
PEAK_PARAMS = ("f_sd", "t_sd", "hpf_pole", "min_bin", "fine_fft")
#: their values for an index no run describes (built before round 6: one layer)
LEGACY_PEAK_PARAMS: dict[str, Any] = {"f_sd": 5, "t_sd": 2, "hpf_pole": 0.0, "min_bin": 2,
                                      "fine_fft": 0}
#: hash of the marker row of a clip without landmarks (silence); never matches a query
NO_LANDMARKS = -1


def fingerprints_schema() -> Any:
    """Schema of the ``fingerprints`` table."""
    import pyarrow as pa

    return pa.schema([("hash", pa.int64()), ("clip_id", pa.string()), ("t", pa.int32())])




def landmarks(
    y: np.ndarray,
    sr: int,
    *,
    density: float = 45.0,
    fanout: int = 8,
    f_sd: int = 2,
    t_sd: int = 2,
    hpf_pole: float = 0.0,
    min_bin: int = _MIN_BIN,
    band_norm: bool = False,
    shifts: int = 1,
    floor_db: float = 0.0,
    fine_fft: int = FINE_FFT,
    fine_density: float = 20.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmark hashes of a signal: pairs of spectral peaks ``(f1, f2 - f1, dt)``, from the
    ``N_FFT`` spectrogram and from a finer one (``fine_fft``) below 1.4 kHz.

    Parameters
    ----------
    y : np.ndarray
        Audio, mono ``(n,)`` or multichannel ``(n, channels)`` / ``(channels, n)`` (mixed
        to mono).
    sr : int
        Sample rate of ``y``; resampled to :data:`SR` (11025 Hz) for analysis.
    density : float
        Peaks kept per second of audio (the strongest ones).
    fanout : int
        Target peaks paired with each anchor (the nearest in time inside the zone).
    f_sd, t_sd : int
        Half-size of the local-maximum neighbourhood in bins and frames.
    hpf_pole : float
        Pole of audfprint's per-band high-pass filter over time; 0 (default) disables it.
    min_bin : int
        Lowest spectrogram row a peak may sit in (row ``k`` = FFT bin ``k + 1``, 21.5 Hz each).
    band_norm : bool
        Rank peaks by level relative to their band's median over the clip (adaptive per band)
        rather than by absolute level.
    shifts : int
        Analyses at this many sub-hop offsets (``k * HOP_LENGTH / shifts`` samples), their
        distinct landmarks pooled (audfprint's query shifts): a query is not aligned to the
        index's frames, and each offset's STFT picks a slightly different set of peaks.
    floor_db : float
        Keep only peaks at least this many dB above their band's median level over the
        signal (a noise-floor-adaptive threshold; 0 disables it): under broadband noise the
        peaks of the noise itself only pair into chance hashes.
    fine_fft : int
        FFT size of the second layer (round 6; 0: none): its rows under
        :data:`~audiopipe.stages._fppeaks.FINE_ROWS` (0-1.38 kHz at 2048; the lowest
        ``min_bin`` scaled to it), picked and paired as the first layer's, on the same frames.
        Under broadband noise a longer window raises a held partial over the noise in its bin
        (a 2048 window 6 dB more than 512's).
    fine_density : float
        Peaks per second of the second layer.

    Returns
    -------
    hashes : np.ndarray, int64, shape (n,)
        Hashes ``f1 << 12 | (df + 32) << 6 | dt`` (20 bits), those of the second layer with
        bit 20 set.
    times : np.ndarray, int32, shape (n,)
        Anchor frame of each hash (frames of :data:`HOP_LENGTH` samples at :data:`SR`).

    Silence and signals shorter than a frame give empty arrays.

    Examples
    --------
    >>> h, t = landmarks(np.zeros(22050, np.float32), 22050)
    >>> h.size, t.size
    (0, 0)
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim > 2:
        raise ValueError(f"audio must be 1-D or 2-D (samples, channels), got shape {y.shape}")
    y = to_mono(y)
    if not np.all(np.isfinite(y)):
        raise ValueError("audio contains NaN or infinity")
    if sr != SR and y.size:
        from audiopipe.audio import resample

        y = resample(y, int(sr), SR)
    if int(shifts) < 1:
        raise ValueError(f"shifts must be at least 1, got {shifts}")
    if fine_fft and (int(fine_fft) <= N_FFT or int(fine_fft) & (int(fine_fft) - 1)):
        raise ValueError(f"fine_fft must be 0 or a power of two over {N_FFT}, got {fine_fft}")
    hs, ts = [], []
    for k in range(int(shifts)):
        h, t = _pairs(*_peaks(y[k * HOP_LENGTH // int(shifts):], density, f_sd, t_sd, hpf_pole,
                              min_bin, band_norm, floor_db), fanout)
        hs.append(h)
        ts.append(t)
    if fine_fft:  # the second layer: a longer FFT over the low rows, on the same frames
        h, t = _pairs(*_peaks(y, fine_density, f_sd, t_sd, hpf_pole,
                              min_bin * int(fine_fft) // N_FFT, band_norm, floor_db,
                              n_fft=int(fine_fft), max_row=FINE_ROWS), fanout)
        hs.append(h | FINE_FLAG)
        ts.append(t)
    if len(hs) == 1:
        return hs[0], ts[0]
    key = np.unique((np.concatenate(ts).astype(np.int64) << 21) | np.concatenate(hs))
    return key & ((1 << 21) - 1), (key >> 21).astype(np.int32)  # sorted by time, then hash




def query_landmarks(
    y: np.ndarray, sr: int, peak_params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`landmarks` of a query (denser: :data:`QUERY_PARAMS`), its peaks picked like
    the index's (``peak_params``: :attr:`FingerprintIndex.peak_params`).

    Examples
    --------
    >>> query_landmarks(np.zeros(11025, np.float32), 11025)[0].size
    0
    """
    shape = {k: v for k, v in (peak_params or {}).items() if k in PEAK_PARAMS}
    return landmarks(y, sr, **{**QUERY_PARAMS, **shape})


# ------------------------------------------------------------------------------- stage


class Fingerprint(ClipStage):
    """Landmark hashes of every clip in the ``fingerprints`` table (incremental)."""

    name = "fingerprint"
    # 2: a second landmark layer (fine_fft 2048 below 1.4 kHz; round 6); 3: metric n_hashes
    # leaves out the marker rows of clips without landmarks (counted in n_clips_no_landmarks)
    version = "3"
    summary = (
        "Landmark hashes (Wang 2003) of every clip, table `fingerprints` (hash, clip_id, t); "
        "`audiopipe identify FILE...` looks excerpts up in it."
    )
    params = (
        Param("density", "float", 45.0, "peaks kept per second of audio", low=1),
        Param("fanout", "int", 8, "target peaks paired with each anchor", low=1),
        Param("f_sd", "int", 2, "local-maximum half-size in bins (5: the one-layer default "
              "until round 6, see the module docstring)", low=1),
        Param("t_sd", "int", 2, "local-maximum half-size in frames", low=1),
        Param("hpf_pole", "float", 0.0, "pole of audfprint's high-pass over time (0 = off)",
              low=0, high=0.999),
        Param("min_bin", "int", _MIN_BIN, "lowest spectrogram row of a peak (21.5 Hz rows)",
              low=0, high=200),
        Param("fine_fft", "int", FINE_FFT, "FFT size of the second landmark layer below "
              "1.4 kHz (0 = none; a power of two over 512)", low=0, high=16384),
        Param("fine_density", "float", 20.0, "peaks kept per second in the second layer",
              low=1),
    )
    tables = ("fingerprints",)

    def check(self, params: Mapping[str, Any]) -> list[str]:
        f = params["fine_fft"]
        ok = f == 0 or (f > N_FFT and f & (f - 1) == 0)
        return [] if ok else [f"fine_fft must be 0 or a power of two over {N_FFT}, got {f}"]

    @property
    def schemas(self) -> dict[str, Any]:  # type: ignore[override]
        return {"fingerprints": fingerprints_schema()}

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        import pyarrow as pa

        from audiopipe.audio import AudioError
        from audiopipe.stages._common import error_row

        lm = {k: ctx.params[k] for k in ("density", "fanout", "f_sd", "t_sd", "hpf_pole", "min_bin",
                                         "fine_fft", "fine_density")}
        hs, cs, ts = [], [], []
        out = ClipBatch()
        for cid in clip_ids:
            try:
                y, sr = ctx.ds.load_audio(cid, sr=SR)
                h, t = landmarks(y, sr, **lm)
            except (AudioError, ValueError, OSError) as err:
                out.failed += 1
                out.errors.append(error_row("fingerprint", cid, ctx.ds.clip_uri(cid), err, ctx.run_id))
                continue
            if h.size == 0:  # silence / too short: one marker row so the clip counts as done
                h, t = np.array([NO_LANDMARKS], np.int64), np.array([-1], np.int32)
            hs.append(h)
            ts.append(t)
            cs.extend([cid] * h.size)
        table = pa.table(
            {
                "hash": pa.array(np.concatenate(hs) if hs else np.zeros(0, np.int64), pa.int64()),
                "clip_id": pa.array(cs, pa.string()),
                "t": pa.array(np.concatenate(ts) if ts else np.zeros(0, np.int32), pa.int32()),
            },
            schema=fingerprints_schema(),
        )
        out.rows["fingerprints"] = [table]
        return out

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        import pyarrow.compute as pc

        from audiopipe.stages._common import metric_rows

        t = ctx.ds.table("fingerprints", ["clip_id", "hash"])
        marker = pc.equal(t.column("hash"), NO_LANDMARKS)  # a clip without landmarks
        n_none = int(pc.sum(marker).as_py() or 0)
        m = {"n_clips": len(t.column("clip_id").unique()), "n_hashes": t.num_rows - n_none,
             "n_clips_no_landmarks": n_none}
        with _CACHE_LOCK:
            _CACHE.clear()
        return metric_rows("fingerprint", "landmarks", m, evaluation="count", run_id=ctx.run_id)


# ------------------------------------------------------------------------------- identify
_CACHE: dict[tuple[str, int], FingerprintIndex] = {}
_CACHE_LOCK = threading.Lock()


def load_index(ds: Dataset, **params: Any) -> FingerprintIndex:
    """The dataset's ``fingerprints`` table as a :class:`FingerprintIndex` (cached per version)."""
    from audiopipe.stages._common import StageInputError
    from audiopipe.store.tables import scan_table

    dt = ds.delta("fingerprints")
    if dt is None:
        raise StageInputError(
            f"dataset {ds.name!r} has no fingerprints: run `audiopipe stage fingerprint {ds.name}`"
        )
    key = (ds.location.table_uri("fingerprints"), int(dt.version()))
    with _CACHE_LOCK:  # one index in memory; each caller's thresholds on its own copy
        if key not in _CACHE:
            _CACHE.clear()
            table = scan_table(ds.location, "fingerprints", key[1], ["hash", "clip_id", "t"])
            _CACHE[key] = FingerprintIndex.from_table(
                table, peak_params=_index_peak_params(ds, key[1]))
        idx = copy.copy(_CACHE[key])
    idx.set_thresholds(**params)
    return idx


def _index_peak_params(ds: Dataset, version: int) -> dict[str, Any]:
    """Peak shape (:data:`PEAK_PARAMS`) of the ``fingerprints`` table at ``version``: the
    parameters of the newest successful fingerprint run that wrote it (or an older one)."""
    import json
    import warnings

    from audiopipe.store.runs import stage_runs

    for r in reversed(stage_runs(ds.location, "fingerprint")):  # newest first
        written = r.versions().get("fingerprints")
        if r.status != "ok" or (written is not None and written > version):
            continue  # failed, or wrote a version after the one read (a pinned dataset)
        params = json.loads(r.params or "{}")
        return {k: params.get(k, LEGACY_PEAK_PARAMS[k]) for k in PEAK_PARAMS}
    warnings.warn(f"dataset {ds.name!r}: no fingerprint run records how its fingerprints "
                  "were built; assuming those of round 4 (f_sd 5, t_sd 2, one layer)", stacklevel=3)
    return dict(LEGACY_PEAK_PARAMS)


def identify(
    ds: Dataset,
    path: str | os.PathLike[str],
    *,
    min_votes: int = 8,
    min_confidence: float = MIN_CONFIDENCE,
) -> dict[str, Any]:
    """Identify an audio excerpt against the dataset's fingerprints.

    Returns ``clip_id``, ``uri``, ``offset_s``, ``confidence``, ``votes`` (``clip_id``
    None when nothing matches; an undecodable file gives None and an ``error`` message).

    Examples
    --------
    >>> identify(ds, "excerpt.wav")  # doctest: +SKIP
    {'clip_id': '3f2a…', 'uri': '…/song.ogg', 'offset_s': 12.4, 'confidence': 0.93, 'votes': 61}
    """
    return identify_many(ds, [path], min_votes=min_votes, min_confidence=min_confidence)[0]


def identify_many(
    ds: Dataset,
    paths: Iterable[str | os.PathLike[str]],
    *,
    min_votes: int = 8,
    min_confidence: float = MIN_CONFIDENCE,
) -> list[dict[str, Any]]:
    """:func:`identify` for many files with one index: one answer per file, with its ``query``."""
    from audiopipe.audio import AudioError, load

    idx = load_index(ds, min_votes=min_votes, min_confidence=min_confidence)
    out = []
    for path in paths:
        try:
            y, sr = load(str(path), SR)
        except (AudioError, OSError) as err:
            out.append(
                {"query": str(path), "clip_id": None, "uri": None, "offset_s": None,
                 "confidence": 0.0, "votes": 0, "runner_up": 0, "score": 0.0,
                 "runner_up_score": 0.0, "error": str(err)}
            )
            continue
        m = idx.match(*query_landmarks(y, sr, idx.peak_params))
        uri = ds.clip_uri(m["clip_id"]) if m["clip_id"] is not None else None
        out.append({"query": str(path), **m, "uri": uri, "error": m.get("error")})
    return out

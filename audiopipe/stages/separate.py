"""Source separation: NMF on the magnitude spectrogram, soft masks, inverse STFT; and HPSS.

* :func:`hpss` — harmonic/percussive separation by median filtering (Fitzgerald 2010)
  along time and frequency, soft masks as ``librosa.decompose.hpss``.
* :class:`NMFSeparator` — scikit-learn style. Unsupervised (no ``fit`` examples): NMF of
  the mixture with ``n_components`` bases, bases clustered into ``n_sources`` groups by
  k-means on their log-spectral shape. Supervised (``fit(examples)``): ``n_components``
  bases learned per source from example audio (e.g. speech vs music), then only the
  activations are learned on the mixture. Sources get Wiener-like masks
  ``V_s ** p / sum_k V_k ** p`` applied to the complex STFT, inverted with
  ``audiopipe.features.istft``.

* ``method: mask`` — a ratio-mask network (:mod:`~audiopipe.stages.masking`) trained on
  mixtures of the labelled isolated clips (``sources``): stems sum to the mixture, named and
  ordered as ``sources``; held-out clips score it (:mod:`~audiopipe.stages.masking_stage`).

The stage :class:`Separate` (clip by clip: only new clips) writes stems as FLAC files in
its run folder (``<dataset>/stages/separate/<run_id>/stems/<clip_id>/<stem>.flac``, local or
object storage) and a ``stems`` table (clip_id, stem, uri, error), plus a PNG of stem
spectrograms. A clip's stems share one scale (all scaled down only if one would clip): they
still sum to the mixture. A second run never touches the first run's files. NMF is the stages' one
NMF (:mod:`audiopipe.stages._nmf`).

Examples
--------
>>> import numpy as np
>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> tone = 0.3 * np.sin(2 * np.pi * 440 * t)
>>> clicks = np.zeros(sr); clicks[::2205] = 1.0
>>> h, p = hpss_audio((tone + clicks).astype(np.float32))
>>> bool(np.corrcoef(h, tone)[0, 1] > 0.9)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiopipe.audio import to_mono
from audiopipe.stages._common import median_kernel_problem, overlap_problem
from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
from audiopipe.stages.params import Param

__all__ = ["hpss", "hpss_audio", "nmf", "NMFSeparator", "soft_masks", "oracle_masks", "Separate"]


def nmf(V: np.ndarray, n_components: int, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`audiopipe.stages._nmf.nmf` (the stages' one NMF), re-exported here.

    Examples
    --------
    >>> V = np.abs(np.random.default_rng(0).standard_normal((20, 30)))
    >>> W, H = nmf(V, 4, max_iter=100)
    >>> W.shape, H.shape
    ((20, 4), (4, 30))
    """
    from audiopipe.stages._nmf import nmf as _nmf

    return _nmf(V, n_components, **kwargs)


def soft_masks(parts: list[np.ndarray], power: float = 2.0) -> list[np.ndarray]:
    """Wiener-like masks ``X_i ** power / sum_j X_j ** power`` (0 where all are 0)."""
    P = [np.asarray(x, dtype=np.float64) ** power for x in parts]
    tot = np.sum(P, axis=0)
    safe = np.where(tot > 0, tot, 1.0)
    return [np.where(tot > 0, p / safe, 1.0 / len(P)) for p in P]


def hpss(
    S: np.ndarray,
    kernel_size: int | tuple[int, int] = 31,
    power: float = 2.0,
    mask: bool = False,
    margin: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic and percussive parts of a (complex or magnitude) spectrogram ``S``.

    ``kernel_size`` is the median filter length (time for harmonic, frequency for
    percussive; a pair gives both), ``power`` the soft-mask exponent, ``margin`` > 1
    makes the masks stricter. With ``mask=True`` the masks are returned instead.
    Same parameters and soft-mask definition as ``librosa.decompose.hpss``.

    Examples
    --------
    >>> H, P = hpss(np.ones((5, 7)))
    >>> H.shape, bool(np.allclose(H + P, 1.0))
    ((5, 7), True)
    """
    from scipy.ndimage import median_filter

    kh, kp = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    if problem := median_kernel_problem(int(kh)) or median_kernel_problem(int(kp)):
        raise ValueError(problem)
    mag = np.abs(S)
    harm = median_filter(mag, size=(1, int(kh)), mode="reflect")
    perc = median_filter(mag, size=(int(kp), 1), mode="reflect")
    if margin == 1.0:
        mh, mp = soft_masks([harm, perc], power)
    else:
        mh = soft_masks([harm, perc * margin], power)[0]
        mp = soft_masks([perc, harm * margin], power)[0]
    if mask:
        return mh, mp
    return S * mh, S * mp


def hpss_audio(
    y: np.ndarray, n_fft: int = 2048, hop_length: int = 512, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """HPSS of audio: ``(harmonic, percussive)`` waveforms of ``len(y)`` samples
    (``hop_length <= n_fft // 2``, else ValueError: see :func:`~._common.overlap_problem`)."""
    import audiopipe.features as F

    if problem := overlap_problem(n_fft, hop_length):
        raise ValueError(problem)
    y = to_mono(y)
    D = F.stft(y=y, n_fft=n_fft, hop_length=hop_length)
    Dh, Dp = hpss(D, **kwargs)
    kw = {"n_fft": n_fft, "hop_length": hop_length, "length": y.size}
    return F.istft(stft_matrix=Dh, **kw), F.istft(stft_matrix=Dp, **kw)


class NMFSeparator:
    """NMF source separation with soft masks (unsupervised or with per-source bases).

    Parameters
    ----------
    n_components : int
        Bases in total (unsupervised) or per source (supervised).
    n_sources : int
        Number of sources for unsupervised clustering (supervised: one per example).
    beta_loss : str
        ``"kullback-leibler"`` (default) or ``"frobenius"`` (scikit-learn's names).
    max_iter : int
        NMF iterations (multiplicative updates).
    mask_power : float
        Exponent of the Wiener-like soft masks.
    n_fft, hop_length : int
        STFT of ``audiopipe.features.stft``.
    random_state : int
        Seeds NMF init and k-means: same input and parameters give the same stems.

    Attributes
    ----------
    components_ : list of np.ndarray
        Supervised bases per source, each ``(1 + n_fft // 2, n_components)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = 0.1 * rng.standard_normal(22050).astype(np.float32)
    >>> tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(22050) / 22050)).astype(np.float32)
    >>> sep = NMFSeparator(n_components=4, max_iter=50).fit([tone, noise], sr=22050)
    >>> sep.separate(tone + noise).shape
    (2, 22050)
    """

    def __init__(
        self,
        n_components: int = 16,
        n_sources: int = 2,
        beta_loss: str = "kullback-leibler",
        max_iter: int = 200,
        mask_power: float = 2.0,
        n_fft: int = 2048,
        hop_length: int = 512,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_sources = n_sources
        self.beta_loss = beta_loss
        self.max_iter = max_iter
        self.mask_power = mask_power
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.random_state = random_state

    def _mag(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import audiopipe.features as F

        if problem := overlap_problem(self.n_fft, self.hop_length):
            raise ValueError(problem)
        D = F.stft(y=to_mono(y), n_fft=self.n_fft, hop_length=self.hop_length)
        return D, np.abs(D).astype(np.float64)

    def _nmf(
        self, V: np.ndarray, k: int, W: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``V ~ W @ H`` with W (freq, k), H (k, frames); W fixed when given."""
        from audiopipe.stages._nmf import nmf as _nmf

        return _nmf(
            np.asarray(V, np.float32) + np.float32(1e-9),
            k,
            W=W,
            beta_loss=self.beta_loss,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )

    def fit(self, examples: list[np.ndarray], sr: float = 22050) -> NMFSeparator:
        """Learn ``n_components`` bases per source from one example signal per source."""
        if len(examples) < 2:
            raise ValueError("supervised separation needs example audio for at least 2 sources")
        comps = []
        for i, ex in enumerate(examples):
            _, V = self._mag(ex)
            if not np.any(V):
                raise ValueError(f"example of source {i} is silent")
            W, _ = self._nmf(V, self.n_components)
            comps.append(W / (W.sum(axis=0, keepdims=True) + 1e-12))
        self.components_ = comps
        self.sr_ = sr
        return self

    def source_spectrograms(self, V: np.ndarray) -> list[np.ndarray]:
        """Model magnitude of each source on a mixture magnitude ``V`` (freq, frames)."""
        from sklearn.cluster import KMeans

        if hasattr(self, "components_"):
            W = np.concatenate(self.components_, axis=1)
            _, H = self._nmf(V, W.shape[1], W=W)
            out, a = [], 0
            for Ws in self.components_:
                b = a + Ws.shape[1]
                out.append(Ws @ H[a:b])
                a = b
            return out
        k = max(self.n_components, self.n_sources)
        W, H = self._nmf(V, k)
        from audiopipe.stages._nmf import basis_log_shapes

        feats = basis_log_shapes(W)
        labels = KMeans(self.n_sources, n_init=10, random_state=self.random_state).fit_predict(
            feats
        )
        # order sources by the spectral centroid of their bases (low first): stable names
        freqs = np.arange(W.shape[0])
        cents = [
            float((freqs @ W[:, labels == s]).sum() / max(W[:, labels == s].sum(), 1e-12))
            for s in range(self.n_sources)
        ]
        return [W[:, labels == s] @ H[labels == s] for s in np.argsort(cents)]

    def separate(self, y: np.ndarray, sr: float | None = None) -> np.ndarray:
        """Separated sources ``(n_sources, len(y))`` of a mono (or mixed-down) signal."""
        y = to_mono(y)
        D, V = self._mag(y)
        n_src = len(self.components_) if hasattr(self, "components_") else self.n_sources
        if not np.any(V):
            return np.zeros((n_src, y.size), dtype=np.float32)
        import audiopipe.features as F

        masks = soft_masks(self.source_spectrograms(V), self.mask_power)
        kw = {"n_fft": self.n_fft, "hop_length": self.hop_length, "length": y.size}
        return np.stack([F.istft(stft_matrix=D * m, **kw) for m in masks]).astype(np.float32)


def oracle_masks(
    sources: list[np.ndarray], n_fft: int = 2048, hop_length: int = 512, power: float = 2.0
) -> np.ndarray:
    """Upper bound: soft masks from the true sources' magnitudes, applied to their mixture."""
    import audiopipe.features as F

    if problem := overlap_problem(n_fft, hop_length):
        raise ValueError(problem)
    Ds = [F.stft(y=to_mono(s), n_fft=n_fft, hop_length=hop_length) for s in sources]
    D = np.sum(Ds, axis=0)
    n = to_mono(sources[0]).size
    masks = soft_masks([np.abs(d) for d in Ds], power)
    return np.stack(
        [F.istft(stft_matrix=D * m, n_fft=n_fft, hop_length=hop_length, length=n) for m in masks]
    )


# --------------------------------------------------------------------------- stage


def _plot(fh: Any, stems: dict[str, np.ndarray], sr: int, title: str) -> None:
    import audiopipe.features as F
    from audiopipe.stages._common import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(len(stems), 1, figsize=(10, 2.2 * len(stems)), squeeze=False)
    mags = {k: np.abs(F.stft(y=y)) for k, y in stems.items()}
    ref = max(float(m.max()) for m in mags.values()) or 1.0  # one dB scale: quiet stems look quiet
    for ax, (name, y) in zip(axes[:, 0], stems.items(), strict=True):
        S = F.amplitude_to_db(S=mags[name], ref=ref)
        im = ax.imshow(S, origin="lower", aspect="auto", extent=(0, y.size / sr, 0, sr / 2000),
                       vmin=-80, vmax=0)
        ax.set_ylabel(f"{name}\nkHz")
    fig.colorbar(im, ax=list(axes[:, 0]), label="dB (re mixture peak)", shrink=0.8)
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title)
    fig.savefig(fh, format="png", dpi=70, bbox_inches="tight")
    plt.close(fig)


class Separate(ClipStage):
    """Stems of every clip as FLAC files (table ``stems``: clip_id, stem, uri, error)."""

    name = "separate"
    version = "2"  # mask: held-out split and training order by content hash, not clip id
    summary = (
        "Source separation clip by clip: HPSS (harmonic/percussive), unsupervised NMF, NMF "
        "with per-source bases learned from labelled example clips, or a ratio-mask network "
        "trained on mixtures of labelled isolated clips (stems sum to the mixture, fixed "
        "order); FLAC stems in the run's folder, table `stems` (clip_id, stem, uri, error)."
    )
    params = (
        Param("method", "str", "hpss", "hpss, nmf, supervised nmf, or mask (learned masks)",
              choices=("hpss", "nmf", "supervised", "mask")),
        Param("sr", "int", 22050, "sample rate of the stems (Hz)", low=1000,
              from_dataset="sample_rate"),
        Param("n_fft", "int", 2048, "STFT size", low=16, from_dataset="n_fft"),
        Param("hop_length", "int", 512, "STFT hop", low=1, from_dataset="hop_length"),
        Param("kernel_size", "int", 31, "HPSS median filter length (frames / bins)", low=3),
        Param("n_components", "int", None,
              "NMF bases in total (nmf, default 16) or per source (supervised, default 12)",
              low=1),
        Param("n_sources", "int", 2, "sources of unsupervised NMF", low=2),
        Param("max_iter", "int", None, "NMF iterations (200); mask: most training epochs (20)", low=1),
        Param("random_state", "int", 0, "seed of NMF and k-means"),
        Param("label_column", "str", None, "supervised, mask: label column naming clips' source"),
        Param("sources", "list", None,
              "supervised, mask: label values of each source's isolated clips, in stem order"),
        Param("targets", "list", None,
              "supervised, mask: label values of the clips to separate (default: the others)"),
        Param("mask_sr", "int", 16000, "mask: rate the mask network works at (Hz)", low=1000),
        Param("hidden_units", "int", 256, "mask: units of the network's hidden layer", low=1),
        Param("n_mixtures", "int", 100, "mask: training mixtures synthesised per epoch (fresh)",
              low=1),
        Param("mix_duration_s", "float", 4.0, "mask: seconds per training mixture", low=0.1),
        Param("gain_db", "floats", (-6.0, 6.0), "mask: range of sources' training gains (dB)"),
        Param("mask_exponent", "float", 1.0, "mask: masks' power (> 1 sharpens them)", low=0.1),
        Param("holdout", "float", 0.2, "mask: share of each source's clips kept out to score it",
              low=0, high=0.9),
        Param("clips", "list", None, "only these clip ids (default: every clip)"),
    )
    tables = ("stems",)
    trusted = ("audiopipe.stages.masking.MaskSeparator", "audiopipe.stages._masknet.MaskNet")
    shard_size = 16

    @property
    def schemas(self) -> dict[str, Any]:  # type: ignore[override]
        import pyarrow as pa

        return {"stems": pa.schema([(c, pa.string()) for c in ("clip_id", "stem", "uri", "error")])}

    def check(self, params: dict[str, Any]) -> list[str]:
        p, m, g = params, params["method"], params["gain_db"] or []
        if m != "mask" and (e := overlap_problem(p["n_fft"], p["hop_length"])):
            return [e]
        if m == "hpss" and (e := median_kernel_problem(p["kernel_size"])):
            return [e]
        if m == "nmf" and (p["n_components"] or 16) < p["n_sources"]:
            return [f"n_components ({p['n_components']}) must be >= n_sources ({p['n_sources']})"
                    ": every source needs at least one NMF basis"]
        if m == "mask" and (len(g) != 2 or g[0] > g[1]):
            return [f"gain_db: need two numbers (low, high) with low <= high, got {g}"]
        if m in ("supervised", "mask") and (not p["label_column"] or len(p["sources"] or []) < 2):
            return [f"method {m} needs label_column and sources (at least two label values "
                    "whose clips are source examples)"]
        if m in ("supervised", "mask") and len(set(p["sources"])) < len(p["sources"]):
            return [f"sources {p['sources']}: a source is listed twice (each is one stem)"]
        return []

    def _labels(self, ctx: StageContext) -> dict[str, Any]:
        from audiopipe.stages._common import label_column

        ids = ctx.clip_ids()
        return dict(zip(ids, label_column(ctx.ds, ctx.params["label_column"]), strict=True))

    def select(self, ctx: StageContext) -> list[str]:
        p = ctx.params
        ids = ctx.clip_ids()
        if p["clips"]:
            want = set(p["clips"])
            ids = [c for c in ids if c in want]
        if p["method"] in ("supervised", "mask"):
            labels = self._labels(ctx)
            targets, sources = p["targets"], set(p["sources"])
            ids = [c for c in ids if (labels[c] in targets if targets else labels[c] not in sources)]
        return ids

    def model_key(self, ctx: StageContext) -> str | None:
        if ctx.params["method"] not in ("supervised", "mask"):
            return None
        from audiopipe.stages._common import stable_id

        labels = self._labels(ctx)
        examples = {s: sorted(c for c, v in labels.items() if v == s) for s in ctx.params["sources"]}
        return stable_id("separate", examples)

    def fit(self, ctx: StageContext) -> Any:
        from audiopipe.stages._common import StageInputError

        p = ctx.params
        if p["method"] == "hpss":
            return None
        if p["method"] == "mask":
            from audiopipe.stages.masking_stage import fit_mask

            return fit_mask(ctx, self._labels(ctx), self.model_key(ctx) or "separate-mask")
        est = NMFSeparator(
            n_components=p["n_components"] or (16 if p["method"] == "nmf" else 12),
            n_sources=p["n_sources"],
            max_iter=p["max_iter"] or 200,
            n_fft=p["n_fft"],
            hop_length=p["hop_length"],
            random_state=p["random_state"],
        )
        if p["method"] == "supervised":
            labels = self._labels(ctx)
            examples = []
            for s in p["sources"]:
                ex = [c for c, v in labels.items() if v == s]
                if not ex:
                    raise StageInputError(
                        f"dataset {ctx.ds.name!r}: no clip has {p['label_column']}={s!r} to "
                        f"learn source {s!r}"
                    )
                examples.append(np.concatenate([ctx.ds.load_audio(c, sr=p["sr"])[0] for c in ex]))
            est.fit(examples, sr=p["sr"])
        return est

    def _names(self, ctx: StageContext) -> list[str]:
        p = ctx.params
        if p["method"] == "hpss":
            return ["harmonic", "percussive"]
        if p["method"] in ("supervised", "mask"):
            return [str(s) for s in p["sources"]]
        return [f"source{i}" for i in range(p["n_sources"])]

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        from audiopipe.stages._outputs import flac_bytes

        p = ctx.params
        names = self._names(ctx)
        out = ClipBatch(rows={"stems": []})
        for cid in clip_ids:
            try:
                y, _ = ctx.ds.load_audio(cid, sr=p["sr"])
                if state is None:
                    stems = np.stack(
                        hpss_audio(y, n_fft=p["n_fft"], hop_length=p["hop_length"],
                                   kernel_size=p["kernel_size"])
                    )
                elif p["method"] == "mask":
                    out_ = state.model.separate(y, sr=p["sr"])
                    stems = np.stack([out_[n] for n in state.model.sources_])
                else:
                    stems = state.separate(y)
                peak = float(np.max(np.abs(stems))) if stems.size else 0.0
                if peak > 1.0:  # one scale for every stem of the clip: they still add up
                    stems = stems / peak
                rows = []
                for name, s in zip(names, stems, strict=True):
                    uri = ctx.write_bytes(flac_bytes(s, p["sr"]), "stems", cid, f"{name}.flac")
                    rows.append({"clip_id": cid, "stem": name, "uri": uri, "error": None})
            except Exception as err:  # noqa: BLE001  (errors are data)
                out.failed += 1
                out.rows["stems"].append(
                    {"clip_id": cid, "stem": None, "uri": None,
                     "error": f"{type(err).__name__}: {err}"}
                )
                continue
            out.rows["stems"] += rows
            if out.plot is None and any(np.any(s) for s in stems):
                out.plot = (cid, {"mix": y, **dict(zip(names, stems, strict=True))})
        return out

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        from audiopipe.stages._common import metric_rows

        t = ctx.ds.table("stems", ["clip_id", "error"]).to_pydict()
        m = {
            "n_clips": len(set(t["clip_id"])),
            "n_errors": sum(e is not None for e in t["error"]),
            "n_stems": sum(e is None for e in t["error"]),
        }
        rows = metric_rows(
            "separate", ctx.params["method"], m, evaluation="count", run_id=ctx.run_id
        )
        if ctx.params["method"] == "mask" and state is not None and state.scores:
            rows += metric_rows("separate", state.model_id, state.scores, evaluation="holdout",
                                split="mask", run_id=ctx.run_id)
        return rows

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Any]:
        cid, stems = batch.plot
        sr, title = ctx.params["sr"], f"{cid[:12]} ({ctx.params['method']})"
        return {"separate": lambda fh: _plot(fh, stems, sr, title)}

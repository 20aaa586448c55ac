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

``run(ds, params, run_id=...)`` writes stems as FLAC under ``ds.path("stems", clip_id)``
and a ``stems`` table (clip_id, stem, uri, error), plus a PNG of stem spectrograms.

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

import os
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.ndimage import median_filter

import audiopipe.features as F
from audiopipe.audio import to_mono
from audiopipe.stages._mir import single_blas_thread

__all__ = ["hpss", "hpss_audio", "nmf", "NMFSeparator", "soft_masks", "oracle_masks", "run"]


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
    kh, kp = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
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
    """HPSS of audio: ``(harmonic, percussive)`` waveforms of ``len(y)`` samples."""
    y = to_mono(y)
    D = F.stft(y, n_fft=n_fft, hop_length=hop_length)
    Dh, Dp = hpss(D, **kwargs)
    kw = {"n_fft": n_fft, "hop_length": hop_length, "length": y.size}
    return F.istft(Dh, **kw), F.istft(Dp, **kw)


def _log_shape(W: np.ndarray, n_bands: int = 40) -> np.ndarray:
    """Normalised log spectral shape of each basis (columns) on ~log-spaced bands."""
    n = W.shape[0]
    edges = np.unique(np.round(np.geomspace(1, n, n_bands + 1)).astype(int))
    bands = np.stack([W[a:b].sum(axis=0) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    L = np.log(bands + 1e-9 * bands.max() + 1e-12)
    L -= L.mean(axis=0, keepdims=True)
    return (L / (np.linalg.norm(L, axis=0, keepdims=True) + 1e-12)).T


def nmf(
    V: np.ndarray,
    n_components: int,
    *,
    W: np.ndarray | None = None,
    beta_loss: str = "kullback-leibler",
    max_iter: int = 200,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative matrix factorisation ``V ~ W @ H`` by multiplicative updates (float32).

    ``beta_loss`` "kullback-leibler" or "frobenius" (Lee & Seung 2001). Initialisation is
    uniform random scaled to ``V``'s mean, from ``random_state``: deterministic. With ``W``
    given, only the activations ``H`` are learned (supervised separation). Columns of the
    learned ``W`` are normalised to unit sum (scale moved into ``H``).

    Examples
    --------
    >>> V = np.abs(np.random.default_rng(0).standard_normal((20, 30)))
    >>> W, H = nmf(V, 4, max_iter=100)
    >>> W.shape, H.shape
    ((20, 4), (4, 30))
    """
    if beta_loss not in ("kullback-leibler", "frobenius"):
        raise ValueError(f"beta_loss must be 'kullback-leibler' or 'frobenius', got {beta_loss!r}")
    V = np.asarray(V, dtype=np.float32) + np.float32(1e-9)
    rng = np.random.default_rng(random_state)
    scale = float(np.sqrt(V.mean() / n_components))
    update_W = W is None
    if update_W:
        W = (rng.uniform(0.5, 1.5, (V.shape[0], n_components)) * scale).astype(np.float32)
    else:
        W = np.asarray(W, dtype=np.float32)
    H = (rng.uniform(0.5, 1.5, (W.shape[1], V.shape[1])) * scale).astype(np.float32)
    eps = np.float32(1e-12)
    with single_blas_thread():
        _mu_updates(V, W, H, beta_loss, max_iter, update_W, eps)
    if update_W:
        norm = np.maximum(W.sum(axis=0), eps)
        W /= norm
        H *= norm[:, None]
    return W.astype(np.float64), H.astype(np.float64)


def _mu_updates(
    V: np.ndarray,
    W: np.ndarray,
    H: np.ndarray,
    beta_loss: str,
    max_iter: int,
    update_W: bool,
    eps: np.float32,
) -> None:
    """In-place multiplicative updates of ``H`` (and ``W``)."""
    for _ in range(max_iter):
        if beta_loss == "kullback-leibler":
            R = V / np.maximum(W @ H, eps)
            H *= (W.T @ R) / np.maximum(W.sum(axis=0)[:, None], eps)
            if update_W:
                R = V / np.maximum(W @ H, eps)
                W *= (R @ H.T) / np.maximum(H.sum(axis=1)[None, :], eps)
        else:
            H *= (W.T @ V) / np.maximum(W.T @ W @ H, eps)
            if update_W:
                W *= (V @ H.T) / np.maximum(W @ (H @ H.T), eps)


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
        D = F.stft(to_mono(y), n_fft=self.n_fft, hop_length=self.hop_length)
        return D, np.abs(D).astype(np.float64)

    def _nmf(
        self, V: np.ndarray, k: int, W: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``V ~ W @ H`` with W (freq, k), H (k, frames); W fixed when given."""
        return nmf(
            V,
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
        feats = _log_shape(W)
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
        masks = soft_masks(self.source_spectrograms(V), self.mask_power)
        kw = {"n_fft": self.n_fft, "hop_length": self.hop_length, "length": y.size}
        return np.stack([F.istft(D * m, **kw) for m in masks]).astype(np.float32)


def oracle_masks(
    sources: list[np.ndarray], n_fft: int = 2048, hop_length: int = 512, power: float = 2.0
) -> np.ndarray:
    """Upper bound: soft masks from the true sources' magnitudes, applied to their mixture."""
    Ds = [F.stft(to_mono(s), n_fft=n_fft, hop_length=hop_length) for s in sources]
    D = np.sum(Ds, axis=0)
    n = to_mono(sources[0]).size
    masks = soft_masks([np.abs(d) for d in Ds], power)
    return np.stack([F.istft(D * m, n_fft=n_fft, hop_length=hop_length, length=n) for m in masks])


# --------------------------------------------------------------------------- stage adapter

STEMS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("stem", pa.string()),
        ("uri", pa.string()),
        ("error", pa.string()),
    ]
)


def _plot(path: str, stems: dict[str, np.ndarray], sr: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(stems), 1, figsize=(10, 2.2 * len(stems)), squeeze=False)
    for ax, (name, y) in zip(axes[:, 0], stems.items(), strict=True):
        S = F.amplitude_to_db(np.abs(F.stft(y)), ref=np.max)
        ax.imshow(S, origin="lower", aspect="auto", extent=(0, y.size / sr, 0, sr / 2000))
        ax.set_ylabel(f"{name}\nkHz")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _write_flac(path: str, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0:  # FLAC is integer PCM: keep the stem's shape, avoid clipping
        y = y / peak
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for a in range(0, y.size, 1 << 18):
            f.write(y[a : a + (1 << 18)])


def run(ds: Any, params: dict, *, run_id: str) -> dict:
    """Separate clips into stems (FLAC under ``stems/<clip_id>/``) and write the ``stems`` table.

    Params: ``method`` "hpss" (default; stems harmonic, percussive) | "nmf" (unsupervised;
    stems source0..) | "supervised" (needs ``label_column`` and ``sources``: label values whose
    clips are the examples of each source, e.g. ``["speech", "music"]``; clips with other
    labels, or ``targets`` values, are separated). Also ``sr`` (22050), ``n_fft``,
    ``hop_length``, ``kernel_size``, ``n_components``, ``n_sources``, ``max_iter``,
    ``random_state``, ``clips``.
    """
    from audiopipe.stages._common import (
        StageInputError,
        label_column,
        metric_rows,
        plot_path,
        write_metrics,
    )

    method = params.get("method", "hpss")
    sr = int(params.get("sr", 22050))
    n_fft = int(params.get("n_fft", 2048))
    hop = int(params.get("hop_length", 512))
    all_ids = ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()
    ids = list(params.get("clips") or all_ids)
    names: list[str]
    if method == "hpss":
        names = ["harmonic", "percussive"]
        ks = params.get("kernel_size", 31)

        def sep(y: np.ndarray) -> np.ndarray:
            return np.stack(hpss_audio(y, n_fft=n_fft, hop_length=hop, kernel_size=ks))

    elif method in ("nmf", "supervised"):
        est = NMFSeparator(
            n_components=int(params.get("n_components", 16 if method == "nmf" else 12)),
            n_sources=int(params.get("n_sources", 2)),
            max_iter=int(params.get("max_iter", 200)),
            n_fft=n_fft,
            hop_length=hop,
            random_state=int(params.get("random_state", 0)),
        )
        if method == "supervised":
            col = params.get("label_column")
            sources = list(params.get("sources") or [])
            if not col or len(sources) < 2:
                raise StageInputError(
                    f"separate (supervised) on dataset {ds.name!r} needs params label_column "
                    "and sources (at least two label values whose clips are source examples)"
                )
            labels = label_column(ds, col)
            examples = []
            for s in sources:
                ex = [c for c, v in zip(all_ids, labels, strict=True) if v == s]
                if not ex:
                    raise StageInputError(
                        f"dataset {ds.name!r}: no clip has {col}={s!r} to learn source {s!r}"
                    )
                examples.append(np.concatenate([ds.load_audio(c, sr=sr)[0] for c in ex]))
            est.fit(examples, sr=sr)
            names = [str(s) for s in sources]
            targets = params.get("targets")
            keep = {
                c
                for c, v in zip(all_ids, labels, strict=True)
                if (v in targets if targets else v not in sources)
            }
            ids = [c for c in ids if c in keep]
        else:
            names = [f"source{i}" for i in range(est.n_sources)]
        sep = est.separate
    else:
        raise StageInputError(f"separate: method must be hpss, nmf or supervised, got {method!r}")

    rows: list[dict] = []
    plotted = None
    n_err = 0
    for cid in ids:
        try:
            y, _ = ds.load_audio(cid, sr=sr)
            stems = sep(y)
            out = {}
            for name, s in zip(names, stems, strict=True):
                path = ds.path("stems", cid, f"{name}.flac")
                _write_flac(path, s, sr)
                out[name] = s
                rows.append({"clip_id": cid, "stem": name, "uri": path, "error": None})
        except Exception as err:  # noqa: BLE001  (errors are data)
            n_err += 1
            rows.append(
                {"clip_id": cid, "stem": None, "uri": None, "error": f"{type(err).__name__}: {err}"}
            )
            continue
        if plotted is None and any(np.any(s) for s in stems):
            plotted = plot_path(ds, f"separate_{run_id}")
            _plot(plotted, {"mix": y, **out}, sr, f"{cid[:12]} ({method})")
    ds.write_table("stems", pa.Table.from_pylist(rows, schema=STEMS_SCHEMA), mode="overwrite")
    metrics = {"n_clips": len(ids), "n_errors": n_err, "n_stems": len(rows) - n_err}
    write_metrics(ds, metric_rows("separate", method, metrics, split="all", run_id=run_id))
    return {"tables": ["stems"], "metrics": metrics, "plot": plotted, "stems": names}

"""Real corpora for the classify tuning and benchmark scripts, ingested once and cached.

``load("fsdd")`` ingests the 2,000 spoken digits of ``../shared/corpora/fsdd`` (8 kHz,
n_fft 512, hop 128, 20 MFCC from 40 mels + 2 deltas, 40-band log-mel, rms);
``load("esc10")`` the 400 clips of ``../shared/corpora/esc10`` with the pipeline's default
recipe at 22,050 Hz (64-band log-mel, 20 MFCC + deltas, centroid, rolloff, ZCR, rms). Both
go through the real ingest (decode, extract, Zarr + Delta), into a cache folder under the
system's temporary directory keyed by corpus and recipe, reused by later runs.

Also the plain baseline every benchmark prints next to the stage: librosa MFCC (20) per
clip, mean and std over frames, standardised, ``SVC(rbf, C=10)`` (thirty lines a user
would write without audiopipe).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPORA = ROOT.parent / "shared" / "corpora"

FSDD_RECIPE: dict[str, Any] = {
    "n_fft": 512,
    "hop_length": 128,
    "compute": {
        "mfcc": {"n_mfcc": 20, "deltas": 2, "n_mels": 40},
        "melspectrogram": {"n_mels": 40, "log": True},
        "rms": {},
    },
}
#: FSDD with the feature library's other cepstra too (``tune_classify_frames.py --cepstra``)
FSDD_CEPSTRA_RECIPE: dict[str, Any] = {
    **FSDD_RECIPE,
    "compute": {**FSDD_RECIPE["compute"], "gfcc": {}, "pncc": {}, "bfcc": {}, "lpcc": {}},
}
SETS = {
    "fsdd": ("fsdd/recordings", "fsdd/labels.csv", None, "path", 8000, FSDD_RECIPE),
    "fsdd_cepstra": ("fsdd/recordings", "fsdd/labels.csv", None, "path", 8000,
                     FSDD_CEPSTRA_RECIPE),
    "esc10": ("esc10/audio", "esc10/esc10.csv", "esc10/audio", "filename", 22050, None),
}


def write_results(name: str, res: Any) -> Path:
    """Write ``res`` as indented JSON to ``benchmarks/results/<name>`` (the folder made if a
    fresh checkout lacks it); the path written."""
    dest = ROOT / "benchmarks" / "results" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(res, indent=2))
    return dest


def corpora() -> Path:
    if not CORPORA.is_dir():
        raise SystemExit(f"corpora not found at {CORPORA}")
    return CORPORA


def load(name: str) -> Any:
    """The ingested dataset ``name`` (``fsdd``, ``fsdd_cepstra`` or ``esc10``), from the cache
    when present."""
    import audiopipe
    from tests.stages._ingest import ingest

    src, labels, root, on, sr, recipe = SETS[name]
    key = hashlib.sha1(json.dumps([name, sr, recipe], sort_keys=True).encode()).hexdigest()[:8]
    out = Path(tempfile.gettempdir()) / f"audiopipe-bench-{name}-{key}"
    done = out / "DONE"
    if done.exists():
        return audiopipe.open_dataset(str(out), name)
    c = corpora()
    ds = ingest(out, name, str(c / src), c / labels, sr, recipe, on=on,
                root=str(c / root) if root else None)
    done.write_text("ok")
    return ds


def clips_frame(ds: Any) -> Any:
    """The clips table as pandas (clip ids in dataset order, label columns)."""
    return ds.table("clips").to_pandas()


def baseline_features(uris: list[str], sr: int) -> np.ndarray:
    """librosa MFCC (20) mean and std per clip: the plain baseline's features."""
    import librosa

    rows = []
    for u in uris:
        y, _ = librosa.load(u, sr=sr, mono=True)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
        rows.append(np.r_[m.mean(1), m.std(1)])
    return np.asarray(rows)


def baseline_predict(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray) -> np.ndarray:
    """The plain baseline: standardise, ``SVC(rbf, C=10)``."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=10.0)).fit(X_tr, y_tr).predict(X_te)

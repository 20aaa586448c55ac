"""An on-disk cache of the feature recipe check's verdicts, so commands start quickly.

Validating ``datasets.yaml`` checks each dataset's feature recipe semantically: it imports
:mod:`audiopipe.features` (and scipy, ~0.3-0.4 s) and runs the recipe once on a test signal
(~0.1 s). Every command pays that before any work, though the recipe rarely changes. This
module keeps each verdict (the normalised recipe, or the problem lines) in a small JSON file
named by a hash of everything the verdict depends on:

- the recipe as written (key order included: it orders the outputs) and the sample rate;
- whether the test-signal trial ran;
- the code of :mod:`audiopipe.features` (every ``.py`` file's path and bytes, so any edit,
  including a :data:`~audiopipe.features.FEATURES_VERSION` bump, is a new key), and the
  numpy and scipy installed (their ``version.py``).

A verdict is never reused after any of these changes: the key is the hash of them all, and a
file read back must carry the same key. The cache lives in ``$AUDIOPIPE_CACHE_DIR`` (empty:
no cache), else ``$XDG_CACHE_HOME/audiopipe``, else ``~/.cache/audiopipe``. It is only an
accelerator: a file that cannot be read or parsed is a miss, a folder that cannot be written
is ignored, and a verdict is written to a temporary file then renamed, so processes that
check the same recipe at once each read a whole file or none.

Examples
--------
>>> import tempfile, os
>>> saved = os.environ.get("AUDIOPIPE_CACHE_DIR")
>>> os.environ["AUDIOPIPE_CACHE_DIR"] = tempfile.mkdtemp()
>>> key = verdict_key({"compute": {"rms": {}}}, 22050, trial=True)
>>> lookup(key) is None
True
>>> store(key, {"recipe": {"sr": 22050}, "problems": []})
>>> lookup(key)["problems"]
[]
>>> if saved is None: del os.environ["AUDIOPIPE_CACHE_DIR"]
... else: os.environ["AUDIOPIPE_CACHE_DIR"] = saved
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "features_fingerprint", "lookup", "store", "verdict_key"]

#: bump when the stored verdict's shape or meaning changes
FORMAT = 1
FEATURES_DIR = Path(__file__).resolve().parent / "features"


def cache_dir() -> Path | None:
    """Where verdicts are kept; None when ``AUDIOPIPE_CACHE_DIR`` is set empty (no cache)."""
    env = os.environ.get("AUDIOPIPE_CACHE_DIR")
    if env is not None:
        return Path(env) / "recipe-checks" if env else None
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "audiopipe" / "recipe-checks"


def features_fingerprint(folder: str | os.PathLike[str] = FEATURES_DIR) -> str:
    """Hash of every ``.py`` file under ``folder`` (relative path and bytes), and of the
    installed numpy and scipy versions.

    Examples
    --------
    >>> len(features_fingerprint())
    32
    """
    return _fingerprint(str(folder))


@functools.lru_cache(maxsize=8)
def _fingerprint(folder: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    root = Path(folder)
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    for pkg in ("numpy", "scipy"):
        h.update(pkg.encode() + b"\0" + _version_bytes(pkg) + b"\0")
    return h.hexdigest()


def _version_bytes(pkg: str) -> bytes:
    """The package's ``version.py`` (both numpy and scipy write their version there), found
    without importing the package; else its location's size and modification time."""
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return b"absent"
    for loc in spec.submodule_search_locations:
        try:
            return (Path(loc) / "version.py").read_bytes()
        except OSError:
            continue
    st = os.stat(spec.origin or "")
    return f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}".encode()


def verdict_key(features: Any, sr: int, *, trial: bool) -> str | None:
    """The cache key of a recipe check; None when the recipe is not plain JSON data."""
    try:
        fp = features_fingerprint(FEATURES_DIR)
        text = json.dumps([FORMAT, features, sr, trial, fp], allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def lookup(key: str | None) -> dict[str, Any] | None:
    """The stored verdict of ``key``, or None (no cache, missing, unreadable, not ours)."""
    folder = cache_dir()
    if key is None or folder is None:
        return None
    try:
        data = json.loads((folder / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    verdict = data.get("verdict")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("problems"), list):
        return None
    return verdict


def store(key: str | None, verdict: dict[str, Any]) -> None:
    """Keep ``verdict`` under ``key``: a temporary file renamed into place; errors ignored."""
    folder = cache_dir()
    if key is None or folder is None:
        return
    import tempfile  # (only on a miss: its imports cost a hit ~0.01 s)

    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "verdict": verdict}, f)
        os.replace(tmp, folder / f"{key}.json")
        tmp = None
    except (OSError, TypeError, ValueError):
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass

"""Heart-sound references: CirCor-style state intervals and PASCAL-style S1/S2 points.

- Interval references (CirCor ``.tsv``): one line per interval, ``start_s end_s state``
  (tab or space separated, no header), state ``1`` S1, ``2`` systole, ``3`` S2,
  ``4`` diastole, ``0`` unannotated. :func:`read_interval_reference` returns the annotated
  intervals as ``(start_s, end_s, state_name)``.
- Point references (PASCAL ``s1s2_locations.csv``): a CSV with a recording column
  (``file`` or ``path``), a sound column (``sound`` or ``label``: S1 / S2) and ``time_s``
  (or ``sample`` with a ``sample_rate`` argument). :func:`read_point_references` returns,
  per recording, the times of S1 and S2. The points mark the sounds' centres.
- :func:`points_to_intervals` turns points into training intervals: each S1 (S2) spans
  ``s1_s`` (``s2_s``) seconds around its point; the gap after an S1 is systole and after
  an S2 diastole, when the next point is the other sound and the gap is plausible (within
  ``max_ratio`` of the median gap of that kind); everything else stays unannotated, and
  ``guard_s`` on each side of every boundary too.

Examples
--------
>>> import io
>>> tsv = io.StringIO("0\\t1.0\\t0\\n1.0\\t1.1\\t1\\n1.1\\t1.4\\t2\\n1.4\\t1.5\\t3\\n1.5\\t2.0\\t4\\n")
>>> read_interval_reference(tsv)[:2]
[(1.0, 1.1, 'S1'), (1.1, 1.4, 'systole')]
>>> iv = points_to_intervals([1.0, 1.3], ["S1", "S2"], guard_s=0.0)
>>> [(round(s, 2), round(e, 2), k) for s, e, k in iv]
[(0.94, 1.06, 'S1'), (1.06, 1.25, 'systole'), (1.25, 1.35, 'S2')]
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import IO

import numpy as np

__all__ = [
    "STATES",
    "read_references",
    "read_interval_reference",
    "read_point_references",
    "points_to_intervals",
    "intervals_to_frames",
    "sound_duration_stats",
]

STATES = ("S1", "systole", "S2", "diastole")
_CODES = {1: "S1", 2: "systole", 3: "S2", 4: "diastole"}

Interval = tuple[float, float, str]


def read_interval_reference(source: str | os.PathLike | IO[str]) -> list[Interval]:
    """Annotated ``(start_s, end_s, state)`` intervals of a CirCor-style ``.tsv`` file.

    Lines of state 0 (unannotated) are dropped; a line that is not three numbers or
    a state outside 0-4 raises ``ValueError`` naming the line.
    """
    if hasattr(source, "read"):
        text, name = source.read(), "<stream>"
    else:
        name = os.fspath(source)
        with open(name, encoding="utf-8") as fh:
            text = fh.read()
    out: list[Interval] = []
    for n, line in enumerate(io.StringIO(text), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 3:
                raise ValueError
            s, e, code = float(parts[0]), float(parts[1]), int(float(parts[2]))
        except ValueError:
            raise ValueError(
                f"{name}:{n}: expected 'start_s end_s state', got {line.strip()!r}"
            ) from None
        if code not in (0, 1, 2, 3, 4):
            raise ValueError(f"{name}:{n}: state must be 0-4 (0 = unannotated), got {code}")
        if e < s:
            raise ValueError(f"{name}:{n}: interval ends ({e}) before it starts ({s})")
        if code:
            out.append((s, e, _CODES[code]))
    return out


def read_point_references(
    source: str | os.PathLike | IO[str], sample_rate: float | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Per recording, sorted ``{"S1": times, "S2": times}`` from a PASCAL-style CSV.

    Columns: ``file`` or ``path``; ``sound`` or ``label`` (S1/S2, other labels are
    ignored); ``time_s``, or ``sample`` when ``sample_rate`` is given.
    """
    if hasattr(source, "read"):
        rows, name = list(csv.DictReader(source)), "<stream>"
    else:
        name = os.fspath(source)
        with open(name, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    cols = set(rows[0])
    rec = next((c for c in ("file", "path") if c in cols), None)
    lab = next((c for c in ("sound", "label") if c in cols), None)
    if rec is None or lab is None:
        raise ValueError(
            f"{name}: needs a recording column (file or path) and a sound column (sound or "
            f"label); has {sorted(cols)}"
        )
    if "time_s" not in cols and ("sample" not in cols or sample_rate is None):
        raise ValueError(f"{name}: needs column time_s (or sample with sample_rate); has {sorted(cols)}")
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        k = str(r[lab]).strip().upper()
        if k not in ("S1", "S2"):
            continue
        t = float(r["time_s"]) if "time_s" in cols else float(r["sample"]) / float(sample_rate)
        out.setdefault(str(r[rec]), {"S1": [], "S2": []})[k].append(t)
    return {f: {k: np.sort(np.asarray(v, float)) for k, v in d.items()} for f, d in out.items()}


def points_to_intervals(
    times: Sequence[float],
    sounds: Sequence[str],
    *,
    s1_s: float = 0.122,
    s2_s: float = 0.094,
    max_ratio: float = 1.5,
    guard_s: float = 0.02,
) -> list[Interval]:
    """Training intervals around S1/S2 centre points (see module doc).

    ``guard_s`` leaves that much unannotated on each side of every boundary (the points
    say where a sound is, not exactly where it starts and ends; 20 ms was chosen by
    ``benchmarks/tune_heart.py``).
    """
    t = np.asarray(times, dtype=np.float64)
    lab = np.asarray([str(s).upper() for s in sounds])
    order = np.argsort(t, kind="stable")
    t, lab = t[order], lab[order]
    half = {"S1": s1_s / 2, "S2": s2_s / 2}
    out: list[Interval] = []
    gaps: dict[str, list[float]] = {"S1": [], "S2": []}
    for i in range(len(t) - 1):
        if {lab[i], lab[i + 1]} == {"S1", "S2"}:
            gaps[lab[i]].append(t[i + 1] - t[i])
    med = {k: float(np.median(v)) if v else np.inf for k, v in gaps.items()}
    for i in range(len(t)):
        if lab[i] not in half:
            continue
        s, e = t[i] - half[lab[i]], t[i] + half[lab[i]]
        if e - s > 2 * guard_s:
            out.append((max(0.0, float(s + guard_s)), float(e - guard_s), str(lab[i])))
        if i + 1 < len(t) and {lab[i], lab[i + 1]} == {"S1", "S2"}:
            nxt = t[i + 1] - half[lab[i + 1]]
            if nxt - e > 2 * guard_s and t[i + 1] - t[i] <= max_ratio * med[lab[i]]:
                gap = "systole" if lab[i] == "S1" else "diastole"
                out.append((float(e + guard_s), float(nxt - guard_s), gap))
    return out


def read_references(path: str | os.PathLike, sample_rate: float | None = None) -> dict[str, dict]:
    """References of many recordings, keyed by recording name.

    ``path`` is a folder of CirCor-style ``.tsv`` files (key: the file name without
    ``.tsv``, e.g. ``85343_AV``), one such ``.tsv`` file, or a point CSV (key: its
    ``file``/``path`` column). Each value has ``intervals`` (training intervals: the
    annotated intervals, or intervals made from the points by :func:`points_to_intervals`)
    and ``points`` (S1/S2 centre times: the points, or the centres of the S1/S2 intervals)
    and ``kind`` (``"intervals"`` or ``"points"``).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".tsv"))
        if not files:
            raise ValueError(f"{path}: no .tsv reference files in this folder")
        return {f[:-4]: _from_intervals(read_interval_reference(os.path.join(path, f))) for f in files}
    if path.endswith(".tsv"):
        return {os.path.basename(path)[:-4]: _from_intervals(read_interval_reference(path))}
    out = {}
    for name, p in read_point_references(path, sample_rate).items():
        t = np.r_[p["S1"], p["S2"]]
        lab = ["S1"] * len(p["S1"]) + ["S2"] * len(p["S2"])
        out[name] = {"kind": "points", "intervals": points_to_intervals(t, lab), "points": p}
    return out


def _from_intervals(iv: list[Interval]) -> dict:
    points = {
        k: np.array(sorted((s + e) / 2 for s, e, lab in iv if lab == k)) for k in ("S1", "S2")
    }
    return {"kind": "intervals", "intervals": iv, "points": points}


def intervals_to_frames(intervals: Sequence[Interval], n_frames: int, rate: float) -> np.ndarray:
    """State index (0-3, :data:`STATES` order) of frames centred at ``(i + 0.5) / rate``;
    -1 where no interval covers the frame."""
    lab = np.full(n_frames, -1, dtype=np.int64)
    tc = (np.arange(n_frames) + 0.5) / rate
    for s, e, state in intervals:
        lab[(tc >= s) & (tc < e)] = STATES.index(state)
    return lab


def sound_duration_stats(references: Sequence[Sequence[tuple]], default: np.ndarray) -> np.ndarray:
    """``[[S1 median, S1 sd], [S2 median, S2 sd]]`` (s) of the annotated sounds.

    Only sounds annotated with both neighbours touching them count (an interval
    reference's complete cycle; intervals made from points with a guard do not). A sound
    with under 5 such examples keeps its row of ``default``; a spread is at least half
    the default's.
    """
    out = np.array(default, dtype=float)
    d: dict[str, list[float]] = {"S1": [], "S2": []}
    for ref in references:
        iv = sorted((float(s), float(e), str(k)) for s, e, k, *_ in ref)
        for i in range(1, len(iv) - 1):
            s, e, k = iv[i]
            if k in d and abs(iv[i - 1][1] - s) < 1e-6 and abs(iv[i + 1][0] - e) < 1e-6:
                d[k].append(e - s)
    for row, state in enumerate(("S1", "S2")):
        x = np.array(d[state])
        if len(x) >= 5:
            out[row] = [np.median(x), max(float(np.std(x)), 0.5 * out[row, 1])]
    return out

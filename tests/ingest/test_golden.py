"""A corpus ingested now gives the tables and frames it gave before the ingest restructuring.

``tests/ingest/golden.json`` was written by the ingest code *before* ``pipeline.py`` was
split into ``audiopipe/ingest/`` (and before the decode path was made faster). The test builds
the same corpus deterministically (WAV/FLAC/MP3, mono and stereo, 22.05/44.1/48 kHz, labels
with a column that collides with a fixed one, a truncated file and a text file posing as a
WAV), ingests it in process, then changes it (one file touched, one rewritten, one removed,
one added) and ingests again. After each run it compares a compact summary of every table
and of the frames with the golden one:

- per table: row count, column names and Arrow types (a dropped, renamed or retyped column
  fails), and the sorted keys;
- per clip: the ``clips`` row (clip id checked against the file's bytes, labels, split,
  formats, rates, frame counts), its ``features`` statistics and its ``frames_index`` row
  (each part's clips must tile its rows exactly; which clips share a part is shard planning,
  which changed on purpose: balanced shards, so it is not compared, nor the shard count);
- per clip and feature: the frame count and the mean/std of all frames, of the first and of
  the last frame (misaligned frames or a shifted index change these).

Floats are compared with a relative tolerance (never the last bits). Regenerate only for an
intended change of outputs: ``AUDIOPIPE_WRITE_GOLDEN=1 pytest tests/ingest/test_golden.py``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import audiopipe
from audiopipe.store.frames import open_part
from tests.audio_fixtures import write
from tests.conftest import write_config

GOLDEN = Path(__file__).with_name("golden.json")
RTOL = 2e-3  # relative to the value, plus ATOL_SCALE x the largest value of the same quantity
ATOL_SCALE = 1e-4


def _signal(seed: int, dur: float, sr: int, channels: int) -> np.ndarray:
    """A chirp-like tone with noise and an envelope; deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * sr)) / sr
    f0 = 150 * 2 ** rng.uniform(0, 3)
    y = 0.4 * np.sin(2 * np.pi * (f0 + 40 * t) * t) + 0.03 * rng.standard_normal(t.size)
    y *= 0.4 + 0.6 * np.sin(np.pi * t / dur) ** 2
    if channels == 1:
        return y.astype(np.float32)
    return np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def build_corpus(folder: Path) -> None:
    """The golden corpus: 6 good files in 3 formats, 2 broken ones, a labels file."""
    spec = [  # name, seed, seconds, rate, channels, format, subtype
        ("a_mono.wav", 1, 1.3, 22050, 1, "WAV", "PCM_16"),
        ("b_stereo.flac", 2, 2.1, 44100, 2, "FLAC", "PCM_16"),
        ("c_stereo.mp3", 3, 1.7, 44100, 2, "MP3", "MPEG_LAYER_III"),
        ("d_mono48.flac", 4, 0.9, 48000, 1, "FLAC", "PCM_24"),
        ("e_float.wav", 5, 1.1, 16000, 1, "WAV", "FLOAT"),
        ("f_three.wav", 6, 0.8, 22050, 3, "WAV", "PCM_16"),
    ]
    for name, seed, dur, sr, ch, fmt, sub in spec:
        write(folder / name, _signal(seed, dur, sr, ch), sr, fmt, sub)
    full = folder / "_full.flac"
    write(full, _signal(7, 2.0, 22050, 1), 22050, "FLAC", "PCM_16")
    data = full.read_bytes()
    full.unlink()
    (folder / "g_truncated.flac").write_bytes(data[: len(data) // 2])
    (folder / "h_text.wav").write_text("not audio at all\n" * 40)
    (folder.parent / "labels.csv").write_text(
        "path,genre,split,format\n"
        "a_mono.wav,rock,train,x\n"
        "b_stereo.flac,jazz,,y\n"
        "c_stereo.mp3,rock,test,\n"
        "e_float.wav,,valid,z\n"
    )


def change_corpus(folder: Path) -> None:
    """Touch one file (same bytes), rewrite one, remove one, add one."""
    os.utime(folder / "a_mono.wav", (1e9, 1e9))
    write(folder / "d_mono48.flac", _signal(40, 1.2, 48000, 1), 48000, "FLAC", "PCM_24")
    (folder / "f_three.wav").unlink()
    write(folder / "i_new.wav", _signal(9, 1.0, 32000, 2), 32000, "WAV", "PCM_16")


def _num(x: Any) -> Any:
    """Round to 5 significant digits (the comparison still uses a tolerance)."""
    if x is None or isinstance(x, str | bool):
        return x
    if isinstance(x, int | np.integer):
        return int(x)
    x = float(x)
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(f"{x:.5g}")


def _split_by_uri(uri: str) -> str:
    """The documented default split: 80/10/10 train/valid/test by a hash of the uri."""
    h = int(hashlib.blake2b(uri.encode(), digest_size=4).hexdigest(), 16) % 100
    return "train" if h < 80 else ("valid" if h < 90 else "test")


def summarize(out: Path, exact: bool = True) -> dict[str, Any]:
    """The compact, machine-independent summary of a published dataset (``exact``: every
    clip was ingested by one run, so each frames part is tiled by its clips)."""
    ds = audiopipe.open_dataset(str(out), "g")
    summary: dict[str, Any] = {"tables": {}}
    tables = {n: ds.table(n) for n in ("clips", "features", "frames_index", "errors", "runs")}
    for name, t in tables.items():
        summary["tables"][name] = {
            "rows": t.num_rows,
            "columns": [[f.name, str(f.type)] for f in t.schema],
        }
    clips = tables["clips"].to_pylist()
    name_of = {r["clip_id"]: Path(r["uri"]).name for r in clips}
    for r in clips:  # identity: the content hash is the BLAKE2b-128 of the bytes, the clip id
        h = hashlib.blake2b(Path(r["uri"]).read_bytes(), digest_size=16).hexdigest()
        assert r["content_hash"] == h, r["uri"]  # hashes it with the uri (one id per file)
        per_file = hashlib.blake2b(f"{h}\0{r['uri']}".encode(), digest_size=16).hexdigest()
        assert r["clip_id"] == per_file, r["uri"]
    skip = {"clip_id", "content_hash", "uri", "mtime", "run_id", "recipe_hash"}
    for r in clips:  # an unlabelled clip's split depends on its uri, which has tmp_path in it
        if not r.get("label_split") and r["split"] == _split_by_uri(r["uri"]):
            r["split"] = "<by uri hash>"
    summary["clips"] = {
        Path(r["uri"]).name: {k: _num(v) for k, v in sorted(r.items()) if k not in skip}
        for r in clips
    }
    feats: dict[str, Any] = {}
    for r in tables["features"].to_pylist():
        row = {}
        for k, v in sorted(r.items()):
            if k in skip:
                continue
            if isinstance(v, list):  # vectors: length and mean (the per-dim values add little)
                row[k] = [len(v), _num(np.mean(np.asarray(v, np.float64)))]
            else:
                row[k] = _num(v)
        feats[name_of[r["clip_id"]]] = row
    summary["features"] = dict(sorted(feats.items()))
    index = tables["frames_index"].to_pylist()
    summary["frames_index"] = dict(
        sorted(
            (name_of[r["clip_id"]], {k: _num(r[k]) for k in ("n_frames", "sr", "hop_length")})
            for r in index
        )
    )
    # which clips share a part depends on shard planning (not an output): check instead that
    # each part's clips tile it, rows 0..n without gap or overlap, and that the part's arrays
    # hold exactly those rows
    parts: dict[str, list[dict[str, Any]]] = {}
    for r in index:
        parts.setdefault(r["part"], []).append(r)
    for part, rows in parts.items():
        rows.sort(key=lambda r: r["start"])
        assert all(r["stop"] - r["start"] == r["n_frames"] for r in rows), part
        g = open_part(ds.location.frames_uri(part))
        (n_rows,) = {g[k].shape[0] for k in g.array_keys()}
        if exact:  # every clip of the part is still current: they tile it
            assert rows[0]["start"] == 0 and rows[-1]["stop"] == n_rows, part
            assert all(a["stop"] == b["start"] for a, b in zip(rows, rows[1:], strict=False))
        else:  # clips of an earlier run that were changed or removed since leave gaps
            assert all(a["stop"] <= b["start"] for a, b in zip(rows, rows[1:], strict=False))
            assert rows[0]["start"] >= 0 and rows[-1]["stop"] <= n_rows, part
    summary["errors"] = sorted(
        [Path(r["uri"]).name, r["step"], r["error_type"], r["clip_id"] is None]
        for r in tables["errors"].to_pylist()
    )
    runs = sorted(tables["runs"].to_pylist(), key=lambda r: r["finished"])
    counts = (
        "kind", "status", "files_found", "files_new", "files_changed", "files_removed",
        "files_processed", "files_failed", "clips_total", "audio_seconds", "message",
    )  # fmt: skip (the shard count depends on planning, tested in test_plan.py)
    summary["runs"] = [{k: _num(r[k]) for k in counts} for r in runs]
    frames: dict[str, Any] = {}
    for cid, name in sorted(name_of.items(), key=lambda kv: kv[1]):
        per = {}
        for feat in ds.features_available():
            x = ds.frames(cid, feat).astype(np.float64)
            per[feat] = [
                list(x.shape),
                _num(x.mean()),
                _num(x.std()),
                _num(x[0].mean()),
                _num(x[-1].mean()),
            ]
        frames[name] = per
    summary["frames"] = frames
    return summary


def _flatten(x: Any, path: str = "") -> dict[str, Any]:
    """``{"a/b[0]": leaf}`` for nested dicts and lists (a list's length is a leaf too)."""
    if isinstance(x, dict):
        out: dict[str, Any] = {f"{path}{{}}": sorted(x)}
        for k, v in x.items():
            out.update(_flatten(v, f"{path}/{k}" if path else str(k)))
        return out
    if isinstance(x, list):
        out = {f"{path}#": len(x)}
        for i, v in enumerate(x):
            out.update(_flatten(v, f"{path}[{i}]"))
        return out
    return {path: x}


_STAT = re.compile(r"_(mean|std|min|max)$")


def _group(path: str) -> str:
    """Leaves whose magnitudes are alike share an absolute tolerance: one feature's statistics
    over every clip (``features/*/mfcc_mean``, ``_std``...), one feature's frame summaries."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "features":
        return "features:" + _STAT.sub("", parts[3].split("[")[0])
    if len(parts) >= 4 and parts[1] == "frames":
        return "frames:" + parts[3].split("[")[0]
    return path


def _close(a: Any, b: Any, scale: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= RTOL * max(abs(a), abs(b)) + ATOL_SCALE * scale
    return a == b


def compare(got: Any, want: Any) -> list[str]:
    """Differences between two summaries, as readable lines ([] when equal within tolerance)."""
    g, w = _flatten(got), _flatten(want)
    scale: dict[str, float] = {}
    for path, v in w.items():
        if isinstance(v, float) and math.isfinite(v):
            key = _group(path)
            scale[key] = max(scale.get(key, 0.0), abs(v))
    out = [f"{p}: missing" for p in sorted(set(w) - set(g))]
    out += [f"{p}: unexpected {g[p]!r}" for p in sorted(set(g) - set(w))]
    for p in sorted(set(w) & set(g)):
        if not _close(g[p], w[p], scale.get(_group(p), 0.0)):
            out.append(f"{p}: expected {w[p]!r}, got {g[p]!r}")
    return out


def _ingest(cfg: Path, read_ahead: bool) -> None:
    from audiopipe.config import load_config
    from audiopipe.ingest import extract_shard, plan_ingest, publish

    plan = plan_ingest(load_config(cfg), "g", read_ahead=read_ahead)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])


def ingest_golden_corpus(tmp_path: Path, read_ahead: bool = False) -> dict[str, Any]:
    corpus = tmp_path / "corpus"
    build_corpus(corpus)
    cfg = write_config(
        tmp_path,
        {
            "g": {
                "source": str(corpus),
                "sample_rate": 22050,
                "labels": {"path": str(tmp_path / "labels.csv"), "on": "path",
                           "root": str(corpus)},
            }
        },
    )  # fmt: skip
    out = tmp_path / "out"
    _ingest(cfg, read_ahead)
    first = summarize(out)
    change_corpus(corpus)
    _ingest(cfg, read_ahead)
    second = summarize(out, exact=False)
    return {"first_run": first, "after_changes": second}


@pytest.mark.parametrize("read_ahead", [False, True], ids=["one-thread", "read-ahead"])
def test_ingest_outputs_match_the_golden_summary(tmp_path, read_ahead):
    got = ingest_golden_corpus(tmp_path, read_ahead)
    if os.environ.get("AUDIOPIPE_WRITE_GOLDEN") and not read_ahead:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    diffs = compare(json.loads(json.dumps(got)), want)
    assert diffs == [], "\n".join(diffs[:40])


def test_the_comparison_catches_a_dropped_column_and_shifted_frames():
    """The check itself can fail: a missing column, a moved frame slot, a changed mean."""
    want = json.loads(GOLDEN.read_text())
    assert compare(want, want) == []
    run = want["first_run"]
    dropped = json.loads(json.dumps(want))
    dropped["first_run"]["tables"]["features"]["columns"].pop()
    assert compare(dropped, want)
    shifted = json.loads(json.dumps(want))
    name = sorted(run["frames_index"])[1]
    shifted["first_run"]["frames_index"][name]["n_frames"] += 1
    assert compare(shifted, want)
    moved = json.loads(json.dumps(want))
    feat = sorted(run["frames"][name])[0]
    moved["first_run"]["frames"][name][feat][3] *= 1.01  # the first frame's mean, 1% off
    assert compare(moved, want)
    # ... while float noise well inside the tolerance passes
    noisy = json.loads(json.dumps(want))
    noisy["first_run"]["frames"][name][feat][1] *= 1 + 1e-5
    assert compare(noisy, want) == []


def test_golden_corpus_files_are_what_the_summary_expects(tmp_path):
    """The generated corpus decodes as declared (rates, channels), so the golden stays valid."""
    build_corpus(tmp_path / "c")
    info = {p.name: sf.info(p) for p in (tmp_path / "c").glob("*.*") if p.name[0] in "abcdef"}
    assert {n: (i.samplerate, i.channels) for n, i in info.items()} == {
        "a_mono.wav": (22050, 1),
        "b_stereo.flac": (44100, 2),
        "c_stereo.mp3": (44100, 2),
        "d_mono48.flac": (48000, 1),
        "e_float.wav": (16000, 1),
        "f_three.wav": (22050, 3),
    }
    shutil.rmtree(tmp_path / "c")

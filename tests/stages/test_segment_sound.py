"""segment: periodic mode's per-clip errors (review 12 finding 2)."""

from __future__ import annotations

import audiopipe
from audiopipe.stages import run_stage
from audiopipe.stages.segment.periodic import synthetic_pcg

SR = 4000


def test_periodic_mode_records_an_unreadable_clip_and_segments_the_others(tmp_path):
    """Periodic mode caught only NoSound: one clip whose source can no longer be read failed
    the whole run and no clip got segments. It is an errors row; the others are segmented."""
    from tests.stages.mir_data import build_dataset

    files = {f"p{i}.wav": synthetic_pcg(duration=8.0, bpm=70 + 10 * i, seed=i)[:2]
             for i in range(3)}
    ds = build_dataset(tmp_path, files, sample_rate=SR)
    cid = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"]
           for r in ds.table("clips", ["clip_id", "uri"]).to_pylist()}
    (tmp_path / "corpus" / "p1.wav").write_bytes(b"RIFF0000WAVEjunk")  # damaged since
    rep = run_stage(ds, "segment", {"mode": "periodic"})
    assert rep["clips_failed"] == 1
    seg = ds.table("segments").to_pandas()
    assert set(seg.clip_id) == {cid["p0.wav"], cid["p2.wav"]}
    assert {"S1", "S2"} <= set(seg.label)
    errs = [e for e in audiopipe.open_dataset(ds.location.root, "d").table("errors").to_pylist()
            if e["run_id"] == rep["run_id"]]
    assert [(e["clip_id"], e["step"]) for e in errs] == [(cid["p1.wav"], "segment")]
    assert errs[0]["error_type"] == "decode", errs[0]

"""Incremental in-process ingestion: backlogs catch up batch by batch; touched files cost a hash."""

from __future__ import annotations

import numpy as np


def _ingest_in_process(cfg_path) -> dict:
    from tests.conftest import ingest_in_process

    return ingest_in_process(cfg_path, "t")


def test_max_files_per_run_catches_up_batch_by_batch(tmp_path):
    """A backlog of 7 files with a cap of 3: runs of 3, 3, 1, 0; a change waits its turn."""
    import audiopipe
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    corpus = tmp_path / "corpus"
    for i in range(7):
        write(corpus / f"tone_{i}.wav", sine(f=200 + 50 * i, dur=0.3), 22050)
    cfg = write_config(
        tmp_path,
        {
            "t": {
                "source": str(corpus),
                "sample_rate": 22050,
                "features": {"n_fft": 512, "hop_length": 256, "compute": {"rms": {}}},
                "max_files_per_run": 3,
            }
        },
    )
    rows = [_ingest_in_process(cfg) for _ in range(4)]
    assert [r["files_processed"] for r in rows] == [3, 3, 1, 0]
    assert "4 deferred to later runs" in rows[0]["message"]
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    assert sorted(clips.uri) == sorted(str(p) for p in corpus.glob("*.wav"))
    assert clips.clip_id.is_unique

    # tone_0 changes and 4 new files arrive: the change is processed in uri order with them,
    # replacing its old row (no gap, no duplicate)
    old_id = clips.set_index("uri").clip_id[str(corpus / "tone_0.wav")]
    for i in range(7, 11):
        write(corpus / f"tone_{i}.wav", sine(f=200 + 50 * i, dur=0.3), 22050)
    write(corpus / "tone_0.wav", sine(f=1000, dur=0.4), 22050)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 3  # uri order: tone_0 (changed), tone_10, tone_7
    clips = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    assert clips.uri.is_unique and len(clips) == 9
    assert clips.set_index("uri").clip_id[str(corpus / "tone_0.wav")] != old_id
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 2
    feats = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("features").to_pandas()
    assert len(feats) == 11 and feats.clip_id.is_unique

    # a changed file left for a later run keeps its old row and features until then
    before = audiopipe.open_dataset(str(tmp_path / "out"), "t").table("clips").to_pandas()
    old9 = before.set_index("uri").clip_id[str(corpus / "tone_9.wav")]
    for i in range(3):
        write(corpus / f"a_{i}.wav", sine(f=300 + 40 * i, dur=0.3), 22050)
    write(corpus / "tone_9.wav", sine(f=1500, dur=0.4), 22050)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 3 and "1 deferred" in r["message"]
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    assert clips.clip_id[str(corpus / "tone_9.wav")] == old9
    assert old9 in set(ds.table("features").to_pandas().clip_id)
    r = _ingest_in_process(cfg)
    assert r["files_processed"] == 1
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    new9 = clips.clip_id[str(corpus / "tone_9.wav")]
    feats = set(ds.table("features").to_pandas().clip_id)
    assert new9 != old9 and new9 in feats and old9 not in feats and len(clips) == 14


def test_touched_or_copied_over_file_keeps_its_features_without_decoding(tmp_path, monkeypatch):
    """A changed mtime with the same bytes (touch, cp without -p, re-download) costs a hash."""
    import os
    import shutil

    import audiopipe
    from tests.audio_fixtures import sine, write
    from tests.conftest import write_config

    corpus = tmp_path / "corpus"
    for i in range(3):
        write(corpus / f"tone_{i}.wav", sine(f=200 + 150 * i, dur=0.4), 22050)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,kind\ntone_0.wav,a\ntone_1.wav,b\ntone_2.wav,c\n")
    cfg = write_config(
        tmp_path,
        {
            "t": {
                "source": str(corpus),
                "labels": {"path": str(labels), "on": "path", "root": str(corpus)},
                "sample_rate": 22050,
                "features": {"n_fft": 512, "hop_length": 256, "compute": {"mfcc": {}}},
            }
        },
    )
    _ingest_in_process(cfg)
    out = str(tmp_path / "out")
    before = audiopipe.open_dataset(out, "t")
    clips0 = before.table("clips").to_pandas().set_index("uri")
    feats0 = before.table("features").to_pandas().set_index("clip_id").sort_index()
    frames0 = {c: before.frames(c, "mfcc") for c in clips0.clip_id}

    t0 = corpus / "tone_0.wav"
    os.utime(t0, (1e9, 1e9))  # touched
    copy = tmp_path / "copy.wav"
    shutil.copyfile(corpus / "tone_1.wav", copy)
    shutil.copyfile(copy, corpus / "tone_1.wav")  # copied over itself: new mtime, same bytes
    write(corpus / "tone_2.wav", sine(f=900, dur=0.4), 22050)  # really changed
    labels.write_text("path,kind\ntone_0.wav,A\ntone_1.wav,b\ntone_2.wav,c\n")
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest_in_process(cfg)
    decoded = (corpus / ".decoded.log").read_text().split()
    assert [os.path.basename(u) for u in decoded[1::2]] == ["tone_2.wav"], "only tone_2 decoded"
    assert row["files_changed"] == 3 and row["files_processed"] == 3
    assert "2 changed files had the same bytes" in row["message"]

    ds = audiopipe.open_dataset(out, "t")
    clips = ds.table("clips").to_pandas().set_index("uri")
    assert len(clips) == 3
    for name in ("tone_0.wav", "tone_1.wav"):
        u = str(corpus / name)
        assert clips.clip_id[u] == clips0.clip_id[u]
        assert clips.mtime[u] == os.stat(u).st_mtime and clips.mtime[u] != clips0.mtime[u]
        assert clips.duration_s[u] == clips0.duration_s[u]
        np.testing.assert_array_equal(
            ds.frames(clips.clip_id[u], "mfcc"), frames0[clips.clip_id[u]]
        )
    assert clips.kind[str(t0)] == "A", "labels follow the labels file"
    assert clips.clip_id[str(corpus / "tone_2.wav")] != clips0.clip_id[str(corpus / "tone_2.wav")]
    feats = ds.table("features").to_pandas().set_index("clip_id").sort_index()
    assert feats.index.is_unique and len(feats) == 3
    kept = [clips0.clip_id[str(corpus / n)] for n in ("tone_0.wav", "tone_1.wav")]
    assert feats.loc[kept].drop(columns="run_id").equals(feats0.loc[kept].drop(columns="run_id"))
    # and the next run has nothing to do
    assert _ingest_in_process(cfg)["files_processed"] == 0

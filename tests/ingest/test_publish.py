"""Publishing a run: what the tables hold afterwards when files fail or shards were staged
by an earlier, killed run."""

from __future__ import annotations

from pathlib import Path

import pytest

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import RemovalRefusedError, extract_shard, plan_ingest, publish
from tests.audio_fixtures import sine, write
from tests.ingest._small import cfg as _cfg
from tests.ingest._small import corpus as _corpus
from tests.ingest._small import ingest as _ingest
from tests.ingest._small import table as _table
from tests.ingest._small import versions as _versions


def test_a_changed_file_that_now_fails_is_removed_and_counted_as_removed(tmp_path):
    """A file emptied in place (a failed sync) fails to decode: its old rows go like a removed
    file's (they described audio the file no longer holds), the run counts it as removed and
    says why; unchanged since, it is a new file that failed before; repaired, it comes back."""
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    old = _table(tmp_path, "clips").set_index("uri").clip_id[str(files[0])]
    files[0].write_bytes(b"")

    row = _ingest(cfg)
    assert row["files_changed"] == 1 and row["files_failed"] == 1
    assert row["files_removed"] == 1 and row["clips_total"] == 3
    assert row["message"].startswith("0 new, 1 changed, 1 removed, 3 unchanged; 1 changed file failed and was removed")
    assert str(files[0]) not in set(_table(tmp_path, "clips").uri)
    assert old not in set(_table(tmp_path, "features").clip_id)
    assert old not in set(_table(tmp_path, "frames_index").clip_id)
    assert list(_table(tmp_path, "errors").uri) == [str(files[0])]

    # unchanged since it failed: a new file that failed before, not retried, nothing recorded
    kept = _versions(tmp_path)
    row = _ingest(cfg)
    assert "1 failed before and unchanged, not retried" in row["message"]
    assert row["files_failed"] == 0 and row["files_removed"] == 0
    assert _versions(tmp_path) == kept and len(_table(tmp_path, "errors")) == 1

    write(files[0], sine(f=1200, dur=0.4), 22050)  # repaired
    row = _ingest(cfg)
    assert row["files_new"] == 1 and row["files_processed"] == 1 and row["clips_total"] == 4


def test_changed_files_failing_beyond_max_removed_share_are_refused_at_publish(
    tmp_path, monkeypatch
):
    """3 of 4 files emptied in place: removing them is more than max_removed_share, so nothing
    is published (the dataset stays as it was, a failed run says why); a rerun with
    allow_removals publishes the staged work without decoding again."""
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    before = _versions(tmp_path)
    clips_before = _table(tmp_path, "clips")
    for f in files[:3]:
        f.write_bytes(b"")

    with pytest.raises(RemovalRefusedError) as err:
        _ingest(cfg)
    msg = str(err.value)
    assert "3 of its 4 clips" in msg and "max_removed_share=0.5" in msg
    assert "--allow-removals" in msg and "tone_0.wav (decode/" in msg and "rerun reuses" in msg
    assert _versions(tmp_path) == before
    assert _table(tmp_path, "clips").equals(clips_before) and len(_table(tmp_path, "errors")) == 0
    runs = _table(tmp_path, "runs").sort_values("finished")
    assert list(runs.status) == ["ok", "failed"] and "3 of its 4 clips" in runs.message.iloc[-1]

    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg, allow_removals=True)
    assert not (tmp_path / "corpus" / ".decoded.log").exists(), "the staged shards are reused"
    assert row["files_removed"] == 3 and row["files_failed"] == 3 and row["clips_total"] == 1
    assert "3 changed files failed and were removed" in row["message"]
    assert list(_table(tmp_path, "clips").uri) == [str(files[3])]
    assert len(_table(tmp_path, "features")) == 1


def test_files_gone_and_files_failing_add_up_against_max_removed_share(tmp_path):
    """1 file deleted and 2 emptied of 5: each alone within the share (0.5), together not."""
    files = _corpus(tmp_path / "corpus", 5)
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    files[4].unlink()
    for f in files[:2]:
        f.write_bytes(b"")
    with pytest.raises(RemovalRefusedError, match="3 of its 5 clips.*and 1 whose files are gone"):
        _ingest(cfg)
    assert len(_table(tmp_path, "clips")) == 5


def test_labels_of_now_for_every_clip_after_a_changed_file_failed(tmp_path):
    """A changed file that failed no longer stands in the dataset under its old labels: the
    labels changed afterwards are those of every clip, and of the file once repaired
    (review 2 finding 1: a kept file's labels and split froze)."""
    corpus = tmp_path / "corpus"
    files = _corpus(corpus, 3)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,kind\ntone_0.wav,dog\ntone_1.wav,dog\ntone_2.wav,dog\n")
    cfg = _cfg(tmp_path, labels={"path": str(labels), "root": str(corpus)})
    _ingest(cfg)
    files[0].write_bytes(b"")
    _ingest(cfg)
    labels.write_text("path,kind\ntone_0.wav,cat\ntone_1.wav,cat\ntone_2.wav,cat\n")
    _ingest(cfg)
    clips = _table(tmp_path, "clips")
    assert sorted(clips.uri) == [str(f) for f in files[1:]] and set(clips.kind) == {"cat"}
    write(files[0], sine(f=700, dur=0.3), 22050)
    _ingest(cfg)
    clips = _table(tmp_path, "clips")
    assert len(clips) == 3 and set(clips.kind) == {"cat"}


def test_every_clip_row_describes_the_audio_its_uri_holds_now(tmp_path):
    """A file replaced by a recording the limits refuse (2 s, max_duration_s 0.5): its old row
    and features are gone, so no clip id serves the new audio under the old duration and
    features (review 2 finding 2)."""
    corpus = tmp_path / "corpus"
    a = write(corpus / "a.wav", sine(f=300, dur=0.3), 22050)
    write(corpus / "b.wav", sine(f=500, dur=0.3), 22050)
    cfg = _cfg(tmp_path, limits={"max_duration_s": 0.5})
    _ingest(cfg)
    old = _table(tmp_path, "clips").set_index("uri").clip_id[str(a)]
    write(a, sine(f=900, dur=2.0), 22050)
    row = _ingest(cfg)
    assert row["files_failed"] == 1 and row["files_removed"] == 1
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    clips = ds.table("clips").to_pandas()
    assert list(clips.uri) == [str(corpus / "b.wav")]
    for cid, dur in zip(clips.clip_id, clips.duration_s, strict=True):
        y, sr = ds.load_audio(cid)
        assert abs(len(y) / sr - dur) < 0.01
    assert old not in set(ds.table("features").to_pandas().clip_id)
    errors = ds.table("errors").to_pandas()
    assert list(errors.uri) == [str(a)]


def test_a_rebuild_counts_failing_files_as_removed_and_is_guarded(tmp_path):
    """A rebuild where 3 of 4 files now fail: refused like an ingest removing them (it said
    '0 removed' and left 1 clip: review 2 finding 3); allowed, it counts them."""
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path, max_removed_share=0.25)
    _ingest(cfg)
    before = _versions(tmp_path)
    for f in files[:3]:
        f.write_bytes(b"")
    with pytest.raises(RemovalRefusedError) as err:
        _ingest(cfg, kind="rebuild")
    msg = str(err.value)
    assert "3 of its 4 clips" in msg and "max_removed_share=0.25" in msg
    assert "audiopipe rebuild t --allow-removals" in msg and "rerun reuses" not in msg
    assert _versions(tmp_path) == before and len(_table(tmp_path, "features")) == 4
    staged = tmp_path / "out" / "t" / "_staging"
    assert not staged.exists() or not list(staged.iterdir())  # never reused: removed
    row = _ingest(cfg, kind="rebuild", allow_removals=True)
    assert row["files_removed"] == 3 and row["clips_total"] == 1
    assert "3 removed" in row["message"] and "3 changed files failed and were removed" in row["message"]
    assert len(_table(tmp_path, "features")) == 1


def test_changed_files_of_a_lost_shard_keep_their_rows_and_are_retried(tmp_path):
    """A shard lost with its worker says nothing about its files' bytes: an ingest leaves
    their stored rows as they were (removing them took intact clips away, and the refusal
    sent users to --allow-removals, which deleted them all), and the next run processes them."""
    files = _corpus(tmp_path / "corpus", 4)
    cfg = _cfg(tmp_path, shard={"min_shards": 2})
    _ingest(cfg)
    before = _table(tmp_path, "clips").set_index("uri").clip_id
    for i, f in enumerate(files):
        write(f, sine(f=1000 + 100 * i, dur=0.3), 22050)
    plan = plan_ingest(load_config(cfg), "t")
    assert len(plan.shards) == 2
    lost = {f.uri for f in plan.shards[0].files}
    row = publish(plan, [ConnectionError("worker lost"), extract_shard(plan.shards[1], plan.context)])
    assert row["files_removed"] == 0 and row["clips_total"] == 4
    assert f"{len(lost)} stored files of lost shards kept as before" in row["message"]
    clips = _table(tmp_path, "clips").set_index("uri").clip_id
    assert all(clips[u] == before[u] for u in lost)  # untouched, features and all
    assert all(clips[u] != before[u] for u in set(clips.index) - lost)  # the others redone
    assert set(_table(tmp_path, "features").clip_id) == set(clips)
    row = _ingest(cfg)  # retried: they are still "changed" against their stored rows
    assert row["files_changed"] == len(lost) and row["files_processed"] == len(lost)
    assert set(_table(tmp_path, "clips").clip_id).isdisjoint(before)
    # every shard lost: nothing to refuse, nothing removed
    for i, f in enumerate(files):
        write(f, sine(f=500 + 100 * i, dur=0.3), 22050)
    plan = plan_ingest(load_config(cfg), "t")
    row = publish(plan, [ConnectionError("worker lost")] * len(plan.shards))
    assert row["files_removed"] == 0 and row["clips_total"] == 4


def test_a_capped_run_cannot_remove_a_truncated_dataset_a_slice_at_a_time(tmp_path):
    """With max_files_per_run, every file truncated in place failed a slice per run, each
    slice under max_removed_share: 8 of 10 clips went before a run was refused. The failed
    share of a run's stored files is carried over the stored files it deferred."""
    files = _corpus(tmp_path / "corpus", 10)
    cfg = _cfg(tmp_path, max_files_per_run=2, max_removed_share=0.5)
    for _ in range(5):
        _ingest(cfg)
    assert len(_table(tmp_path, "clips")) == 10
    for f in files:
        f.write_bytes(f.read_bytes()[:40])
    before = _versions(tmp_path)
    with pytest.raises(RemovalRefusedError, match=r"remove 2 of its 10 clips now and, at the "
                       r"rate .* about 8 more of the 8 stored files deferred .* checked again"):
        _ingest(cfg)
    assert _versions(tmp_path) == before
    # a worker lost on half the slice: the files of unknown outcome do not dilute the rate
    cfg4 = _cfg(tmp_path, max_files_per_run=4, max_removed_share=0.5, shard={"min_shards": 2})
    plan = plan_ingest(load_config(cfg4), "t")
    assert [len(sh.files) for sh in plan.shards] == [2, 2]
    with pytest.raises(RemovalRefusedError, match="about 6 more"):
        publish(plan, [ConnectionError("worker lost"), extract_shard(plan.shards[1], plan.context)])
    assert _versions(tmp_path) == before
    # one broken file beside a healthy change, nothing deferred: 1 of 10 removed, not refused
    files = _corpus(tmp_path / "corpus", 10)
    for _ in range(5):
        _ingest(cfg)
    files[0].write_bytes(b"")
    files[5].touch()
    row = _ingest(cfg)
    assert row["files_removed"] == 1 and row["clips_total"] == 9
    # one failure is no rate: one broken file among many healthy changes, one a run, passes
    for f in files[1:]:
        write(f, sine(f=700, dur=0.3), 22050)
    files[1].write_bytes(b"")
    row = _ingest(_cfg(tmp_path, max_files_per_run=1, max_removed_share=0.5))
    assert row["files_removed"] == 1 and row["clips_total"] == 8


def test_shards_staged_by_a_killed_run_are_published_with_the_labels_of_now(tmp_path, monkeypatch):
    """A run killed after staging; the labels are fixed; the next run reuses the staged
    shards (nothing decoded) and publishes the labels and splits the file says now."""
    corpus = tmp_path / "corpus"
    _corpus(corpus, 3)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,kind,split\ntone_0.wav,dog,train\ntone_1.wav,dog,train\ntone_2.wav,dog,test\n")
    cfg = _cfg(tmp_path, labels={"path": str(labels), "root": str(corpus)})
    plan = plan_ingest(load_config(cfg), "t")
    for s in plan.shards:  # staged, then killed before publishing
        extract_shard(s, plan.context)
    labels.write_text("path,kind,split\ntone_0.wav,cat,test\ntone_1.wav,cat,test\ntone_2.wav,bird,train\n")
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg)
    assert row["files_processed"] == 3
    assert not (corpus / ".decoded.log").exists(), "the staged shards are reused"
    clips = _table(tmp_path, "clips").set_index("uri")
    got = {Path(u).name: (k, s) for u, k, s in zip(clips.index, clips.kind, clips.split, strict=True)}
    assert got == {
        "tone_0.wav": ("cat", "test"), "tone_1.wav": ("cat", "test"), "tone_2.wav": ("bird", "train")
    }  # fmt: skip
    assert "labels of" not in _ingest(cfg)["message"]  # nothing left to restate


def test_a_rebuild_whose_every_shard_was_lost_leaves_no_orphan_features(tmp_path):
    """Allowed to remove, a rebuild whose shards were all lost drops every clip: their
    features and frames_index rows go too (they stayed, naming clips no longer there)."""
    _corpus(tmp_path / "corpus", 2)
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    plan = plan_ingest(load_config(cfg), "t", kind="rebuild", allow_removals=True)
    row = publish(plan, [ConnectionError("worker lost")] * len(plan.shards))
    assert row["files_removed"] == 2 and row["clips_total"] == 0
    assert len(_table(tmp_path, "features")) == 0 and len(_table(tmp_path, "frames_index")) == 0
    assert _ingest(cfg)["files_processed"] == 2  # a lost shard is retried
    assert len(_table(tmp_path, "features")) == 2


def test_a_truncated_dataset_ingested_one_file_a_run_is_refused_at_its_second_failure(tmp_path):
    """One file a run, each capped run saw a single failure (no rate) and removed one clip
    under max_removed_share: a dataset truncated in place lost a clip a run until the last.
    The capped runs of a pass are counted together: the second failure of the pass is a rate."""
    files = _corpus(tmp_path / "corpus", 10)
    _ingest(_cfg(tmp_path))
    for f in files:
        f.write_bytes(f.read_bytes()[:40])
    cfg = _cfg(tmp_path, max_files_per_run=1, max_removed_share=0.5)
    row = _ingest(cfg)  # one failure: no rate yet
    assert row["files_removed"] == 1 and row["clips_total"] == 9
    before = _versions(tmp_path)
    for _ in range(2):  # refused, and refused again: nothing moves until a person decides
        with pytest.raises(RemovalRefusedError, match=r"remove 1 of its 9 clips now and, at the "
                           r"rate stored files failed in this pass \(2 of 2\), about 8 more .*after 1 "
                           r"stored file that failed was removed by the capped runs before it in "
                           r"this pass \(2 failures of the 10 clips"):
            _ingest(cfg)
        assert _versions(tmp_path) == before and len(_table(tmp_path, "clips")) == 9
    # allowed, the pass starts again from what the person accepted, and is guarded again
    assert _ingest(cfg, allow_removals=True)["clips_total"] == 8
    assert _ingest(cfg)["clips_total"] == 7
    with pytest.raises(RemovalRefusedError, match=r"\(2 of 2\)"):
        _ingest(cfg)


def test_broken_files_among_healthy_changes_pass_through_a_capped_pass(tmp_path):
    """One file a run over changed files of which two are broken (the first and the seventh):
    one failure is no rate, and the healthy files processed between dilute the pass's rate
    (2 of 7 carried over 3 deferred: 2.9 of 10, under 0.5), so every run publishes; a later
    pass starts counting again."""
    files = _corpus(tmp_path / "corpus", 10)
    _ingest(_cfg(tmp_path))
    for i, f in enumerate(files):
        write(f, sine(f=900 + 40 * i, dur=0.3), 22050)
    files[0].write_bytes(b"")
    files[6].write_bytes(files[6].read_bytes()[:40])
    cfg = _cfg(tmp_path, max_files_per_run=1, max_removed_share=0.5)
    rows = [_ingest(cfg) for _ in range(10)]
    assert [r["files_removed"] for r in rows] == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
    assert rows[-1]["clips_total"] == 8 and rows[-1]["removal_pass"] is None  # the pass ended
    assert rows[6]["removal_pass"] is not None
    for i, f in enumerate(files[1:6]):  # a new pass: one broken file among healthy ones again
        write(f, sine(f=300 + 40 * i, dur=0.3), 22050)
    files[1].write_bytes(b"")
    rows = [_ingest(cfg) for _ in range(5)]
    assert [r["files_removed"] for r in rows] == [1, 0, 0, 0, 0] and rows[-1]["clips_total"] == 7


def test_files_deleted_during_a_capped_pass_do_not_add_up_against_one_broken_file(tmp_path):
    """review 4, finding 3: a person deleting one file before each of three capped runs (each
    well under the plan-time guard, which counts a run's files gone) made the pass count 3
    removals, and one broken file after them was refused on every rerun. Files gone count
    for their run only; the pass counts its failures."""
    files = _corpus(tmp_path / "corpus", 10)
    _ingest(_cfg(tmp_path))
    for i, f in enumerate(files):
        write(f, sine(f=900 + 40 * i, dur=0.3), 22050)  # every file changed: a capped pass
    cfg = _cfg(tmp_path, max_files_per_run=1, max_removed_share=0.3)
    for k in (9, 8, 7):
        files[k].unlink()
        row = _ingest(cfg)
        assert row["files_removed"] == 1 and row["removal_pass"] is not None
    files[0].write_bytes(b"")  # one broken file, processed by the next run
    row = _ingest(cfg)
    assert row["files_removed"] == 1 and row["clips_total"] == 6
    assert [_ingest(cfg)["files_removed"] for _ in range(6)] == [0] * 6

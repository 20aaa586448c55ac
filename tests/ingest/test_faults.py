"""Ingest under a user's mistakes (issue 14, items 2, 3, 7 and 8), through the library path.

- an empty source (an unmounted share) or a glob matching nothing never wipes a dataset: a run
  that would remove more than ``max_removed_share`` of it stops before any work;
- labels are data: a labels change updates ``clips`` without recomputing features, and every
  join problem (unmatched, duplicated, missing rows) is counted in the run's message;
- a file that failed and has not changed is not retried (nor re-recorded) unless asked, and an
  unchanged re-run makes no new version of any table;
- two files with the same bytes are two clips, with unique keys in every table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import (
    EmptySourceError,
    LabelsError,
    RemovalRefusedError,
    plan_ingest,
    publish,
)
from tests.audio_fixtures import sine, write
from tests.ingest._small import cfg as _cfg
from tests.ingest._small import corpus as _corpus
from tests.ingest._small import ingest as _ingest
from tests.ingest._small import table as _table
from tests.ingest._small import versions as _versions

# --- 2. an empty source never wipes the dataset ----------------------------------------------


def test_empty_source_folder_refuses_to_remove_the_whole_dataset(tmp_path):
    """An unmounted share (folder present, empty): refused before any work, naming the way
    out; with ``allow_removals`` the removal goes through."""
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    before = _versions(tmp_path)
    for f in files:
        f.unlink()
    with pytest.raises(RemovalRefusedError) as err:
        _ingest(cfg)
    msg = str(err.value)
    assert "4 of its 4 clips" in msg and "max_removed_share" in msg and "--allow-removals" in msg
    assert _versions(tmp_path) == before and len(_table(tmp_path, "clips")) == 4
    row = _ingest(cfg, allow_removals=True)
    assert row["files_removed"] == 4 and row["clips_total"] == 0


def test_removing_more_than_half_is_refused_unless_the_share_allows_it(tmp_path):
    files = _corpus(tmp_path / "corpus")
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    files[0].unlink()  # 1 of 4: an ordinary removal
    assert _ingest(cfg)["files_removed"] == 1
    for f in files[1:3]:  # 2 of the 3 left: more than half
        f.unlink()
    with pytest.raises(RemovalRefusedError, match="2 of its 3 clips"):
        _ingest(cfg)
    cfg = _cfg(tmp_path, max_removed_share=0.7)
    assert _ingest(cfg)["files_removed"] == 2
    assert list(_table(tmp_path, "clips").uri) == [str(files[3])]


@pytest.mark.parametrize("source", ["corpus", "corpus/*.flac"], ids=["empty-folder", "glob"])
def test_a_new_dataset_whose_sources_match_nothing_is_an_error(tmp_path, source):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.txt").write_text("no audio here")
    if source.endswith(".flac"):
        _corpus(tmp_path / "corpus", 1)  # a .wav: the glob asks for .flac
    cfg = _cfg(tmp_path, source=str(tmp_path / source))
    with pytest.raises(EmptySourceError, match="matched no audio file"):
        plan_ingest(load_config(cfg), "t")
    assert not (tmp_path / "out" / "t" / "tables").exists()


def test_a_source_matching_nothing_among_others_is_named_in_the_message(tmp_path):
    _corpus(tmp_path / "corpus", 2)
    (tmp_path / "share").mkdir()
    cfg = _cfg(tmp_path, source=[str(tmp_path / "corpus"), str(tmp_path / "share")])
    row = _ingest(cfg)
    assert row["files_processed"] == 2
    assert f"source {str(tmp_path / 'share')!r} matched no audio file" in row["message"]


# --- 3. labels are data ------------------------------------------------------------------------


def _labelled(tmp_path: Path, text: str) -> Path:
    _corpus(tmp_path / "corpus")
    (tmp_path / "labels.csv").write_text(text)
    return _cfg(
        tmp_path,
        labels={"path": str(tmp_path / "labels.csv"), "on": "path", "root": str(tmp_path / "corpus")},
    )


def test_a_labels_change_updates_clips_without_recomputing_features(tmp_path, monkeypatch):
    rows = "".join(f"tone_{i}.wav,{k},train\n" for i, k in enumerate("abcd"))
    cfg = _labelled(tmp_path, "path,kind,split\n" + rows)
    _ingest(cfg)
    before = _versions(tmp_path)
    feats0 = _table(tmp_path, "features").sort_values("clip_id").reset_index(drop=True)
    (tmp_path / "labels.csv").write_text(
        "path,kind,split\ntone_0.wav,A,train\ntone_1.wav,b,train\ntone_2.wav,c,test\n"
        "tone_3.wav,d,train\n"
    )
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:log_decodes")
    row = _ingest(cfg)
    assert not (tmp_path / "corpus" / ".decoded.log").exists(), "nothing is decoded"
    assert "labels of 2 clips changed" in row["message"]
    after = _versions(tmp_path)
    assert after["features"] == before["features"]
    assert after["frames_index"] == before["frames_index"]
    assert after["clips"] == before["clips"] + 1
    clips = _table(tmp_path, "clips").set_index("uri")
    corpus = tmp_path / "corpus"
    assert clips.kind[str(corpus / "tone_0.wav")] == "A"
    assert clips.split[str(corpus / "tone_2.wav")] == "test"  # the split follows its label
    assert list(clips.sort_values("kind").kind) == ["A", "b", "c", "d"]
    feats1 = _table(tmp_path, "features").sort_values("clip_id").reset_index(drop=True)
    assert feats1.equals(feats0)
    # the same labels again: nothing to do, no table version
    assert "labels of" not in _ingest(cfg)["message"] and _versions(tmp_path) == after


def test_label_join_problems_are_counted_in_the_message(tmp_path):
    cfg = _labelled(
        tmp_path,
        "path,kind\ntone_0.wav,a\ntone_1.wav,b\ntone_1.wav,b\ngone.wav,x\nother/y.wav,y\n",
    )
    row = _ingest(cfg)
    msg = row["message"]
    assert "2 label rows match no file" in msg and "gone.wav" in msg
    assert "1 duplicated label row (same values, kept once)" in msg
    assert "2 files have no label row" in msg
    clips = _table(tmp_path, "clips").set_index("uri")
    assert clips.kind.isna().sum() == 2


def test_conflicting_duplicate_label_rows_are_an_error(tmp_path):
    cfg = _labelled(tmp_path, "path,kind\ntone_0.wav,a\ntone_0.wav,b\ntone_1.wav,c\n")
    with pytest.raises(LabelsError, match=r"tone_0\.wav.*2 rows with different values"):
        plan_ingest(load_config(cfg), "t")


def test_labels_matching_no_file_are_an_error(tmp_path):
    cfg = _labelled(tmp_path, "path,kind\nelsewhere/a.wav,a\nelsewhere/b.wav,b\n")
    with pytest.raises(LabelsError, match="none of its 2 rows matches"):
        plan_ingest(load_config(cfg), "t")


# --- 7. failed files are not retried until they change ----------------------------------------


def test_an_unchanged_failed_file_is_not_retried_nor_recorded_again(tmp_path):
    _corpus(tmp_path / "corpus", 2)
    bad = tmp_path / "corpus" / "bad.wav"
    bad.write_text("not audio\n" * 20)
    (tmp_path / "corpus" / "empty.wav").write_bytes(b"")
    cfg = _cfg(tmp_path)
    first = _ingest(cfg)
    assert first["files_failed"] == 2 and len(_table(tmp_path, "errors")) == 2
    before = _versions(tmp_path)

    row = _ingest(cfg)  # unchanged: no table gets a new version
    assert _versions(tmp_path) == before
    assert row["files_failed"] == 0 and row["files_processed"] == 0
    assert "2 failed before and unchanged, not retried (--retry-failed)" in row["message"]
    assert len(_table(tmp_path, "errors")) == 2

    row = _ingest(cfg, retry_failed=True)  # asked: retried, recorded again
    assert row["files_failed"] == 2 and len(_table(tmp_path, "errors")) == 4

    write(bad, sine(f=500, dur=0.3), 22050)  # fixed: a changed file is retried by itself
    row = _ingest(cfg)
    assert row["files_processed"] == 1 and row["files_failed"] == 0
    assert str(bad) in set(_table(tmp_path, "clips").uri)


def test_a_failed_file_is_retried_when_the_dataset_settings_change(tmp_path):
    """A file refused by a limit is retried once the limit is raised (the config changed)."""
    _corpus(tmp_path / "corpus", 2)
    write(tmp_path / "corpus" / "long.wav", sine(f=300, dur=1.5), 22050)
    cfg = _cfg(tmp_path, limits={"max_duration_s": 1.0})
    assert _ingest(cfg)["files_failed"] == 1
    assert _ingest(cfg)["files_failed"] == 0
    cfg = _cfg(tmp_path, limits={"max_duration_s": 2.0})
    row = _ingest(cfg)
    assert row["files_processed"] == 1 and row["files_failed"] == 0


def test_a_lost_shard_is_retried_but_a_file_that_crashed_the_decoder_is_not(tmp_path):
    """Failures of the infrastructure say nothing about the files; a decoder crash does."""

    class DecoderCrashed(RuntimeError):
        kind = "decoder_crashed"  # as flows.ingest names a file that killed every worker

    _corpus(tmp_path / "corpus", 2)
    cfg = _cfg(tmp_path, shard={"min_shards": 2})
    plan = plan_ingest(load_config(cfg), "t")
    assert len(plan.shards) == 2
    publish(plan, [ConnectionError("storage went away"), DecoderCrashed("killed the worker")])
    assert len(_table(tmp_path, "errors")) == 2
    row = _ingest(cfg)
    assert row["files_processed"] == 1 and "1 failed before and unchanged" in row["message"]
    assert len(_table(tmp_path, "clips")) == 1 and len(_table(tmp_path, "errors")) == 2


# --- 8. identical bytes, two files, two clips ---------------------------------------------------


def test_two_copies_of_a_file_are_two_clips_with_unique_keys(tmp_path):
    files = _corpus(tmp_path / "corpus", 2)
    copy = tmp_path / "corpus" / "sub" / "copy.wav"
    copy.parent.mkdir()
    shutil.copyfile(files[0], copy)
    cfg = _cfg(tmp_path)
    _ingest(cfg)
    clips = _table(tmp_path, "clips")
    assert len(clips) == 3 and clips.clip_id.is_unique and clips.uri.is_unique
    by_uri = clips.set_index("uri")
    assert by_uri.content_hash[str(copy)] == by_uri.content_hash[str(files[0])]
    assert by_uri.content_hash.nunique() == 2
    for name in ("features", "frames_index"):
        t = _table(tmp_path, name)
        assert len(t) == 3 and t.clip_id.is_unique and set(t.clip_id) == set(clips.clip_id), name
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    a, b = (ds.frames(by_uri.clip_id[str(p)], "rms") for p in (files[0], copy))
    assert a.shape == b.shape and (a == b).all()

    copy.unlink()  # removing one copy removes only it
    _ingest(cfg)
    clips = _table(tmp_path, "clips")
    assert sorted(clips.uri) == sorted(str(f) for f in files)
    for name in ("features", "frames_index"):
        assert set(_table(tmp_path, name).clip_id) == set(clips.clip_id), name
    ds = audiopipe.open_dataset(str(tmp_path / "out"), "t")
    assert ds.frames(clips.set_index("uri").clip_id[str(files[0])], "rms").shape == a.shape

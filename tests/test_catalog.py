import os

import pytest

from audiopipe.catalog import FileEntry, diff, discover, hash_file, read_labels
from tests.audio_fixtures import sine, write


def test_discover_folder_glob_and_missing(tmp_path):
    write(tmp_path / "a" / "x.wav", sine(), 22050)
    write(tmp_path / "a" / "b" / "y.flac", sine(), 22050)
    (tmp_path / "a" / "notes.txt").write_text("not audio")
    found = discover([str(tmp_path / "a")])
    assert [os.path.basename(f.uri) for f in found] == ["y.flac", "x.wav"] or len(found) == 2
    assert {os.path.basename(f.uri) for f in found} == {"x.wav", "y.flac"}
    assert all(f.size > 0 and f.mtime > 0 for f in found)
    only = discover([str(tmp_path / "a" / "**" / "*.flac")])
    assert [os.path.basename(f.uri) for f in only] == ["y.flac"]
    with pytest.raises(FileNotFoundError, match="no such"):
        discover([str(tmp_path / "missing")])


def test_hash_is_content(tmp_path):
    a = write(tmp_path / "a.wav", sine(), 22050)
    b = tmp_path / "b.wav"
    b.write_bytes(a.read_bytes())
    c = write(tmp_path / "c.wav", sine(f=441), 22050)
    assert hash_file(str(a)) == hash_file(str(b)) != hash_file(str(c))
    assert len(hash_file(str(a))) == 32


def test_labels_join_on_relative_path(tmp_path):
    (tmp_path / "labels.csv").write_text("path,digit,speaker\nrec/0_a.wav,0,a\nrec/1_b.wav,1,b\n")
    labels = read_labels(str(tmp_path / "labels.csv"))
    assert labels[str(tmp_path / "rec" / "1_b.wav")] == {"digit": "1", "speaker": "b"}
    with pytest.raises(ValueError, match="no column 'file'"):
        read_labels(str(tmp_path / "labels.csv"), on="file")


def test_diff_uses_size_and_mtime():
    stored = {"/a": (10, 1.0, "A"), "/b": (20, 2.0, "B"), "/c": (30, 3.0, "C")}
    found = [FileEntry("/a", 10, 1.0), FileEntry("/b", 21, 2.5), FileEntry("/d", 5, 1.0)]
    d = diff(found, stored)
    assert [e.uri for e in d.unchanged] == ["/a"] and d.unchanged[0].clip_id == "A"
    assert [e.uri for e in d.changed] == ["/b"]
    assert [e.uri for e in d.new] == ["/d"]
    assert d.removed == ["/c"]
    assert [e.uri for e in d.to_process] == ["/b", "/d"]


def test_a_folder_named_with_brackets_is_listed_not_globbed(tmp_path):
    """``Album B [2020]`` exists: it is that folder, not a glob matching ``Album B 2``."""
    for i in range(3):
        write(tmp_path / "Album B [2020]" / f"t{i}.wav", sine(), 22050)
    write(tmp_path / "Album B 2" / "other.wav", sine(), 22050)
    found = discover([str(tmp_path / "Album B [2020]")])
    assert [f.uri for f in found] == [str(tmp_path / "Album B [2020]" / f"t{i}.wav") for i in range(3)]
    globbed = discover([str(tmp_path / "Album B [0-9]" / "*.wav")])  # a glob still is one
    assert [os.path.basename(f.uri) for f in globbed] == ["other.wav"]



def test_local_paths_with_double_colons_are_plain_files(tmp_path):
    """``::`` chains URLs for fsspec; in a local path it is part of a name."""
    a = write(tmp_path / "take 1::mix.wav", sine(), 22050)
    b = tmp_path / "copy.wav"
    b.write_bytes(a.read_bytes())
    assert hash_file(str(a)) == hash_file(str(b))
    folder = tmp_path / "session::2"
    write(folder / "x.wav", sine(), 22050)
    assert [f.uri for f in discover([str(folder)])] == [str(folder / "x.wav")]
    (folder / "labels::v2.csv").write_text("path,digit\nx.wav,7\n")
    assert read_labels(str(folder / "labels::v2.csv")) == {str(folder / "x.wav"): {"digit": "7"}}

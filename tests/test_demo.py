"""The demo corpus: what ``audiopipe demo-corpus`` and a ``demo_corpus: true`` dataset write."""

from __future__ import annotations

import pytest

from audiopipe.demo import CLASSES, make_demo_corpus


def test_the_corpus_has_the_clips_asked_for_and_their_ground_truth(tmp_path):
    out = make_demo_corpus(tmp_path / "demo", n_per_class=1)
    clips = sorted(p for p in out.rglob("*") if p.suffix in (".wav", ".flac", ".mp3"))
    assert len(clips) == len(CLASSES)
    assert (out / "labels.csv").read_text().count("\n") == len(CLASSES) + 1
    assert (out / "events.csv").read_text().count("\n") == 2  # header + the one event clip


@pytest.mark.parametrize("n", [0, -2])
def test_no_clip_per_class_is_refused_before_any_folder_is_made(n, tmp_path):
    """It made the class folders, then failed with an IndexError writing labels.csv."""
    with pytest.raises(ValueError, match=rf"^n_per_class: must be >= 1, got {n}$"):
        make_demo_corpus(tmp_path / "demo", n_per_class=n)
    assert not (tmp_path / "demo").exists()

"""segment: HMM smoothing, Foote novelty, the S1/S2 periodic model, real concatenations."""

from __future__ import annotations

import csv
import warnings

import mir_eval
import numpy as np
import pytest
import soundfile as sf

import audiopipe.features as F
from audiopipe.config import ConfigError
from audiopipe.stages import run_stage, segment
from audiopipe.stages._common import StageInputError

from ._ingest import ESC_RECIPE, ingest, write_csv
from ._longrec import make_long_recordings


def test_viterbi_smooths_isolated_flips():
    rng = np.random.default_rng(0)
    truth = np.r_[np.zeros(100, int), np.ones(100, int)]
    P = np.where(truth[:, None] == np.arange(2), 0.7, 0.3)
    flip = rng.random(200) < 0.2
    P[flip] = P[flip][:, ::-1]  # 20 % of frames vote for the wrong state
    path = segment.viterbi(np.log(P), np.log(segment.sticky_transition(2, 0.98)))
    assert (path == truth).mean() > 0.97
    assert (np.argmax(P, 1) == truth).mean() < 0.85


def test_novelty_finds_known_boundaries():
    rng = np.random.default_rng(1)
    means = rng.normal(0, 3, (4, 8))
    X = np.concatenate(
        [m + rng.normal(0, 1, (n, 8)) for m, n in zip(means, (60, 90, 50, 80), strict=True)]
    )
    b = segment.novelty_boundaries(X, hop_s=0.1, kernel_s=3.0)
    assert np.allclose(np.sort(b), [6.0, 15.0, 20.0], atol=0.3)


def test_novelty_finds_nothing_in_silence_or_a_constant_signal():
    rng = np.random.default_rng(0)
    hop = 512 / 22050
    flat = np.full((200, 20), -500.0)
    silent = np.c_[np.full((200, 1), -1131.0), np.zeros((200, 19))]  # mfcc of digital silence
    for X in (flat, flat + 1e-6 * rng.standard_normal(flat.shape),
              silent + 6e-4 * rng.standard_normal(silent.shape), np.zeros((200, 20))):
        assert len(segment.novelty_boundaries(X, hop, kernel_s=1.0)) == 0
        assert not segment.novelty_curve(X, 22).any()
    # a constant tone: only its first and last two frames (windows into the padding) differ
    tone = flat + 1e-6 * rng.standard_normal(flat.shape)
    tone[:2] += 40.0
    tone[-2:] += 40.0
    assert len(segment.novelty_boundaries(tone, hop, kernel_s=1.0)) == 0
    # the same float noise on top of one real change still finds it, and only it
    two = flat + np.r_[np.zeros((100, 20)), 3 * np.ones((100, 20))]
    b = segment.novelty_boundaries(two + 1e-6 * rng.standard_normal(flat.shape), hop, 1.0)
    assert np.allclose(b, [100 * hop], atol=2 * hop)


def test_novelty_floor_is_per_feature_so_a_small_scale_feature_still_counts(tmp_path):
    # spectral centroid (Hz, ~3000) beside rms (~0.03-0.1): a floor taken over both would
    # drop rms as "float noise", and with it the only change (loudness x3 at 10 s)
    sr = 22050
    y = np.random.default_rng(0).standard_normal(20 * sr).astype(np.float32) * 0.03
    y[10 * sr:] *= 3
    c, r = F.spectral_centroid(y=y, sr=sr).T, F.rms(y=y).T
    hop = 512 / sr
    b = segment.novelty_boundaries(np.c_[c, r], hop, kernel_s=4.0, widths=[1, 1])
    assert np.allclose(b, [10.0], atol=4 * hop)
    with pytest.raises(ValueError, match="do not add up"):
        segment.novelty_curve(np.c_[c, r], 40, widths=[1])
    # the stage tells the detector where each feature's columns are
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "louder.wav", y, sr)
    ds = ingest(tmp_path / "out", "louder", str(src), None)
    run_stage(ds, "segment", {"mode": "novelty", "feature": ["spectral_centroid", "rms"]})
    seg = ds.table("segments").to_pandas().sort_values("start_s")
    assert len(seg) == 2 and abs(seg.end_s.iloc[0] - 10.0) < 4 * hop


def test_periodic_model_on_generated_pcg():
    # systole shortens with heart rate but stays shorter than diastole (the model's cue)
    for seed, bpm, systole in ((0, 60, 0.33), (1, 80, 0.3), (2, 100, 0.26)):
        y, sr, s1, s2 = segment.synthetic_pcg(20.0, bpm=bpm, systole_s=systole, seed=seed)
        ev = segment.PeriodicSegmenter().sounds(y, sr)
        assert mir_eval.onset.f_measure(s1, ev["S1"], window=0.05)[0] > 0.95
        assert mir_eval.onset.f_measure(s2, ev["S2"], window=0.05)[0] > 0.95
    # silence and a too-short signal: empty, no crash
    assert segment.PeriodicSegmenter().predict_segments(np.zeros(8000), 4000) == []
    assert segment.PeriodicSegmenter().predict_segments(np.ones(100), 4000) == []


def test_supervised_on_demo_events(demo_ds, demo_folder):
    ev = str(demo_folder / "events.csv")
    # 6 event clips, tones at random f0: f0-independent frame features generalise from 4
    p = {
        "mode": "supervised",
        "events": ev,
        "background": "silence",
        "min_duration_s": 0.3,
        "feature": "rms,zero_crossing_rate,spectral_centroid,spectral_rolloff",
    }
    r1 = run_stage(demo_ds, "segment", p, force=True)
    r2 = run_stage(demo_ds, "segment", p, force=True)
    assert r1["metrics"] == r2["metrics"]
    m = r1["metrics"]
    assert m["frame_accuracy"] > 0.9 and m["f@0.5s"] > 0.8 and m["n_clips"] == 6
    seg = demo_ds.table("segments").to_pandas()
    assert set(seg.label) <= {"silence", "tonal", "noisy"} and (seg.end_s > seg.start_s).all()
    # the 6 clips with events are out-of-fold predictions; every other clip gets the model's
    origin = seg.groupby("clip_id").origin.first()
    assert (origin == "cv").sum() == 6 and (origin == "model").sum() == 30
    assert r1["model"].endswith("segment.skops")
    mm = demo_ds.table("metrics").to_pandas()
    assert set(mm[mm.run_id == r1["run_id"]].evaluation) == {"cv"}
    assert run_stage(demo_ds, "segment", p)["skipped"]
    assert "warnings" not in r1  # every fold's training part has every label


def test_a_fold_lacking_a_label_is_listed_in_the_run_report(demo_ds, demo_folder, tmp_path):
    # one clip's events relabelled "rare": the fold testing it never saw that label
    rows = list(csv.DictReader((demo_folder / "events.csv").open()))
    rows[0]["label"] = "rare"
    ev = write_csv(tmp_path / "events.csv", rows)
    p = {"mode": "supervised", "events": str(ev), "background": "silence",
         "feature": "rms,zero_crossing_rate,spectral_centroid,spectral_rolloff"}
    with pytest.warns(UserWarning, match="no frames of 'rare'"):
        r = run_stage(demo_ds, "segment", p, force=True)
    assert len(r["warnings"]) == 1 and "no frames of 'rare'" in r["warnings"][0]


def test_bad_inputs_refused_without_outputs(fresh_ds, demo_folder, tmp_path):
    with pytest.raises(ConfigError, match="'events'"):
        run_stage(fresh_ds, "segment", {"mode": "supervised"})
    with pytest.raises(ConfigError, match=r"segment\.mdoe: unknown parameter \(did you mean mode\?\)"):
        run_stage(fresh_ds, "segment", {"mdoe": "novelty"})
    bad = tmp_path / "ev.csv"
    bad.write_text("path,onset_s,offset_s\nx.wav,0,1\n")
    with pytest.raises(StageInputError, match="'label'") as err:
        run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(bad)})
    assert "fresh" in str(err.value)
    one = tmp_path / "one.csv"
    rows = list(csv.DictReader((demo_folder / "events.csv").open()))
    one.write_text(
        "path,onset_s,offset_s,label\n" + "".join(f"{r['path']},0,100,x\n" for r in rows)
    )
    with pytest.raises(StageInputError, match="one label"):
        run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(one)})
    # one labelled clip: 2 folds of 1 clip, one fitted on nothing (a raw numpy ValueError)
    single = tmp_path / "single.csv"
    single.write_text("path,onset_s,offset_s,label\n" + "".join(
        f"{rows[0]['path']},{a},{b},{lab}\n" for a, b, lab in ((0, 0.5, "a"), (0.5, 1, "b"))))
    with pytest.raises(StageInputError, match="labels 1 clip;.* needs at least 2 labelled clips"):
        run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(single)})
    with pytest.raises(StageInputError, match="'nope'"):
        run_stage(fresh_ds, "segment", {"mode": "novelty", "feature": "nope"})
    assert "segments" not in fresh_ds.table_names()


def test_bad_event_rows_named_before_training(fresh_ds, demo_folder, tmp_path):
    from types import SimpleNamespace

    from audiopipe.stages.segment.events import reference_segments

    good = (demo_folder / "events.csv").read_text()
    n = len(good.strip().splitlines()) - 1
    for name, row, needle in (
        ("nan.csv", "event/event_000.wav,0.5,,tonal", "no number as onset_s or offset_s"),
        ("swap.csv", "event/event_000.wav,1.5,0.5,tonal", r"end before they start"),
        ("neg.csv", "event/event_000.wav,-1,0.2,tonal", r"start before 0 s"),
        ("nolabel.csv", "event/event_000.wav,0.5,0.6,", r"have no label"),
        ("late.csv", "event/event_000.wav,500,501,tonal", r"start after their clip ends"),
    ):
        f = tmp_path / name
        f.write_text(good + row + "\n")
        with pytest.raises(StageInputError, match=needle) as err:
            run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(f)})
        assert name in str(err.value) and f"row {n + 1} (path='event/event_000.wav'" in str(err.value)
    f = tmp_path / "overlap.csv"
    f.write_text(good + "tone/tone_000.wav,0.1,0.5,x\ntone/tone_000.wav,0.3,0.6,x\n")
    with pytest.raises(StageInputError, match=rf"overlap the event before.*row {n + 2} "):
        run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(f)})
    # two spellings of one clip's path are one clip: their overlap is refused too (it
    # passed, and one spelling's events replaced the other's)
    f.write_text(good + "tone/tone_001.flac,0.1,0.5,x\ntone_001.flac,0.3,0.6,y\n")
    with pytest.raises(StageInputError, match=rf"overlap the event before.*row {n + 2} "):
        run_stage(fresh_ds, "segment", {"mode": "supervised", "events": str(f)})
    assert "segments" not in fresh_ds.table_names()
    # rows naming no clip are ignored, said with their count and names
    f = tmp_path / "typo.csv"
    f.write_text(good + "event/typo_009.wav,0.5,1.5,tonal\nevent/typo_009.wav,2,3,tonal\n")
    ctx = SimpleNamespace(ds=fresh_ds, params={"events": str(f), "background": "silence"})
    with pytest.warns(UserWarning, match=rf"2 of {n + 2} rows .*typo.csv.*'event/typo_009.wav'"):
        ref = reference_segments(ctx)
    assert len(ref) == n
    # the reference (so the supervised folds) comes in clips order, whatever the file's
    order = [c for c in fresh_ds.table("clips", ["clip_id"]).column("clip_id").to_pylist() if c in ref]
    head, *rows = good.strip().splitlines()
    f.write_text("\n".join([head, *rows[::-1]]) + "\n")
    assert list(ref) == order and list(reference_segments(ctx)) == order


def test_real_concatenations_supervised_and_novelty(corpora, tmp_path):
    src = make_long_recordings(corpora, tmp_path / "long", n=6, duration=40.0)
    ds = ingest(tmp_path / "out", "long", str(src / "*.flac"), None, 16000, ESC_RECIPE)
    ev = str(src / "events.csv")
    sup = run_stage(ds, "segment", {"mode": "supervised", "events": ev, "background": "silence"})[
        "metrics"
    ]
    nov = run_stage(ds, "segment", {"mode": "novelty", "events": ev, "kernel_s": 2.0})["metrics"]
    print("long recordings (6 x 40 s, speech/music/silence) supervised:", sup, "novelty:", nov)
    assert sup["frame_accuracy"] > 0.85 and sup["f@0.5s"] > 0.6 and sup["f@3s"] > 0.75
    assert nov["f@3s"] > 0.5


def test_pascal_heart_sounds(corpora, tmp_path):
    heart = corpora / "heart" / "pascal_a"
    ds = ingest(tmp_path / "out", "heart", str(heart / "audio"), None, 4000, ESC_RECIPE)
    r = run_stage(ds, "segment", {"mode": "periodic", "reference": str(heart / "s1s2_locations.csv")})
    m = r["metrics"]
    print("pascal_a S1/S2 (+-0.1 s):", m)
    assert m["n_clips"] == 10 and m["f_sounds"] > 0.65 and m["f_S1"] > 0.6
    seg = ds.table("segments").to_pandas()
    assert {"S1", "S2", "systole", "diastole"} <= set(seg.label)


def test_empty_and_constant_inputs_do_not_crash():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (50, 3)), rng.normal(3, 1, (50, 3))]
    seg = segment.FrameSegmenter(hop_s=0.1).fit([X], [np.array(["a"] * 50 + ["b"] * 50)])
    assert seg.predict_segments(np.zeros((0, 3))) == []
    assert len(seg.predict_segments(X[:1])) == 1  # one frame: one segment
    assert segment.novelty_boundaries(np.zeros((200, 3)), 0.1).size == 0  # silence: no boundary
    assert segment.novelty_boundaries(np.zeros((2, 3)), 0.1).size == 0  # shorter than kernel


def test_heart_mode_on_circor_and_pascal(corpora, tmp_path):
    """Heart mode through run_stage: CirCor intervals + PASCAL points, patient-grouped CV.

    Four CirCor recordings of 2 patients and four PASCAL recordings; the points file names
    three of them, so the fourth is segmented by the final model and scored here against
    its own points (nothing of it was trained on).
    """
    import shutil

    from audiopipe.stages._common import load_model
    from audiopipe.stages.heart import STATES, read_point_references, sound_scores

    heart = corpora / "heart"
    src = tmp_path / "src"
    (src / "circor").mkdir(parents=True)
    (src / "pascal" / "audio").mkdir(parents=True)
    circor = ["85343_AV", "85343_MV", "85345_AV", "85345_PV"]
    for n in circor:
        shutil.copy(heart / "circor" / f"{n}.wav", src / "circor")
    pts = read_point_references(heart / "pascal_a" / "s1s2_locations.csv")
    pascal = sorted(pts)[:4]
    for f in pascal:
        shutil.copy(heart / "pascal_a" / f, src / "pascal" / "audio")
    rows = list(csv.DictReader((heart / "pascal_a" / "s1s2_locations.csv").open()))
    points = tmp_path / "points.csv"
    write_csv(points, [r for r in rows if r["file"] in pascal[:3]])
    ds = ingest(tmp_path / "out", "heart", str(src), None, 4000, {"compute": {"rms": {}}})
    p = {"mode": "heart", "reference": str(heart / "circor"), "points": str(points),
         "n_splits": 5}
    r = run_stage(ds, "segment", p)
    m = r["metrics"]
    print("heart mode, patient-grouped CV (2 CirCor patients, 3 PASCAL recordings):", m)
    assert m["n_clips"] == 7 and m["n_interval_clips"] == 4 and m["n_patients"] == 5
    assert m["frame_accuracy"] > 0.75 and m["f_S1"] > 0.8 and m["f_S2"] > 0.8
    seg = ds.table("segments").to_pandas()
    clips = ds.table("clips", ["clip_id", "uri", "duration_s"]).to_pandas()
    assert set(seg.clip_id) == set(clips.clip_id)  # every clip segmented
    for cid, uri, dur in clips.itertuples(index=False):
        g = seg[seg.clip_id == cid].sort_values("start_s")
        assert g.start_s.iloc[0] == 0.0 and g.end_s.iloc[-1] == pytest.approx(dur, abs=1e-3)
        np.testing.assert_allclose(g.start_s.to_numpy()[1:], g.end_s.to_numpy()[:-1])
        assert set(g.label) <= set(STATES) and g.confidence.between(0, 1).all()
        assert set(g.origin) == {"model" if uri.endswith(pascal[3]) else "cv"}
    unseen = clips[clips.uri.str.endswith(pascal[3])].clip_id.iloc[0]
    g = seg[seg.clip_id == unseen]
    est = {k: ((g.start_s + g.end_s) / 2)[g.label == k].to_numpy() for k in ("S1", "S2")}
    held = sound_scores(pts[pascal[3]], est, window=0.1)
    print("unreferenced PASCAL recording by the final model:", held)
    assert held["f_S1"] > 0.8 and held["f_S2"] > 0.8
    model = load_model(ds, r["model"], segment.Segment.trusted)
    assert sorted(model.sound_durations_.shape) == [2, 2]
    png = [u for u in r["plots"] if "segment-heart" in u]
    assert len(png) == 1 and open(png[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert run_stage(ds, "segment", p)["skipped"]
    with pytest.raises(ConfigError, match="reference"):
        run_stage(ds, "segment", {"mode": "heart"})
    # references of one patient: no grouped CV, said in the warning and in the run report
    one = tmp_path / "one_patient"
    one.mkdir()
    for f in (heart / "circor").glob("85343_*"):
        shutil.copy(f, one)
    with pytest.warns(RuntimeWarning, match="one patient"):
        r1 = run_stage(ds, "segment", {**p, "reference": str(one), "points": ""})
    assert not r1["metrics"] and any("one patient (85343)" in w for w in r1["warnings"])
    other = tmp_path / "other.tsv"
    shutil.copy(heart / "circor" / "85343_PV.tsv", other)  # a recording not in the dataset
    with pytest.raises(StageInputError, match="no clip is named"):
        run_stage(ds, "segment", {"mode": "heart", "reference": str(other)})


@pytest.mark.parametrize("mode", ["periodic", "heart", "novelty"])
def test_an_inverted_heart_rate_range_is_refused_in_every_mode(mode):
    from audiopipe.stages.runner import check_params

    raw = {"mode": mode, "min_bpm": 200, "max_bpm": 60, "reference": "r.csv"}
    (problem,) = check_params("segment", raw, where="s")
    assert "min_bpm (200.0) must be below max_bpm (60.0)" in problem
    assert check_params("segment", {**raw, "min_bpm": 40}, where="s") == []


def _labelled_clips(kinds, seed=0):
    """Clips of 200 frames (hop 0.05 s): background, then 100 frames of the clip's label."""
    rng = np.random.default_rng(seed)
    frames, labels = {}, {}
    for i, kind in enumerate(kinds):
        lab = np.array(["bg"] * 50 + [kind] * 100 + ["bg"] * 50)
        level = {"bg": 0.0, "x": 4.0, "y": -4.0}
        X = np.array([[level[v]] for v in lab]) + rng.normal(0, 0.3, (200, 1))
        frames[f"c{i}"], labels[f"c{i}"] = np.c_[X, rng.normal(0, 1, (200, 1))], lab
    return frames, labels


def test_a_fold_lacking_a_label_of_its_test_clips_is_warned_about():
    # the only clip of label x is tested by a model that never saw x: it was segmented
    # "bg" throughout (boundary F 0) without a word
    from audiopipe.stages.segment.supervised import (
        FrameSegmenter,
        SegmentWarning,
        out_of_fold_segments,
    )

    seg = FrameSegmenter(hop_s=0.05, context_s=0.1, min_duration_s=0.5)
    frames, labels = _labelled_clips(["x", "y", "y", "y"])
    with pytest.warns(SegmentWarning, match=r"fold \d: its training part has no frames of 'x'"):
        oof = out_of_fold_segments(seg, frames, labels, n_splits=4)
    assert "x" not in {s[2] for s in oof["c0"]} and set(oof) == set(labels)
    frames, labels = _labelled_clips(["x", "x", "y", "y"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SegmentWarning)
        oof = out_of_fold_segments(seg, frames, labels, n_splits=4)
    assert {s[2] for s in oof["c0"]} == {"bg", "x"}


ROUND8 = ("identity_spread_weight", "identity_width_weight", "identity_compare")


def test_round8_identity_options_are_stage_parameters_checked_before_any_work(fresh_ds, tmp_path):
    """Round 8's options of the S1/S2 identity check are ``segment`` parameters: a bad value
    is refused naming its key before any work, and so are options of a check that is off."""
    from audiopipe.stages.runner import check_params

    heart = {"mode": "heart", "reference": "refs"}
    assert check_params("segment", {**heart, **dict.fromkeys(ROUND8, 1)}, where="s") == []
    bad = {"identity_spread_weight": -1, "identity_width_weight": "wide",
           "identity_compare": "maybe"}
    assert check_params("segment", {**heart, **bad}, where="s") == [
        "s.identity_spread_weight: must be >= 0, got -1",
        "s.identity_width_weight: must be a number, got 'wide'",
        "s.identity_compare: must be true or false, got 'maybe'",
    ]
    (problem,) = check_params(
        "segment", {**heart, "identity_check": False, "identity_compare": True}, where="s")
    assert problem.startswith("s: identity_compare set but identity_check is false")
    with pytest.raises(ConfigError, match=r"segment\.identity_width_weight: must be >= 0"):
        run_stage(fresh_ds, "segment", {**heart, "reference": str(tmp_path),
                                        "identity_width_weight": -0.5})
    assert "segments" not in fresh_ds.table_names()


def test_round8_identity_options_reach_the_estimator_with_its_defaults(tmp_path):
    """The stage builds its estimator with the options given (the spread cue is weighed, the
    exchanged path decoded); not given, they are the estimator's own defaults, so a stored
    run's outputs do not change."""
    from audiopipe.stages.heart import HeartSegmenter
    from audiopipe.stages.heart.references import points_to_intervals
    from audiopipe.stages.params import resolve
    from audiopipe.stages.segment.heart import estimator

    raw = {"mode": "heart", "reference": "refs"}
    plain = resolve(segment.Segment.params, raw, base_dir=tmp_path)
    set_ = resolve(segment.Segment.params, {**raw, "identity_spread_weight": "1",
                                            "identity_width_weight": 0.5,
                                            "identity_compare": "true"}, base_dir=tmp_path)
    default = HeartSegmenter().get_params()
    assert {k: estimator(plain).get_params()[k] for k in ROUND8} == {k: default[k] for k in ROUND8}
    assert {k: estimator(set_).get_params()[k] for k in ROUND8} == {
        "identity_spread_weight": 1.0, "identity_width_weight": 0.5, "identity_compare": True}

    def rec(seed):
        y, sr, s1, s2 = segment.synthetic_pcg(duration=10.0, seed=seed)
        return (y, sr), points_to_intervals(np.r_[s1, s2], ["S1"] * len(s1) + ["S2"] * len(s2))

    train = [rec(0), rec(1)]
    (y, sr), _ = rec(2)
    fitted = {k: estimator(p).fit([r for r, _ in train], [i for _, i in train])
              for k, p in (("plain", plain), ("set", set_))}
    a, b = (fitted[k].analyse(y, sr)["identity"] for k in ("plain", "set"))
    assert a["spread"] == 0.0 and a["width"] == 0.0 and "evidence_swapped" not in a
    assert b["spread"] != 0.0 and b["width"] != 0.0 and "evidence_swapped" in b


def test_round9_regularity_options_are_stage_parameters(tmp_path):
    """Round 9's regularity options reach the estimator from the stage (its decisive rule,
    on by default, can be turned off: the estimator's margin ``None``); bad values and a
    weight for a check that is off are refused naming the key."""
    from audiopipe.stages.params import resolve
    from audiopipe.stages.runner import check_params
    from audiopipe.stages.segment.heart import estimator

    raw = {"mode": "heart", "reference": "refs"}
    got = estimator(resolve(segment.Segment.params, raw, base_dir=tmp_path)).get_params()
    assert got["identity_regularity_margin"] == 0.5 and got["identity_regularity_weight"] == 0
    off = {**raw, "identity_regularity": False, "identity_regularity_weight": 2}
    got = estimator(resolve(segment.Segment.params, off, base_dir=tmp_path)).get_params()
    assert got["identity_regularity_margin"] is None and got["identity_regularity_weight"] == 2
    got = estimator(resolve(segment.Segment.params, {**raw, "identity_regularity_margin": 1.5},
                            base_dir=tmp_path)).get_params()
    assert got["identity_regularity_margin"] == 1.5
    assert check_params("segment", {**raw, "identity_regularity_margin": -1}, where="s") == [
        "s.identity_regularity_margin: must be >= 0, got -1"]
    (problem,) = check_params("segment", {**raw, "identity_check": False,
                                          "identity_regularity_weight": 1}, where="s")
    assert problem.startswith("s: identity_regularity_weight set but identity_check is false")


def test_a_recording_without_sound_gets_an_errors_row_not_invented_beats(tmp_path):
    """Heart mode decoded 19-21 segments in 5 s of zeros, with confidences like a real clip's;
    periodic mode gave none and said nothing, and did it again every run. Both now record the
    clip in ``errors`` (NoSound) and give it no segments."""
    import audiopipe
    from audiopipe.stages.segment.periodic import synthetic_pcg
    from tests.stages.mir_data import build_dataset

    files, lines = {}, ["file,sound,time_s"]
    for i, bpm in enumerate((70, 85)):
        y, sr, s1, s2 = synthetic_pcg(duration=10.0, bpm=bpm, seed=i)
        files[f"p{i}.wav"] = (y, sr)
        lines += [f"p{i}.wav,{k},{t:.4f}" for k, ts in (("S1", s1), ("S2", s2)) for t in ts]
    files["new.wav"] = synthetic_pcg(duration=10.0, bpm=75, seed=7)[:2]
    files["silence.wav"] = (np.zeros(5 * 4000, np.float32), 4000)
    # a silent recording with a preamp's noise floor (-80 dBFS) got invented beats (review 8:
    # periodic mode's at confidence 1.00), and so did the same noise 50 dB louder (review 12)
    rng = np.random.default_rng(3)
    files["floor.wav"] = ((1e-4 * rng.standard_normal(5 * 4000)).astype(np.float32), 4000)
    files["loud.wav"] = ((0.03 * rng.standard_normal(5 * 4000)).astype(np.float32), 4000)
    ds = build_dataset(tmp_path, files, sample_rate=4000)
    ref = tmp_path / "ref.csv"
    ref.write_text("\n".join(lines) + "\n")
    clips = ds.table("clips", ["clip_id", "uri"]).to_pylist()
    cid = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"] for r in clips}
    for mode in ("heart", "periodic"):
        r = run_stage(ds, "segment", {"mode": mode, "reference": str(ref)})
        seg = ds.table("segments").to_pandas()
        silent = {cid[f] for f in ("silence.wav", "floor.wav", "loud.wav")}
        assert not silent & set(seg.clip_id), mode
        assert {cid["new.wav"], cid["p0.wav"]} <= set(seg.clip_id), mode
        assert r["clips_failed"] == 3
        errs = [e for e in audiopipe.open_dataset(ds.location.root, "d").table("errors").to_pylist()
                if e["run_id"] == r["run_id"]]
        assert sorted((e["clip_id"], e["step"], e["error_type"]) for e in errs) == sorted(
            (c, "segment", "NoSound") for c in silent), mode
        assert all("no sound" in e["message"] for e in errs)
        assert any("noise floor" in e["message"] for e in errs)


def test_sound_contrast_tells_heart_sounds_from_a_noise_floor_at_any_level():
    """The NoSound check is relative to the recording's own floor: a heart recording played
    40 dB quieter is still one; a noise floor of any colour and level is not."""
    from audiopipe.stages.segment.heart import SOUND_CONTRAST, check_sound, sound_contrast
    from audiopipe.stages.segment.periodic import synthetic_pcg

    y, sr = synthetic_pcg(duration=10.0, bpm=70, seed=1)[:2]
    for gain in (1.0, 1e-2):  # (its floor then at -86 dBFS)
        assert sound_contrast(gain * y, sr) > 1.5 * SOUND_CONTRAST
        check_sound(gain * y, sr)
    rng = np.random.default_rng(0)
    white = rng.standard_normal(10 * sr)
    brown = np.cumsum(white) / np.sqrt(10 * sr)
    for noise in (white, brown):
        for level in (1e-4, 0.3):
            assert sound_contrast(level * noise, sr) < SOUND_CONTRAST
        for level in (1e-4, 0.3):
            with pytest.raises(segment.heart.NoSound, match="noise floor"):
                check_sound(level * noise, sr)
        with pytest.raises(segment.heart.NoSound, match="noise floor"):  # a DC offset: no sound
            check_sound(np.r_[1e-4 * noise + 0.004, np.full(10 * sr, 0.004)], sr)
        bumped = 1e-4 * noise  # one 20 ms bump at -26 dBFS is not a sound (review 11)
        bumped[sr : sr + sr // 50] += 0.05 * np.hanning(sr // 50)
        with pytest.raises(segment.heart.NoSound, match="noise floor"):
            check_sound(bumped, sr)
    assert np.isnan(sound_contrast(np.zeros(sr), sr))  # (digital silence: no floor at all)


def test_a_loud_or_mostly_quiet_recording_is_not_called_soundless():
    """Review 10: a few seconds of heart sounds in a long quiet take (contrast 1.3-1.6 over the
    whole by version 7's statistic) and hard-clipped heart sounds were refused as having "no
    sound"."""
    from audiopipe.stages.segment.heart import check_sound
    from audiopipe.stages.segment.periodic import synthetic_pcg

    y, sr = synthetic_pcg(duration=5.0, bpm=70, seed=2)[:2]
    y = 0.5 * y / np.max(np.abs(y))
    floor = np.sqrt(np.percentile(y[: len(y) // 80 * 80].reshape(-1, 80).var(axis=1), 30))
    take = np.r_[y, floor * np.random.default_rng(1).standard_normal(35 * sr)]
    check_sound(take, sr)
    for gain in (15, 30):
        check_sound(np.clip(gain * y, -1, 1), sr)


def test_every_real_heart_recording_has_a_sound_above_its_noise_floor(corpora):
    """The 16 real recordings (PASCAL's iPhone app, CirCor's children) are all segmented."""
    from audiopipe.stages.segment.heart import check_sound

    heart = corpora / "heart"
    paths = sorted((heart / "circor").glob("*.wav")) + sorted((heart / "pascal_a").rglob("*.flac"))
    assert len(paths) == 16
    for path in paths:
        y, sr = sf.read(str(path), dtype="float64", always_2d=True)
        check_sound(y.mean(axis=1), sr)

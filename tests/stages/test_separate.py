"""Separation: HPSS and NMF on generated mixtures, real speech+music and real stems, run()."""

from __future__ import annotations

import os

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from audiopipe.config import ConfigError
from audiopipe.stages import run_stage
from audiopipe.stages.separate import NMFSeparator, hpss, hpss_audio, oracle_masks
from tests.stages.mir_data import build_dataset, clip_ids_by_stem, read_audio

SR = 16000


def _sdr(refs, ests):
    """Mean SDR (dB) with mir_eval's bss_eval (fixed source order)."""
    sdr, _, _, _ = mir_eval.separation.bss_eval_sources(
        np.stack(refs), np.stack(ests), compute_permutation=False
    )
    return sdr


def _tone_and_clicks(sr=22050, dur=2.0):
    t = np.arange(int(dur * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 880 * t)
    clicks = np.zeros_like(t)
    for s in range(0, t.size - 64, sr // 4):
        clicks[s : s + 64] = np.random.default_rng(s).standard_normal(64)
    return tone.astype(np.float32), clicks.astype(np.float32)


def test_hpss_generated():
    tone, clicks = _tone_and_clicks()
    h, p = hpss_audio(tone + clicks)
    assert np.corrcoef(h, tone)[0, 1] > 0.95
    assert np.corrcoef(p, clicks)[0, 1] > 0.8
    mh, mp = hpss(np.abs(np.random.default_rng(0).standard_normal((64, 50))), mask=True)
    assert np.allclose(mh + mp, 1.0)


def test_supervised_generated_beats_mixture():
    sr = 22050
    rng = np.random.default_rng(0)
    t = np.arange(2 * sr) / sr
    a = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
    b = (0.1 * rng.standard_normal(t.size)).astype(np.float32)
    sep = NMFSeparator(n_components=4, max_iter=80).fit([a[::-1].copy(), b[::-1].copy()], sr=sr)
    est = sep.separate(a + b)
    assert est.shape == (2, a.size)
    assert np.all(_sdr([a, b], list(est)) > 5.0)


def test_speech_music_supervised_between_bounds(corpora):
    """Real speech (LibriSpeech utterance) + real music at 0 dB; bases from other data."""
    speech = read_audio(corpora / "music" / "198-209-0000.ogg", SR, dur_s=5.0)
    song = corpora / "music" / "Kevin_MacLeod_-_Vibe_Ace.ogg"
    music = read_audio(song, SR, offset_s=20, dur_s=5.0)
    music *= np.sqrt(np.mean(speech**2) / np.mean(music**2))
    train_speech = np.concatenate(
        [read_audio(corpora / "fsdd" / "recordings" / f"{d}_jackson_0.wav", SR) for d in range(10)]
    )
    train_music = read_audio(song, SR, offset_s=0, dur_s=8.0)
    sep = NMFSeparator(n_components=16, n_fft=1024, hop_length=256, max_iter=100)
    est = sep.fit([train_speech, train_music], sr=SR).separate(speech + music)
    ours = _sdr([speech, music], list(est))
    mix = _sdr([speech, music], [speech + music] * 2)
    oracle = _sdr([speech, music], list(oracle_masks([speech, music], 1024, 256)))
    assert np.all(ours > mix + 4.0) and np.all(ours < oracle)


def test_hpss_real_stems(corpora):
    """Rock multitrack: the percussive part correlates with the drum stem, harmonic with the rest."""
    base = corpora / "stems" / "mdb_musicdelta" / "MusicDelta_Rock"
    stems = [
        read_audio(base / "MusicDelta_Rock_STEMS" / f"MusicDelta_Rock_STEM_{i:02d}.flac", dur_s=6.0)
        for i in range(1, 6)
    ]
    drums, rest = stems[0], np.sum(stems[1:], axis=0)
    h, p = hpss_audio(drums + rest)
    sdr = _sdr([rest, drums], [h, p])
    base_sdr = _sdr([rest, drums], [drums + rest] * 2)
    assert sdr[1] > base_sdr[1] + 3.0  # drums from the mix: better than the mix itself


def test_unsupervised_deterministic_and_bad_input():
    tone, clicks = _tone_and_clicks(dur=1.0)
    sep = NMFSeparator(n_components=6, max_iter=50, random_state=3)
    a, b = sep.separate(tone + clicks), sep.separate(tone + clicks)
    assert a.shape == (2, tone.size) and np.array_equal(a, b)
    assert np.allclose(a.sum(axis=0), tone + clicks, atol=1e-3)  # masks sum to one
    z = sep.separate(np.zeros(22050, np.float32))
    assert z.shape == (2, 22050) and not z.any()
    short = sep.separate(0.1 * np.ones(300, np.float32))
    assert short.shape == (2, 300)
    stereo = np.stack([tone + clicks, tone + clicks])
    assert np.allclose(sep.separate(stereo), a, atol=1e-6)
    h, p = hpss_audio(np.zeros(100, np.float32))
    assert h.shape == (100,) and not h.any()
    with pytest.raises(ValueError):
        NMFSeparator().fit([tone])


@pytest.mark.parametrize("hop", [192, 256, 512])
def test_hop_longer_than_half_the_frame_is_refused(hop):
    # at hop 512 > n_fft 256 half of every stem was zeros; at 192 stems blew up between
    # frames (the Hann window's sum of squares nears 0 with < 50% overlap)
    y = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    with pytest.raises(ValueError, match=r"hop_length \(\d+\) must be <= n_fft // 2 \(128\)"):
        hpss_audio(y, n_fft=256, hop_length=hop)
    with pytest.raises(ValueError, match="n_fft // 2"):
        NMFSeparator(n_fft=256, hop_length=hop).separate(y)
    with pytest.raises(ValueError, match="n_fft // 2"):  # the upper bound had no check
        oracle_masks([y, y[::-1].copy()], n_fft=256, hop_length=hop)
    from audiopipe.stages.runner import check_params

    for method in ("hpss", "nmf"):
        (problem,) = check_params("separate", {"method": method, "n_fft": 256, "hop_length": hop},
                                  where="separate")
        assert "hop_length" in problem and "n_fft // 2 (128)" in problem
    h, p = hpss_audio(y, n_fft=256, hop_length=128)  # 50% overlap: the sum is the input
    assert np.allclose(h + p, y, atol=1e-4)


@pytest.mark.parametrize(("raw", "says"), [
    ({"method": "hpss", "kernel_size": 2}, "kernel_size: must be >= 3, got 2"),
    ({"method": "nmf", "n_components": 1, "n_sources": 3},
     "n_components (1) must be >= n_sources (3)"),
    ({"method": "mask", "label_column": "l", "sources": ["a", "b"], "gain_db": [6, -6]},
     "gain_db: need two numbers (low, high) with low <= high, got [6.0, -6.0]"),
    ({"method": "mask", "label_column": "l", "sources": ["a", "a"]}, "listed twice"),
    ({"method": "supervised", "label_column": "l", "sources": ["a", "b", "a"]}, "listed twice"),
])
def test_inconsistent_parameters_are_refused_before_any_work(raw, says):
    # each was accepted: kernel 2 is the larger of a pair (1: HPSS halves the mixture), one
    # NMF basis for three sources was silently raised to three, reversed gains failed in
    # training, a source listed twice made two stems of one name
    from audiopipe.stages.runner import check_params

    (problem,) = check_params("separate", raw, where="separate")
    assert says in problem
    if raw["method"] == "hpss":
        with pytest.raises(ValueError, match="must be >= 3"):
            hpss(np.ones((5, 7)), kernel_size=raw["kernel_size"])
        assert hpss(np.ones((5, 7)), kernel_size=30)[0].shape == (5, 7)  # even: as librosa
    fine = {"hpss": {"kernel_size": 3}, "nmf": {"n_components": 3}, "mask": {"gain_db": [-3, -3]},
            "supervised": {}}[raw["method"]]
    if "sources" in raw:
        fine["sources"] = ["a", "b"]
    assert check_params("separate", {**raw, **fine}, where="separate") == []


def test_run_hpss_and_supervised(tmp_path):
    sr = 22050
    tone, clicks = _tone_and_clicks(sr, dur=2.0)
    t2, c2 = _tone_and_clicks(sr, dur=1.5)
    ds = build_dataset(
        tmp_path,
        {
            "mixture.wav": (tone + clicks, sr),
            "stereo.wav": (np.stack([tone + clicks, tone], axis=1), sr),
            "silence.wav": (np.zeros(sr, np.float32), sr),
            "short.wav": (0.1 * np.ones(200, np.float32), sr),
            "harmonic.wav": (t2 * 1.1, sr),
            "percussive.wav": (c2, sr),
        },
    )
    ids = clip_ids_by_stem(ds)
    rep = run_stage(ds, "separate", {"method": "hpss"})
    st = ds.table("stems").to_pandas()
    assert st.error.isna().all() and len(st) == 2 * len(ids)
    row = st[(st.clip_id == ids["mixture"]) & (st.stem == "percussive")].iloc[0]
    y, got_sr = sf.read(row.uri)
    assert got_sr == sr and y.size == tone.size and np.corrcoef(y, clicks)[0, 1] > 0.7
    assert os.path.isfile(rep["plots"][0]) and rep["run_id"] in row.uri
    # supervised: examples are the clips labelled harmonic / percussive (labels = file stems)
    params = {
        "method": "supervised",
        "label_column": "label",
        "sources": ["harmonic", "percussive"],
        "targets": ["mixture"],
        "n_components": 4,
        "max_iter": 60,
    }
    r2 = run_stage(ds, "separate", params)
    st2 = ds.table("stems").to_pandas()
    assert set(st2.stem) == {"harmonic", "percussive"} and set(st2.clip_id) == {ids["mixture"]}
    h = sf.read(st2[st2.stem == "harmonic"].uri.iloc[0])[0]
    assert np.corrcoef(h, tone)[0, 1] > 0.9
    # the second run did not replace the first run's files, and its table version stays
    assert all(os.path.isfile(u) for u in st.uri) and all(r2["run_id"] in u for u in st2.uri)
    import audiopipe.store.tables as tables

    first = tables.read_table(ds.location, "stems", version=rep["tables"]["stems"]).to_pandas()
    assert sorted(first.uri) == sorted(st.uri)
    from audiopipe.stages._common import StageInputError

    with pytest.raises(StageInputError):
        run_stage(ds, "separate", {"method": "supervised", "label_column": "nope",
                                    "sources": ["a", "b"]})
    with pytest.raises(ConfigError, match="label_column and sources"):
        run_stage(ds, "separate", {"method": "supervised", "sources": ["a"]})


def test_run_mask_speech_music(corpora, tmp_path):
    """method mask through run_stage on real isolated speech and music clips: the stem named
    speech is the held-out speaker's speech (not the music), stems sum to the mixture, the
    held-out scores sit below the ideal ratio mask, the model reloads with skops."""
    import csv

    from audiopipe.stages._common import load_model
    from audiopipe.stages.separate import Separate

    from ._ingest import ingest

    src = tmp_path / "corpus"
    src.mkdir()
    sp, mu = corpora / "speech", corpora / "music"
    files = {
        **{f"aew{i}.flac": (sp / f"cmu_arctic_us_aew_a000{i}.flac", "speech", 0.0)
           for i in (1, 2, 3)},
        "axb4.flac": (sp / "cmu_arctic_us_axb_a0004.flac", "speech", 0.0),
        "vibe.flac": (mu / "Kevin_MacLeod_-_Vibe_Ace.ogg", "music", 20.0),
        "dance.flac": (mu / "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_"
                            "orchestra).ogg", "music", 20.0),
        "bot.flac": (mu / "Jason_Shaw_-_Thought_Bot.ogg", "music", 20.0),
    }
    with (src / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for name, (path, label, off) in files.items():
            sf.write(src / name, read_audio(path, SR, off, 4.0), SR)
            w.writerow([name, label])
        # the target: a speaker and a track nothing was trained on, at 0 dB
        s = read_audio(sp / "sisec2011_dev1_female4_src_1.flac", SR, 0.0, 4.0)
        m = read_audio(mu / "Kevin_MacLeod_-_Morning.ogg", SR, 5.0, 4.0)
        m = m * np.sqrt(np.mean(s**2) / np.mean(m**2))
        mix = 0.5 * (s + m) / np.max(np.abs(s + m))
        sf.write(src / "mix.flac", mix, SR)
        w.writerow(["mix.flac", "mixture"])
    ds = ingest(tmp_path / "out", "sep", str(src / "*.flac"), src / "labels.csv", SR,
                {"compute": {"rms": {}}})
    p = {"method": "mask", "label_column": "label", "sources": ["speech", "music"],
         "mask_sr": 8000, "hidden_units": 48, "n_mixtures": 30, "mix_duration_s": 2.0,
         "max_iter": 10, "holdout": 0.34}
    rep = run_stage(ds, "separate", p)
    st = ds.table("stems").to_pandas()
    assert list(st.stem) == ["speech", "music"] and st.error.isna().all()
    est = {r.stem: sf.read(r.uri, dtype="float32")[0] for r in st.itertuples()}
    np.testing.assert_allclose(est["speech"] + est["music"], mix, atol=2e-4)  # 16-bit stems
    scale = 0.5 / np.max(np.abs(s + m))
    s, m = s * scale, m * scale

    def corr(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    print("mask stage on real clips:", rep["metrics"],
          {k: (corr(v, s), corr(v, m)) for k, v in est.items()})
    assert corr(est["speech"], s) > corr(est["speech"], m) + 0.1
    assert corr(est["music"], m) > corr(est["music"], s) + 0.1
    met = rep["metrics"]
    assert met["n_holdout_clips"] == 2 and met["n_train_clips"] == 5
    assert met["irm_sdr_speech"] > met["sdr_speech"] and met["irm_sdr_speech"] > 8
    model = load_model(ds, rep["model"], Separate.trusted)
    assert model.sources_ == ("speech", "music")
    assert os.path.isfile(rep["plots"][0])
    with pytest.raises(ConfigError, match="method mask needs label_column and sources"):
        run_stage(ds, "separate", {"method": "mask", "sources": ["speech"]})


def test_mask_split_follows_the_recordings_not_where_they_are(tmp_path):
    """The same labelled clips ingested at two paths (so with other clip ids) give the mask
    method the same held-out clips and training order: the same held-out scores."""
    from ._ingest import ingest

    sr, rng = 8000, np.random.default_rng(3)
    t = np.arange(sr) / sr
    clips = {}
    for i in range(3):  # "voice": a vibrato harmonic tone; "noise": band-limited bursts
        f0 = 150 + 40 * i
        tone = sum(np.sin(2 * np.pi * k * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)) / k
                   for k in range(1, 6))
        clips[f"voice{i}.wav"] = (0.2 * tone, "voice")
        clips[f"noise{i}.wav"] = (0.2 * rng.standard_normal(sr) * (t % 0.25 < 0.1), "noise")
    scores, ids = [], []
    for where in ("a/deep/folder", "elsewhere"):
        src = tmp_path / where
        src.mkdir(parents=True)
        rows = ["path,label"]
        for name, (y, label) in clips.items():
            sf.write(src / name, y.astype(np.float32), sr)
            rows.append(f"{name},{label}")
        (src / "labels.csv").write_text("\n".join(rows) + "\n")
        ds = ingest(src / "out", "sep", str(src / "*.wav"), src / "labels.csv", sr,
                    {"compute": {"rms": {}}})
        ids.append(set(ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()))
        p = {"method": "mask", "label_column": "label", "sources": ["voice", "noise"],
             "mask_sr": 8000, "hidden_units": 16, "n_mixtures": 8, "mix_duration_s": 1.0,
             "max_iter": 3, "holdout": 0.34}
        met = run_stage(ds, "separate", p)["metrics"]
        scores.append({k: v for k, v in met.items() if k.startswith("sdr_")})
    assert not ids[0] & ids[1]  # the clip ids do differ between the two places
    assert scores[0].keys() and scores[0].keys() == scores[1].keys()
    for k in scores[0]:
        assert scores[0][k] == pytest.approx(scores[1][k], rel=1e-4, abs=1e-4), k

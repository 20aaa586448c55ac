"""Landmark fingerprinting: core on generated signals, the dataset stage, real music."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiopipe
from audiopipe.config import parse_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from audiopipe.stages import fingerprint as fp
from audiopipe.stages import run_stage
from audiopipe.stages._fppeaks import FINE_FLAG

SR = 22050


def song(seed: int, dur: float = 12.0, sr: int = SR) -> np.ndarray:
    """A random melody of harmonic notes (0.1-0.4 s) over a soft noise floor."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(dur * sr), np.float32)
    pos = 0
    while pos < out.size:
        n = int(rng.uniform(0.1, 0.4) * sr)
        f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
        t = np.arange(n) / sr
        env = np.exp(-3 * t)
        note = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5)) * env
        m = min(n, out.size - pos)
        out[pos : pos + m] += 0.3 * note[:m]
        pos += n
    return out + 0.003 * rng.standard_normal(out.size).astype(np.float32)


def whale(seed: int, dur: float = 12.0, sr: int = SR) -> np.ndarray:
    """Narrowband low calls: 1-2 s tones gliding between 90 and 350 Hz, silence between."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(dur * sr), np.float32)
    pos = int(0.2 * sr)
    while pos < out.size:
        n = int(rng.uniform(1.0, 2.0) * sr)
        t = np.arange(n) / sr
        f = np.geomspace(rng.uniform(90, 350), rng.uniform(90, 350), n)
        ph = 2 * np.pi * np.cumsum(f) / sr
        call = (np.sin(ph) + 0.3 * np.sin(2 * ph)) * np.sqrt(np.abs(np.sin(np.pi * t / t[-1])))
        m = min(n, out.size - pos)
        out[pos : pos + m] += 0.5 * call[:m]
        pos += n + int(rng.uniform(0.3, 0.8) * sr)
    return out + 1e-3 * rng.standard_normal(out.size).astype(np.float32)


def bark(seed: int, dur: float = 5.0, sr: int = SR) -> np.ndarray:
    """One short call (0.25-0.4 s, harmonics of a falling 300-800 Hz pitch) in a clip that is
    silent otherwise: an ESC-10 dog bark's shape, the hardest recordings at 0 dB white noise
    (the noise is scaled to the whole clip, the call has few peaks to offer)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(dur * sr), np.float32)
    n = int(rng.uniform(0.25, 0.4) * sr)
    t = np.arange(n) / sr
    ph = 2 * np.pi * np.cumsum(np.geomspace(rng.uniform(500, 800), rng.uniform(300, 450), n)) / sr
    env = np.sqrt(np.abs(np.sin(np.pi * t / t[-1]))) * np.exp(-4 * t)
    call = sum(np.sin(h * ph + rng.uniform(0, 6)) * rng.uniform(0.2, 1) / h for h in range(1, 9))
    start = int(rng.uniform(0.5, dur - 0.6) * sr)
    out[start : start + n] += 0.5 * call * env
    return out + 1e-4 * rng.standard_normal(out.size).astype(np.float32)


def build(songs: list[np.ndarray], **peak_params) -> fp.FingerprintIndex:
    hs, ts, cs = [], [], []
    for i, y in enumerate(songs):
        h, t = fp.landmarks(y, SR, **peak_params)
        hs.append(h)
        ts.append(t)
        cs.append(np.full(h.size, i))
    return fp.FingerprintIndex.from_arrays(
        np.concatenate(hs),
        np.concatenate(ts),
        np.concatenate(cs),
        [f"s{i}" for i in range(len(songs))],
        peak_params=peak_params,
    )


def noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    # a stream of its own: song()/whale() floors come from default_rng(seed) too, and the same
    # noise in query and index would match by itself
    n = np.random.default_rng([seed, 7]).standard_normal(x.size).astype(np.float32)
    return x + n * np.sqrt(np.mean(x**2) / (np.mean(n**2) * 10 ** (snr_db / 10)))


def query(idx: fp.FingerprintIndex, x: np.ndarray) -> dict:
    return idx.match(*fp.query_landmarks(x, SR, idx.peak_params))


@pytest.mark.parametrize("shape", [(512, 431), (3, 2), (1, 1), (20, 7), (7, 40)])
@pytest.mark.parametrize("half", [(5, 2), (1, 1), (0, 3)])
def test_max_filter_equals_scipy_value_for_value(shape, half):
    """The numpy local maximum must equal scipy's exactly: indexes built with one and queries
    peaked with the other must give the same landmarks (ties included: values on a grid)."""
    from scipy.ndimage import maximum_filter

    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    H = np.round(rng.standard_normal(shape) * 3).astype(np.float32)
    H[0, 0] = -np.inf if H.size > 1 else H[0, 0]
    size = (2 * half[0] + 1, 2 * half[1] + 1)
    want = maximum_filter(H, size=size, mode="constant", cval=-np.inf)
    got = fp._max_filter(H, *half)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_landmark_hashes_pack_f1_df_dt():
    y = song(0)
    h, t = fp.landmarks(y, SR)
    assert h.dtype == np.int64 and t.dtype == np.int32 and h.size == t.size > 100
    fine = (h & FINE_FLAG) > 0  # the second layer (round 6): bit 20
    assert fine.any() and (~fine).any() and h.max() < 1 << 21
    f1, df, dt = (h >> 12) & 255, ((h >> 6) & 63) - 32, h & 63
    assert f1[~fine].min() >= fp._MIN_BIN and f1[fine].min() >= fp._MIN_BIN * 4  # 2048/512
    assert np.abs(df).max() <= 31 and dt.min() >= 1 and dt.max() <= 63
    # ~45 (first layer) and ~20 (second) peaks/s * fanout 8 pairs per peak at most
    assert (~fine).sum() <= 12 * 45 * 8 and fine.sum() <= 12 * 20 * 8
    # fine_fft=0: the first layer alone, as indexes built before round 6 hold it
    h0, t0 = fp.landmarks(y, SR, fine_fft=0)
    assert np.array_equal(h0, h[~fine]) and np.array_equal(t0, t[~fine])
    for bad in (512, 1000, -1):
        with pytest.raises(ValueError, match="fine_fft"):
            fp.landmarks(y, SR, fine_fft=bad)
    # the stage refuses them before any work; 0 (one layer) and other powers of two pass
    from audiopipe.stages.runner import check_params

    for bad in (512, 1000):
        problems = check_params("fingerprint", {"fine_fft": bad}, where="fingerprint")
        assert len(problems) == 1 and "fine_fft" in problems[0], problems
    for ok in (0, 1024, 4096):
        assert check_params("fingerprint", {"fine_fft": ok}, where="fingerprint") == []


def test_second_layer_keeps_more_of_a_melody_under_white_noise():
    """Round 6 (issue 12 §4): the 2048-point layer (below 1.4 kHz) recovers a larger share of
    a tonal recording's landmarks from a query at 0 dB white noise than the 512-point layer
    (a longer window raises a held partial over the noise in its bin): measured 3-5 times
    the share on these melodies."""
    off = round(2 * fp.SR / fp.HOP_LENGTH)  # the query starts 2 s in
    for seed in range(4):
        y = song(seed)
        h, t = fp.landmarks(y, SR)
        qh, qt = fp.query_landmarks(noisy(y[2 * SR : 7 * SR], 0.0, seed), SR)
        share = []
        for layer in (False, True):
            im, qm = ((h & FINE_FLAG) > 0) == layer, ((qh & FINE_FLAG) > 0) == layer
            inside = (t >= off) & (t < off + 4 * fp.SR // fp.HOP_LENGTH) & im
            q = {(int(a), int(b)) for a, b in zip(qh[qm], qt[qm], strict=True)}
            got = [any((int(a), int(b) - off + d) in q for d in (-1, 0, 1))
                   for a, b in zip(h[inside], t[inside], strict=True)]
            share.append(np.mean(got))
        assert share[1] > 1.5 * share[0] and share[1] > 0.1, (seed, share)


def test_indexes_of_one_layer_keep_their_queries_and_calibration():
    """An index described by :data:`LEGACY_PEAK_PARAMS` (built before round 6) is queried
    without the second layer, with round 4's calibration; the default shape uses
    :data:`CONF_COEF`."""
    old = fp.FingerprintIndex(peak_params=fp.LEGACY_PEAK_PARAMS)
    assert old.coef == fp.CONF_COEFS[(5, 2, 0)] != fp.CONF_COEF
    assert fp.FingerprintIndex().coef == fp.CONF_COEF
    qh, _ = fp.query_landmarks(song(1)[: 5 * SR], SR, old.peak_params)
    assert qh.size and not ((qh & FINE_FLAG) > 0).any()
    assert ((fp.query_landmarks(song(1)[: 5 * SR], SR)[0] & FINE_FLAG) > 0).any()


def test_shifted_analyses_pool_distinct_landmarks():
    """``shifts`` adds the landmarks of analyses offset by fractions of a hop: a superset of
    the plain analysis, no duplicates, sorted like it; a quarter-hop-shifted excerpt meets
    more of the index's hashes at its offset than with one analysis."""
    y = song(3)
    h1, t1 = fp.landmarks(y, SR)
    h4, t4 = fp.landmarks(y, SR, shifts=4)
    k1, k4 = (t1.astype(np.int64) << 21) | h1, (t4.astype(np.int64) << 21) | h4
    assert np.all(np.isin(k1, k4)) and np.unique(k4).size == k4.size > 1.5 * k1.size
    assert np.all(np.diff(k4) > 0) and t4.dtype == np.int32
    with pytest.raises(ValueError, match="shifts"):
        fp.landmarks(y, SR, shifts=0)
    idx = build([y, song(4)])
    x = noisy(y[2 * SR + 1000 : 7 * SR + 1000], 0.0, 3)  # not aligned to the index's frames
    one = idx.match(*fp.landmarks(x, SR, density=120.0, fanout=16))
    four = idx.match(*fp.landmarks(x, SR, density=120.0, fanout=16, shifts=4))
    assert one["clip_id"] == four["clip_id"] == "s0"
    assert four["votes"] > one["votes"]


def test_noise_floor_threshold_drops_the_peaks_of_noise():
    """``floor_db``: peaks of white noise hardly stand 10 dB above their band's median level,
    a melody's partials do."""
    noise = np.random.default_rng(5).standard_normal(5 * SR).astype(np.float32)
    y = song(5)[: 5 * SR]
    n0, n1 = (fp.landmarks(noise, SR, floor_db=d)[0].size for d in (0.0, 10.0))
    s0, s1 = (fp.landmarks(y, SR, floor_db=d)[0].size for d in (0.0, 10.0))
    assert n1 < 0.2 * n0 and s1 > 0.5 * s0


def test_identifies_excerpt_with_offset_under_noise():
    songs = [song(s) for s in range(4)]
    idx = build(songs)
    for i, y in enumerate(songs):
        start = 3 * SR + 1234 * i  # not aligned to the hop
        x = y[start : start + 5 * SR]
        for snr in (None, 5.0):
            m = query(idx, x if snr is None else noisy(x, snr, i))
            assert m["clip_id"] == f"s{i}", (i, snr, m)
            assert abs(m["offset_s"] - start / SR) < 0.05
            assert 0.5 <= m["confidence"] <= 1.0


def test_narrowband_low_call_found_at_0db_white_noise():
    """The earlier misses were narrowband, low sounds (a whale, a dog) under white noise."""
    idx = build([song(0), song(1), whale(2)])
    x = whale(2)[2 * SR : 7 * SR]
    m = query(idx, noisy(x, 0.0, 2))
    assert m["clip_id"] == "s2", m
    assert abs(m["offset_s"] - 2.0) < 0.05 and m["confidence"] >= fp.MIN_CONFIDENCE
    # a call of the same kind that is not indexed is rejected, clean and noisy
    for x in (whale(9)[: 5 * SR], noisy(whale(9)[: 5 * SR], 0.0)):
        assert query(idx, x)["clip_id"] is None


def test_short_call_found_at_0db_white_noise():
    """Round 3 (issue 12 §4): with ``f_sd=2`` (peaks: local maxima over ±2 bins x ±2 frames)
    a 0.3 s call offers enough peaks to be found under white noise as loud as the clip (all 8
    of these; ±5 x ±2, the default until round 6, finds 2-3). Other calls of its kind do not
    match."""
    calls = [bark(s) for s in range(2, 10)]
    idx = build([song(0), song(1)] + calls, f_sd=2, t_sd=2)
    assert idx.coef == fp.CONF_COEFS[(2, 2, fp.FINE_FFT)]  # its own calibration
    found = [query(idx, noisy(y, 0.0, s))["clip_id"] == f"s{2 + i}"
             for i, (s, y) in enumerate(zip(range(2, 10), calls, strict=True))]
    assert sum(found) >= 6, found
    for x in (bark(99), noisy(bark(99), 0.0), noisy(bark(98), 0.0)):
        assert query(idx, x)["clip_id"] is None


def test_unknown_audio_and_silence_do_not_match():
    idx = build([song(s) for s in range(4)])
    for x in (song(99)[: 5 * SR], np.zeros(5 * SR, np.float32), noisy(np.ones(5 * SR), 0)):
        m = query(idx, x)
        assert m["clip_id"] is None and m["confidence"] < idx.min_confidence


def test_silence_short_and_stereo_inputs():
    for y in (np.zeros(SR, np.float32), np.zeros(0, np.float32), song(1)[:100]):
        h, t = fp.landmarks(y, SR)
        assert h.size == 0 and t.size == 0
    y = song(2, dur=4)
    mono = fp.landmarks(y, SR)
    stereo_nc = fp.landmarks(np.stack([y, y], axis=1), SR)  # (n, channels)
    stereo_cn = fp.landmarks(np.stack([y, y]), SR)  # librosa (channels, n)
    for h, t in (stereo_nc, stereo_cn):
        assert np.array_equal(h, mono[0]) and np.array_equal(t, mono[1])
    empty = fp.FingerprintIndex.from_arrays(np.zeros(0), np.zeros(0), np.zeros(0), [])
    with pytest.warns(UserWarning, match="holds no landmarks"):
        assert empty.match(*mono)["clip_id"] is None
    with pytest.raises(ValueError, match="NaN"):
        fp.landmarks(np.full(SR, np.nan, np.float32), SR)


def test_deterministic():
    y = song(3)
    a, b = fp.landmarks(y, SR), fp.landmarks(y.copy(), SR)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    idx = build([song(s) for s in range(3)])
    x = noisy(song(1)[SR : 6 * SR], 5)
    assert query(idx, x) == query(idx, x)


# ------------------------------------------------------------------------------- dataset


def ingest(folder: Path, out: Path, name: str = "d") -> audiopipe.Dataset:
    cfg = parse_config(
        {"storage": str(out), "datasets": {name: {"source": str(folder), "sample_rate": SR}}}
    )
    plan = plan_ingest(cfg, name)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(out), name)


def _metrics(ds: audiopipe.Dataset, run_id: str) -> dict[str, float]:
    m = ds.table("metrics").to_pandas()
    m = m[m.run_id == run_id]
    return dict(zip(m.metric, m.value, strict=True))


def test_index_of_silent_clips_only_says_nothing_is_indexed(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        sf.write(src / f"silent{i}.wav", np.zeros(2 * SR, np.float32), SR)
    sf.write(src / "song.wav", song(4, 6.0), SR)
    ds = ingest(src, tmp_path / "out")
    rep = run_stage(ds, "fingerprint")
    # the run's count of hashes is the landmarks: the silent clips' marker rows are not
    # hashes (they were counted, 2 more than there are)
    m = _metrics(ds, rep["run_id"])
    n_landmarks = fp.load_index(ds).n_landmarks
    assert n_landmarks > 100 and m["n_hashes"] == n_landmarks
    assert m["n_clips"] == 3 and m["n_clips_no_landmarks"] == 2
    (src / "song.wav").unlink()
    ds = ingest(src, tmp_path / "out")
    rep = run_stage(ds, "fingerprint")
    assert _metrics(ds, rep["run_id"])["n_hashes"] == 0
    assert fp.load_index(ds).n_landmarks == 0 and len(fp.load_index(ds)) == 2  # 2 markers
    q = tmp_path / "q.wav"
    sf.write(q, song(3, 5.0), SR)
    with pytest.warns(UserWarning, match="holds no landmarks"):
        m = fp.identify(ds, q)
    assert m["clip_id"] is None and "no landmarks" in m["error"]
    # an index with landmarks answers "not in the dataset" as before: no error
    idx = fp.FingerprintIndex.from_arrays(np.array([-1, 5, 9]), np.array([0, 0, 1]),
                                          np.array([0, 1, 1]), ["silent", "a"])
    assert idx.n_landmarks == 2 and "error" not in idx.match(np.array([7]), np.array([0]))


def test_run_is_incremental_and_removed_clip_stops_matching(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"s{i}.wav", song(10 + i), SR)
    sf.write(src / "silence.wav", np.zeros(SR, np.float32), SR)
    sf.write(src / "stereo.wav", np.stack([song(20, 6), song(20, 6)], axis=1), SR)
    out = tmp_path / "out"
    ds = ingest(src, out)
    rep = run_stage(ds, "fingerprint")
    assert rep["clips_processed"] == 5 and rep["clips_failed"] == 0
    t1 = ds.table("fingerprints")
    by_clip = Counter(t1.column("clip_id").to_pylist())
    uri = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"] for r in ds.table("clips").to_pylist()}
    assert by_clip[uri["silence.wav"]] == 1  # silence: one marker row, no error
    assert t1.filter(pa_equal(t1, uri["silence.wav"])).column("hash").to_pylist() == [-1]
    assert by_clip[uri["stereo.wav"]] > 100

    q = tmp_path / "q.wav"
    sf.write(q, np.stack([song(11)[4 * SR : 9 * SR]] * 2, axis=1), SR)  # stereo query file
    m = fp.identify(ds, q)
    assert m["clip_id"] == uri["s1.wav"] and m["uri"].endswith("s1.wav")
    assert abs(m["offset_s"] - 4.0) < 0.05 and m["confidence"] >= 0.5

    # nothing new: skipped, no write
    again = run_stage(audiopipe.open_dataset(str(out), "d"), "fingerprint")
    assert again["skipped"] and again["tables"] == rep["tables"]
    # one new clip, one removed: only the new one is fingerprinted
    sf.write(src / "s3.wav", song(13), SR)
    (src / "s1.wav").unlink()
    ds = ingest(src, out)
    rep = run_stage(ds, "fingerprint")
    assert rep["clips_processed"] == 1 and rep["clips_removed"] == 1
    t2 = ds.table("fingerprints")
    ids2 = set(t2.column("clip_id").to_pylist())
    assert uri["s1.wav"] not in ids2 and uri["s0.wav"] in ids2
    old = t1.filter(pa_equal(t1, uri["s0.wav"])).sort_by(
        [("hash", "ascending"), ("t", "ascending")]
    )
    new = t2.filter(pa_equal(t2, uri["s0.wav"])).sort_by(
        [("hash", "ascending"), ("t", "ascending")]
    )
    assert old.equals(new)  # untouched rows
    assert fp.identify(ds, q)["clip_id"] is None  # the removed clip stops matching
    q3 = tmp_path / "q3.wav"
    sf.write(q3, song(13)[2 * SR : 7 * SR], SR)
    assert fp.identify(ds, q3)["clip_id"] not in (None, uri["s1.wav"])

    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    m = fp.identify(ds, bad)
    assert m["clip_id"] is None and m["error"]
    # many queries, one index: answers in order, a bad file among them loses nothing
    many = fp.identify_many(ds, [q3, bad, q])
    assert [a["query"] for a in many] == [str(q3), str(bad), str(q)]
    assert many[0]["clip_id"] is not None and many[1]["error"] and many[2]["clip_id"] is None


def test_index_keeps_the_peak_shape_it_was_built_with(tmp_path):
    """An index built with other peak parameters (``f_sd=5``, the default until round 6) is
    queried with its own (and their calibration), and the next run with the defaults
    rebuilds it whole."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"s{i}.wav", song(30 + i), SR)
    ds = ingest(src, tmp_path / "out")
    run_stage(ds, "fingerprint", {"f_sd": 5})
    idx = fp.load_index(ds)
    assert idx.peak_params == {**fp.LEGACY_PEAK_PARAMS, "fine_fft": fp.FINE_FFT}
    assert idx.coef == fp.CONF_COEFS[(5, 2, fp.FINE_FFT)] != fp.CONF_COEF
    clips = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"] for r in ds.table("clips").to_pylist()}
    q = tmp_path / "q.wav"
    sf.write(q, noisy(song(31)[3 * SR : 8 * SR], 5.0), SR)
    assert fp.identify(ds, q)["clip_id"] == clips["s1.wav"]
    rep = run_stage(ds, "fingerprint")  # new defaults: every clip again, not incrementally
    assert rep["clips_processed"] == 3
    assert fp.load_index(ds).peak_params == {"f_sd": 2, "t_sd": 2, "hpf_pole": 0.0, "min_bin": 2,
                                             "fine_fft": fp.FINE_FFT}
    assert fp.load_index(ds).coef == fp.CONF_COEF
    assert fp.identify(ds, q)["clip_id"] == clips["s1.wav"]
    # callers' thresholds stay their own (the cached index is shared between threads)
    strict, loose = fp.load_index(ds, min_confidence=0.99), fp.load_index(ds, min_confidence=0.1)
    assert (strict.min_confidence, loose.min_confidence) == (0.99, 0.1)
    assert fp.load_index(ds).min_confidence == fp.MIN_CONFIDENCE


def pa_equal(t, value):
    import pyarrow.compute as pc

    return pc.equal(t.column("clip_id"), value)


def test_real_music_noisy_excerpt_and_fsdd_negatives(corpora, tmp_path):
    src = tmp_path / "music"
    src.mkdir()
    names = ["Kevin_MacLeod_-_Morning.ogg", "sorohanro_-_solo-trumpet-06.ogg", "198-209-0000.ogg"]
    for n in names:
        (src / n).symlink_to(corpora / "music" / n)
    ds = ingest(src, tmp_path / "out", "music")
    run_stage(ds, "fingerprint")
    idx = fp.load_index(ds)
    clips = {r["uri"].rsplit("/", 1)[-1]: r["clip_id"] for r in ds.table("clips").to_pylist()}
    y, _ = ds.load_audio(clips[names[0]], sr=SR)
    x = y[7 * SR : 12 * SR]
    for snr in (10.0, 5.0):
        m = query(idx, noisy(x, snr))
        assert m["clip_id"] == clips[names[0]] and abs(m["offset_s"] - 7.0) < 0.1
    from audiopipe.audio import load

    wavs = sorted((corpora / "fsdd" / "recordings").glob("*.wav"))[::100]
    hits = [query(idx, load(str(w), SR)[0])["clip_id"] for w in wavs]
    assert hits.count(None) == len(wavs)


def test_real_animals_found_in_noise_and_non_members_rejected(corpora):
    """ESC-10 dogs, roosters and babies (two each): indexed clips are found clean, roosters
    and babies also at 0 dB white noise, where no clip is ever taken for another; other clips
    of the same classes (not indexed) are rejected at the default threshold.

    Round 4's calibration (issue 12 §4) asks for more than a ratio to the runner-up: one of
    the two 0.3 s barks, 9 votes against 4 at 0 dB, is now below 0.5 (round 3: 0.83), the
    same evidence as a single spoken digit's chance alignment with a music track (8 against
    3, which round 3 answered 0.96 sure); the crying babies are found with hundreds of votes."""
    import csv

    from audiopipe.audio import load

    rows = list(csv.DictReader(open(corpora / "esc10" / "esc10.csv")))
    cats = ("dog", "rooster", "crying_baby")
    members = []
    for c in cats:  # two of each class
        members += [r for r in rows if r["category"] == c and r["fold"] == "1"][:2]
    others = [r for r in rows if r["category"] in cats and r["fold"] == "4"][:8]

    def clip(r):
        return load(str(corpora / "esc10" / "audio" / r["filename"]), SR)[0]

    idx = build([clip(r) for r in members] + [song(0), song(1)])
    for i, r in enumerate(members):
        assert query(idx, clip(r))["clip_id"] == f"s{i}", r["filename"]  # clean: every one
        m = query(idx, noisy(clip(r), 0.0, i))
        assert m["clip_id"] in (None, f"s{i}"), (r["filename"], m)  # never another clip
        if r["category"] != "dog":  # roosters and babies hold up at 0 dB; the barks are short
            assert m["clip_id"] == f"s{i}", (r["filename"], m)
    for r in others:
        m = query(idx, clip(r))
        assert m["clip_id"] is None, (r["filename"], m)


@pytest.mark.parametrize(("thresholds", "needle"), [
    ({"min_confidence": float("nan")}, "min_confidence must be within"),
    ({"min_confidence": 1.5}, "min_confidence must be within"),
    ({"min_votes": 0}, "min_votes must be a whole number"),
    ({"min_votes": 2.5}, "min_votes must be a whole number"),
    ({"min_votes": float("nan")}, "min_votes must be a whole number"),
])
def test_thresholds_out_of_range_are_refused(thresholds, needle):
    # a NaN threshold compared False with every confidence: nothing ever matched, no error
    with pytest.raises(ValueError, match=needle):
        fp.FingerprintIndex(**thresholds)
    idx = build([song(s) for s in range(2)])
    with pytest.raises(ValueError, match=needle):
        idx.set_thresholds(**thresholds)
    idx.set_thresholds(min_votes=3, min_confidence=0.25)
    assert (idx.min_votes, idx.min_confidence) == (3, 0.25)

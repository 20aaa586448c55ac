"""MaskSeparator: stems sum to the mixture, fixed order, determinism, bad input, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from audiopipe.stages.masking import MaskSeparator, mixture_features, ratio_masks

SR = 8000


def _tones_and_noise(seed: int = 0, n: int = 3, dur: float = 1.0):
    """Source 'tone': steady harmonic tones at random pitches (< 1.2 kHz); 'noise':
    high-passed noise bursts (> ~1.5 kHz) - a split the masks must learn from examples."""
    from scipy.signal import butter, sosfilt

    sos = butter(6, 1500, "highpass", fs=SR, output="sos")
    rng = np.random.default_rng(seed)
    t = np.arange(int(dur * SR)) / SR
    tones, noises = [], []
    for _ in range(n):
        f0 = rng.uniform(150, 400)
        tones.append(sum(np.sin(2 * np.pi * k * f0 * t) / k for k in (1, 2, 3)).astype(np.float32))
        x = sosfilt(sos, rng.standard_normal(t.size))
        env = (np.sin(2 * np.pi * rng.uniform(2, 5) * t) > 0).astype(float)  # bursts
        noises.append((x * env).astype(np.float32))
    return tones, noises


def _tiny(**kw) -> MaskSeparator:
    p = dict(sr=SR, n_fft=256, hop_length=64, n_mels=24, context=(-4, -2, -1, 0, 1, 2, 4),
             hidden_layer_sizes=(32,), n_mixtures=30, duration=0.75, max_iter=30)
    p.update(kw)
    return MaskSeparator(**p)


@pytest.fixture(scope="module")
def tiny_fit():
    tones, noises = _tones_and_noise(0)
    return _tiny().fit({"tone": tones, "noise": noises}, sr=SR)


def _sdr(ref, est):
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est) ** 2))


def test_tiny_fit_separates_unseen_generated_pair_and_sums_to_mixture(tiny_fit):
    """Fresh tones and noise (another seed): the learned masks beat stems = mixture/2 by far,
    each stem is its own source (fixed order), and the stems add up to the mixture."""
    tones, noises = _tones_and_noise(seed=7, n=1)
    a, b = tones[0], noises[0] * 0.5
    mix = a + b
    stems = tiny_fit.separate(mix, sr=SR)
    assert list(stems) == ["tone", "noise"] and tiny_fit.sources_ == ("tone", "noise")
    assert all(s.shape == mix.shape and s.dtype == np.float32 for s in stems.values())
    np.testing.assert_allclose(stems["tone"] + stems["noise"], mix, atol=1e-5)
    base = _sdr(a, mix / 2), _sdr(b, mix / 2)
    assert _sdr(a, stems["tone"]) > base[0] + 6
    assert _sdr(b, stems["noise"]) > base[1] + 6
    M = tiny_fit.predict_masks(mix, sr=SR)
    assert M.shape[0] == 2 and M.min() >= 0 and M.max() <= 1
    np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=1e-6)


def test_fit_is_deterministic_with_a_seed_and_changes_with_another():
    tones, noises = _tones_and_noise(1)
    src = {"tone": tones, "noise": noises}
    mix = tones[0][:4000] + noises[1][:4000]
    kw = {"max_iter": 5, "n_mixtures": 10}
    a = _tiny(**kw, random_state=3).fit(src, sr=SR).separate(mix, sr=SR)["tone"]
    b = _tiny(**kw, random_state=3).fit(src, sr=SR).separate(mix, sr=SR)["tone"]
    c = _tiny(**kw, random_state=4).fit(src, sr=SR).separate(mix, sr=SR)["tone"]
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.max(np.abs(a - c)) > 1e-3


def test_other_input_rate_and_stereo_still_sum_to_the_mixture(tiny_fit):
    """A 16 kHz stereo mixture: resampled for the masks, stems back at 16 kHz, mono sum."""
    rng = np.random.default_rng(2)
    y = rng.standard_normal((2, 12345)).astype(np.float32) * 0.1
    stems = tiny_fit.separate(y, sr=16000)
    assert all(s.shape == (12345,) for s in stems.values())
    np.testing.assert_allclose(stems["tone"] + stems["noise"], y.mean(axis=0), atol=1e-5)


def test_short_silent_and_bad_input(tiny_fit):
    short = np.full(10, 0.1, np.float32)  # shorter than one frame
    stems = tiny_fit.separate(short, sr=SR)
    assert all(s.shape == (10,) for s in stems.values())
    np.testing.assert_allclose(stems["tone"] + stems["noise"], short, atol=1e-6)
    silent = tiny_fit.separate(np.zeros(3000, np.float32), sr=SR)
    assert all(not np.any(s) for s in silent.values())
    with pytest.raises(ValueError, match="NaN"):
        tiny_fit.separate(np.array([0.0, np.nan, 0.1] * 100, np.float32), sr=SR)
    with pytest.raises(ValueError, match="non-empty"):
        tiny_fit.separate(np.zeros(0, np.float32), sr=SR)
    with pytest.raises(RuntimeError, match="not fitted"):
        MaskSeparator().separate(short, sr=SR)
    with pytest.raises(ValueError, match="at least 2"):
        _tiny().fit({"tone": [short]}, sr=SR)
    with pytest.raises(ValueError, match="non-silent"):
        _tiny().fit({"tone": [short], "noise": [np.zeros(100, np.float32)]}, sr=SR)
    with pytest.raises(ValueError, match="speed"):
        _tiny(speed=(1.2, 0.9)).fit({"a": [short], "b": [short]}, sr=SR)
    with pytest.raises(ValueError, match="validation_fraction"):
        _tiny(validation_fraction=1.0).fit({"a": [short], "b": [short]}, sr=SR)


def test_three_sources_masks_sum_to_one():
    tones, noises = _tones_and_noise(4, n=2)
    t = np.arange(SR) / SR
    clicks = [np.where(np.arange(SR) % 800 < 20, 1.0, 0.0).astype(np.float32) * np.sin(
        2 * np.pi * 2000 * t).astype(np.float32)]
    sep = _tiny(max_iter=5, n_mixtures=10).fit(
        {"tone": tones, "noise": noises, "clicks": clicks}, sr=SR)
    mix = tones[0] + noises[0] + clicks[0]
    M = sep.predict_masks(mix, sr=SR)
    assert M.shape[0] == 3
    np.testing.assert_allclose(M.sum(axis=0), 1.0, atol=1e-5)
    stems = sep.separate(mix, sr=SR)
    assert list(stems) == ["tone", "noise", "clicks"]
    np.testing.assert_allclose(sum(stems.values()), mix, atol=1e-5)


def test_features_are_gain_invariant_and_masks_are_ratios():
    import audiopipe.features as F

    y = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    D = F.stft(y, n_fft=256, hop_length=64)
    mel = F.mel_filterbank(sr=SR, n_fft=256, n_mels=16)
    X1 = mixture_features(D, mel, (-2, 0, 2))
    X2 = mixture_features(D * 100, mel, (-2, 0, 2))
    assert X1.shape == (D.shape[1], 16 * 4)
    np.testing.assert_allclose(X1, X2, atol=1e-3)
    # block 1 is frame t itself, block 0 frame t - 2: row t + 2's block 0 is row t's block 1
    np.testing.assert_allclose(X1[5:, 0:16], X1[3:-2, 16:32], atol=1e-6)
    M = ratio_masks([np.array([[1.0, 2.0]]), np.array([[1.0, 0.0]])])
    np.testing.assert_allclose(M, [[[0.5, 1.0]], [[0.5, 0.0]]])


def test_skops_round_trip(tiny_fit, tmp_path):
    import skops.io as sio

    path = tmp_path / "mask.skops"
    sio.dump(tiny_fit, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert sorted(untrusted) == ["audiopipe.stages._masknet.MaskNet",
                                 "audiopipe.stages.masking.MaskSeparator"]
    back = sio.load(path, trusted=untrusted)
    y = _tones_and_noise(9, n=1)[0][0]
    a, b = tiny_fit.separate(y, sr=SR), back.separate(y, sr=SR)
    assert back.sources_ == tiny_fit.sources_
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_validation_part_is_cut_from_the_sources_and_the_best_epoch_is_kept():
    """The validation part is the last ``validation_fraction`` of each source's duration and
    no sample of it is in the training part; the kept weights are the best epoch's."""
    sep = _tiny(validation_fraction=0.25)
    recs = {"a": [np.arange(1, 401, dtype=np.float32), np.arange(1000, 1600, dtype=np.float32)],
            "b": [np.full(50, 3.0, np.float32)]}
    train, val = sep._split_validation(recs)
    assert all(train[k] and val[k] for k in recs)
    for k, rs in recs.items():
        total = sum(r.size for r in rs)
        n_val = sum(r.size for r in val[k])
        n_tr = sum(r.size for r in train[k])
        if k == "a":
            assert n_val == int(0.25 * total) and n_tr + n_val == total
            assert not set(np.concatenate(train[k]).tolist()) & set(
                np.concatenate(val[k]).tolist())
    with pytest.warns(UserWarning, match="validating on training material"):
        sep._split_validation({"a": [np.r_[np.zeros(100), np.ones(10)].astype(np.float32)]})
    tones, noises = _tones_and_noise(3)
    fit = _tiny(max_iter=8, n_mixtures=8, learning_rate_init=0.05, n_iter_no_change=100).fit(
        {"tone": tones, "noise": noises}, sr=SR)
    scores = fit.validation_scores_
    assert len(scores) == 8 and fit.best_epoch_ == int(np.argmin(scores)) + 1


def test_loss_weights_follow_the_mixture_magnitude_and_steer_the_fit():
    """Training weights are |mixture STFT|^weight_power with mean 1 per mixture (all ones at
    power 0); an output of weight 0 is not fitted while a weighted one is."""
    from audiopipe.stages._masknet import MaskNet

    tones, noises = _tones_and_noise(5, n=2)
    src = {"tone": tones, "noise": noises}
    for p in (0.0, 1.0, 2.0):
        sep = _tiny(weight_power=p)
        sep.sources_ = ("tone", "noise")
        X, Y, W = sep._training_set(src, np.random.default_rng(0), 1)
        D = np.sum([sep._stft(x) for x in sep.synthesise(src, np.random.default_rng(0))], axis=0)
        want = np.abs(D.T.astype(np.complex128)) ** p
        np.testing.assert_allclose(W, want / want.mean(), rtol=1e-3, atol=1e-6)
        assert W.shape == Y.shape and X.shape[0] == Y.shape[0]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3)).astype(np.float32)
    Y = np.stack([(X[:, 0] > 0), (X[:, 1] > 0)], axis=1).astype(np.float32)
    Wt = np.stack([np.ones(400), np.zeros(400)], axis=1).astype(np.float32)
    net = MaskNet((8,), random_state=1).initialise(3, 2)
    before = net.predict(X)
    for _ in range(40):
        net.train_epoch(X, Y, Wt, 0.02, rng)
    after = net.predict(X)
    err0 = np.mean((after[:, 0] - Y[:, 0]) ** 2)
    assert err0 < 0.05 < np.mean((before[:, 0] - Y[:, 0]) ** 2)
    # the unweighted output only moves through the shared hidden layer: not towards its target
    assert np.mean((after[:, 1] - Y[:, 1]) ** 2) > 0.1

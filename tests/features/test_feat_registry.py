"""registry: recipe validation, hashing and the Extractor contract the spine relies on."""

from __future__ import annotations

import numpy as np
import pytest
from feat_helpers import noise

import audiopipe.features as F
from audiopipe.features import registry


def test_features_specs_have_contract_fields():
    assert {"mfcc", "melspectrogram", "spectral_centroid", "spectral_rolloff",
            "zero_crossing_rate", "rms"} <= set(F.FEATURES)
    for name, spec in F.FEATURES.items():
        assert spec.name == name and isinstance(spec.defaults, dict) and spec.doc
        assert spec.n_dims(spec.defaults, 22050) > 0
    assert F.FEATURES["mfcc"].n_dims({"n_mfcc": 13}, 16000) == 13


def test_each_feature_is_declared_next_to_its_function():
    """One place per feature: the recipe declaration is in the module of the function."""
    for name, spec in F.FEATURES.items():
        if hasattr(F, name):
            assert spec.make.__module__ == getattr(F, name).__module__, name
    assert len([n for n in F.FEATURES if hasattr(F, n)]) == len(F.FEATURES)


def test_a_feature_name_is_declared_once():
    make = F.FEATURES["rms"].make
    with pytest.raises(ValueError, match="'rms' is already defined by audiopipe.features.temporal"):
        registry.feature("rms", dims=1, doc="another rms")(lambda p, ex: None)
    assert F.FEATURES["rms"].make is make


def test_check_recipe_fills_defaults_and_keeps_order():
    r = F.check_recipe(F.DEFAULT_RECIPE)
    assert list(r["compute"]) == list(F.DEFAULT_RECIPE["compute"])
    assert r["compute"]["mfcc"]["n_mels"] == 128 and r["compute"]["mfcc"]["deltas"] == 2
    assert r["win_length"] is None and r["window"] == "hann" and r["center"] is True
    assert F.check_recipe({"compute": {"rms": None}})["compute"]["rms"]["deltas"] == 0


@pytest.mark.parametrize("recipe,message", [
    ({"compute": {"mfcc": {"n_mfcc": -1}}}, "features.compute.mfcc.n_mfcc: must be > 0, got -1"),
    ({"compute": {"mfcc": {"n_mfc": 3}}}, "features.compute.mfcc.n_mfc: unknown parameter"),
    ({"compute": {"mfccs": {}}}, "features.compute.mfccs: unknown feature"),
    ({"n_fft": 0, "compute": {"rms": {}}}, "features.n_fft: must be from 16 to 65536 samples, got 0"),
    ({"hop_length": 1.5, "compute": {"rms": {}}}, "features.hop_length: must be an integer"),
    ({"nfft": 512}, "features.nfft: unknown key"),
    ({"compute": {"mfcc": {"deltas": 3}}}, "features.compute.mfcc.deltas: must be in 0..2"),
    ({"compute": {"spectral_rolloff": {"roll_percent": 1.5}}},
     "features.compute.spectral_rolloff.roll_percent: must be in (0, 1)"),
    ({"compute": {"mfcc": [20]}}, "features.compute.mfcc: parameters must be a mapping"),
    ({"compute": {}}, "features.compute: must be a non-empty mapping"),
    ({"win_length": 4096, "compute": {"rms": {}}}, "features.win_length: 4096 is more than n_fft"),
])
def test_check_recipe_errors_name_key_path(recipe, message):
    with pytest.raises(ValueError) as e:
        F.check_recipe(recipe)
    assert str(e.value).startswith(message), str(e.value)


def test_recipe_hash_is_stable_and_sensitive(monkeypatch):
    a = {"n_fft": 2048, "compute": {"rms": {}, "mfcc": {"n_mfcc": 20}}}
    b = {"compute": {"mfcc": {"n_mfcc": 20, "deltas": 0}, "rms": {}}, "hop_length": 512}
    assert F.recipe_hash(a) == F.recipe_hash(b)
    assert F.recipe_hash(a) != F.recipe_hash({"compute": {"rms": {}, "mfcc": {"n_mfcc": 13}}})
    assert len(F.recipe_hash(a)) == 16 and F.FEATURES_VERSION
    before = F.recipe_hash(a)
    monkeypatch.setattr("audiopipe.features.registry.FEATURES_VERSION", "test-bump")
    assert F.recipe_hash(a) != before  # a code change that alters numbers invalidates caches


def test_recipe_hashes_of_stored_datasets_do_not_move():
    """Stored datasets are keyed by recipe hashes: a refactor must not change them. A change
    of a default, a parameter name or FEATURES_VERSION must be deliberate (update these)."""
    assert F.recipe_hash(F.DEFAULT_RECIPE) == "d173da5d099a0be8"
    assert F.recipe_hash({"compute": {n: {} for n in sorted(F.FEATURES)}}) == "6fa6fcd19be986df"


def test_extractor_contract_default_recipe():
    ex = F.Extractor(F.DEFAULT_RECIPE, sr=22050)
    assert ex.names == ["mfcc", "mfcc_delta", "mfcc_delta2", "melspectrogram",
                        "spectral_centroid", "spectral_rolloff", "zero_crossing_rate", "rms"]
    assert ex.dims == {"mfcc": 20, "mfcc_delta": 20, "mfcc_delta2": 20, "melspectrogram": 64,
                       "spectral_centroid": 1, "spectral_rolloff": 1, "zero_crossing_rate": 1,
                       "rms": 1}
    y = noise(22050 * 2)
    out = ex(y)
    assert list(out) == ex.names
    for k, v in out.items():
        assert v.dtype == np.float32 and v.shape == (ex.dims[k], 1 + len(y) // 512), k
        assert np.isfinite(v).all()


def test_extractor_rejects_bad_sr_and_inconsistent_params():
    with pytest.raises(ValueError, match="sr"):
        F.Extractor(F.DEFAULT_RECIPE, sr=0)
    with pytest.raises(ValueError, match=r"features.compute.mfcc.n_mfcc: 40 is more than n_mels \(20\)"):
        F.Extractor({"compute": {"mfcc": {"n_mfcc": 40, "n_mels": 20}}}, sr=22050)

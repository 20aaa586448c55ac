"""The recipe check's verdict cache: reused only when nothing it depends on changed.

A stale verdict would let a bad recipe through (every file then fails) or refuse a good
one, so each test plants a *poisoned* verdict (a problem no real check reports) and shows it
is read back while the key is unchanged and never once the recipe, the sample rate or the
features code change.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from audiopipe import config, recipe_cache
from audiopipe.config import ConfigError, parse_config

POISON = "features: POISONED verdict read back from the cache"


def _doc(sample_rate: int = 22050, n_mfcc: int = 13) -> dict:
    return {"datasets": {"d": {"source": "x/*.wav", "sample_rate": sample_rate,
                               "features": {"compute": {"mfcc": {"n_mfcc": n_mfcc}}}}}}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder; this process's memo of verdicts emptied before and after."""
    monkeypatch.setenv("AUDIOPIPE_CACHE_DIR", str(tmp_path / "cache"))
    config._memo.clear()
    yield tmp_path / "cache" / "recipe-checks"
    config._memo.clear()


def _poison_all(folder: Path) -> int:
    files = sorted(folder.glob("*.json"))
    for f in files:
        data = json.loads(f.read_text())
        data["verdict"]["problems"] = [POISON]
        f.write_text(json.dumps(data))
    config._memo.clear()  # as a new process would
    return len(files)


def test_a_verdict_is_reused_only_for_the_same_recipe_and_sample_rate(cache):
    parse_config(_doc())
    assert _poison_all(cache) >= 1
    with pytest.raises(ConfigError, match="POISONED"):  # the cache is what answers
        parse_config(_doc())
    parse_config(_doc(n_mfcc=20))  # another recipe: checked, not read back
    parse_config(_doc(sample_rate=16000))  # another rate: checked
    with pytest.raises(ConfigError, match="POISONED"):
        parse_config(_doc())


def test_a_change_to_the_features_code_rechecks(cache, tmp_path, monkeypatch):
    code = tmp_path / "features"
    shutil.copytree(recipe_cache.FEATURES_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(recipe_cache, "FEATURES_DIR", code)
    recipe_cache._fingerprint.cache_clear()
    parse_config(_doc())
    _poison_all(cache)
    with pytest.raises(ConfigError, match="POISONED"):
        parse_config(_doc())
    reg = code / "registry.py"  # a FEATURES_VERSION bump is an edit of the features code
    reg.write_text(reg.read_text().replace('FEATURES_VERSION = "', 'FEATURES_VERSION = "x', 1))
    recipe_cache._fingerprint.cache_clear()
    parse_config(_doc())
    _poison_all(cache)
    (code / "new_feature.py").write_text("# a new module\n")  # a file added
    recipe_cache._fingerprint.cache_clear()
    parse_config(_doc())
    recipe_cache._fingerprint.cache_clear()


def test_the_fingerprint_follows_every_file_and_numpy_scipy(tmp_path, monkeypatch):
    code = tmp_path / "features"
    shutil.copytree(recipe_cache.FEATURES_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    fp = recipe_cache.features_fingerprint
    assert fp(code) == fp(recipe_cache.FEATURES_DIR)
    recipe_cache._fingerprint.cache_clear()
    (code / "mel.py").write_text((code / "mel.py").read_text() + "\n# edited\n")
    edited = fp(code)
    assert edited != fp(recipe_cache.FEATURES_DIR)
    recipe_cache._fingerprint.cache_clear()
    monkeypatch.setattr(recipe_cache, "_version_bytes", lambda pkg: b"another " + pkg.encode())
    assert fp(code) != edited
    recipe_cache._fingerprint.cache_clear()


def test_bad_recipes_are_refused_as_before_from_the_cache(cache):
    bad = {"datasets": {"d": {"source": "x/*.wav", "sample_rate": 8000,
                              "features": {"compute": {"spectral_contrast": {"fmin": 1000.0}}}}}}
    with pytest.raises(ConfigError) as first:
        parse_config(bad)
    config._memo.clear()
    with pytest.raises(ConfigError) as again:
        parse_config(bad)
    assert "fails on a test signal" in str(first.value)
    assert str(again.value) == str(first.value)
    unknown = {"datasets": {"d": {"source": "x", "features": {"compute": {"mfccc": {}}}}}}
    with pytest.raises(ConfigError) as first:
        parse_config(unknown)
    config._memo.clear()
    with pytest.raises(ConfigError) as again:
        parse_config(unknown)
    assert str(again.value) == str(first.value)


def test_the_recipe_of_a_cached_verdict_equals_the_checked_one(cache):
    import audiopipe.features as F

    ds = parse_config(_doc()).dataset("d")
    config._memo.clear()
    cached = ds.recipe()
    assert cached == F.check_recipe({"compute": {"mfcc": {"n_mfcc": 13}}, "sr": 22050})
    assert list(cached["compute"]) == ["mfcc"]
    cached["n_fft"] = 1  # a caller's change does not reach the next caller
    assert ds.recipe()["n_fft"] != 1


@pytest.mark.parametrize("where", ["file", "corrupt", "empty"])
def test_a_cache_that_cannot_be_used_fails_nothing(tmp_path, monkeypatch, where):
    config._memo.clear()
    if where == "file":  # the cache folder's parent is a file: nothing can be written
        (tmp_path / "f").write_text("")
        monkeypatch.setenv("AUDIOPIPE_CACHE_DIR", str(tmp_path / "f" / "sub"))
    elif where == "corrupt":  # a truncated or foreign file under the right name
        monkeypatch.setenv("AUDIOPIPE_CACHE_DIR", str(tmp_path))
        key = recipe_cache.verdict_key({"compute": {"mfcc": {"n_mfcc": 13}}}, 22050, trial=True)
        (tmp_path / "recipe-checks").mkdir()
        (tmp_path / "recipe-checks" / f"{key}.json").write_text('{"key": "')
    else:  # AUDIOPIPE_CACHE_DIR= : no cache
        monkeypatch.setenv("AUDIOPIPE_CACHE_DIR", "")
        assert recipe_cache.cache_dir() is None
    assert parse_config(_doc()).dataset("d").recipe()["compute"]["mfcc"]["n_mfcc"] == 13
    config._memo.clear()
    with pytest.raises(ConfigError, match=r"datasets\.d\.features\.compute\.mfccc"):
        parse_config({"datasets": {"d": {"source": "x", "features": {"compute": {"mfccc": {}}}}}})
    config._memo.clear()


def test_concurrent_writers_and_readers_see_whole_verdicts_only(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOPIPE_CACHE_DIR", str(tmp_path))
    key = "k" * 40
    verdict = {"recipe": {"compute": {f"f{i}": {"x": i} for i in range(200)}}, "problems": []}
    seen, errors = [], []

    def write() -> None:
        for _ in range(30):
            recipe_cache.store(key, verdict)

    def read() -> None:
        for _ in range(200):
            try:
                got = recipe_cache.lookup(key)
            except Exception as err:  # noqa: BLE001 - any failure is the test's finding
                errors.append(err)
                return
            if got is not None:
                seen.append(got == verdict)

    threads = [threading.Thread(target=f) for f in (write, write, write, read, read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and seen and all(seen)
    assert [p.name for p in (tmp_path / "recipe-checks").iterdir()] == [f"{key}.json"]


def test_a_second_process_loads_the_config_without_the_features_code(tmp_path):
    """What the cache is for: the second command does not import audiopipe.features/scipy."""
    cfg = tmp_path / "datasets.yaml"
    cfg.write_text("datasets:\n  d:\n    source: x/*.wav\n    sample_rate: 16000\n")
    code = (
        "import sys; from audiopipe.config import load_config; load_config(sys.argv[1]); "
        "print('audiopipe.features' in sys.modules, 'scipy' in sys.modules)"
    )
    env = {"AUDIOPIPE_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.run([sys.executable, "-c", code, str(cfg)], env=env, capture_output=True,
                       text=True, check=True).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["True", "True"], ["False", "False"]]

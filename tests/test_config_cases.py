"""Bad configurations, one row each: the file as a user wrote it, the exact lines refused.

Every case must be rejected at load (``audiopipe validate`` and every command, before any
work), each problem on its own line as ``key.path: reason``, all problems of a file at once,
and no line may show pydantic's wording or internal names (``literal[...]``, ``Input should``,
``function-after``...). The table is the issue's list of configs that used to validate and
then fail every file, leak internals or hide a second problem.
"""

from __future__ import annotations

import re
import textwrap
import time

import pytest

from audiopipe.config import ConfigError, load_config, parse_config
from flows.cli import main


def _ds(**kw):
    return {"datasets": {"demo": {"source": "x/*.wav", **kw}}}


def _rx(**kw):
    return _ds(features={"compute": {"mfcc": {}}, **kw})


def _mfcc(**params):
    return _ds(features={"compute": {"mfcc": params}})


#: (id, parsed YAML document, the expected lines: each a regular expression, all required)
CASES = [
    ("n_fft_too_small", _rx(n_fft=7),
     [r"datasets\.demo\.features\.n_fft: must be from 16 to 65536 samples, got 7$"]),
    ("n_fft_absurd", _rx(n_fft=100_000_000),
     [r"datasets\.demo\.features\.n_fft: must be from 16 to 65536 samples, got 100000000$"]),
    ("n_fft_not_int", _rx(n_fft=512.5),
     [r"datasets\.demo\.features\.n_fft: must be an integer, got 512\.5$"]),
    ("hop_over_n_fft", _rx(n_fft=512, hop_length=1024),
     [r"datasets\.demo\.features\.hop_length: 1024 is more than n_fft \(512\)"]),
    ("win_over_n_fft", _rx(n_fft=512, win_length=1024),
     [r"datasets\.demo\.features\.win_length: 1024 is more than n_fft \(512\)$"]),
    ("n_mfcc_over_n_mels", _mfcc(n_mfcc=60, n_mels=40),
     [r"datasets\.demo\.features\.compute\.mfcc\.n_mfcc: 60 is more than n_mels \(40\)$"]),
    ("n_mels_over_bins", _ds(features={"n_fft": 64, "hop_length": 16,
                                       "compute": {"melspectrogram": {"n_mels": 128}}}),
     [r"datasets\.demo\.features\.compute\.melspectrogram\.n_mels: 128 is more than the 33 "
      r"frequency bins of n_fft=64"]),
    ("n_mels_absurd", _mfcc(n_mels=10_000_000),
     [r"compute\.mfcc\.n_mels: 10000000 is more than the largest allowed, 1024$"]),
    ("fmin_not_below_fmax", _mfcc(fmin=9000.0, fmax=4000.0),
     [r"compute\.mfcc\.fmin: 9000 Hz is not below fmax \(4000 Hz\)$"]),
    ("fmax_over_nyquist", _ds(sample_rate=16000, features={"compute": {"mfcc": {"fmax": 12000}}}),
     [r"compute\.mfcc\.fmax: 12000 Hz is above the Nyquist frequency \(8000 Hz"]),
    ("fmin_over_nyquist", _ds(sample_rate=8000, features={"compute": {"mfcc": {"fmin": 5000}}}),
     [r"compute\.mfcc\.fmin: 5000 Hz is not below sr/2 = 4000 Hz$"]),
    ("n_gfcc_over_bands", _ds(features={"compute": {"gfcc": {"n_gfcc": 80, "n_bands": 64}}}),
     [r"compute\.gfcc\.n_gfcc: 80 is more than n_bands \(64\)$"]),
    ("band_past_nyquist_found_by_trial",
     _ds(sample_rate=8000, features={"compute": {"spectral_contrast": {"fmin": 1000.0}}}),
     [r"datasets\.demo\.features: this recipe fails on a test signal \(.*Nyquist"]),
    ("min_rate_over_max_rate", _ds(limits={"min_sample_rate": 50000, "max_sample_rate": 8000}),
     [r"datasets\.demo\.limits\.min_sample_rate: 50000 Hz is above max_sample_rate \(8000 Hz\)"]),
    ("min_duration_over_max", _ds(limits={"min_duration_s": 10.0, "max_duration_s": 5.0}),
     [r"datasets\.demo\.limits\.min_duration_s: 10 s is not below max_duration_s \(5 s\)"]),
    ("channels_word", _ds(channels="left"),
     [r"datasets\.demo\.channels: must be mix, first or a channel index \(an integer >= 0\), "
      r"got 'left'$"]),
    ("channels_negative", _ds(channels=-1),
     [r"datasets\.demo\.channels: a channel index must be >= 0, got -1$"]),
    ("sample_rate_bool", _ds(sample_rate=True),
     [r"datasets\.demo\.sample_rate: must be an integer, got true$"]),
    ("sample_rate_text", _ds(sample_rate="22k"),
     [r"datasets\.demo\.sample_rate: must be an integer, got '22k'$"]),
    ("max_files_text", _ds(shard={"max_files": "10"}),
     [r"datasets\.demo\.shard\.max_files: must be an integer, got '10'$"]),
    ("max_channels_float", _ds(limits={"max_channels": 2.5}),
     [r"datasets\.demo\.limits\.max_channels: must be an integer, got 2\.5$"]),
    ("source_number", {"datasets": {"demo": {"source": 5}}},
     [r"datasets\.demo\.source: must be a path, glob or URL, or a list of them, got 5$"]),
    # "" meant the config's own folder: the dataset ingested its own stage outputs
    ("source_empty", {"datasets": {"demo": {"source": ""}}},
     [r"datasets\.demo\.source: must not be empty or blank \(a path, glob or URL\), got ''$"]),
    ("source_blank_in_list", {"datasets": {"demo": {"source": ["a/*.wav", "  "]}}},
     [r"datasets\.demo\.source: entry 2 must not be empty or blank \(a path, glob or URL\), "
      r"got '  '$"]),
    ("source_missing", {"datasets": {"demo": {"sample_rate": 8000}}},
     [r"datasets\.demo\.source: required key is missing$"]),
    ("labels_string", _ds(labels="labels.csv"),
     [r"datasets\.demo\.labels: must be a mapping with path .*, got 'labels\.csv'$"]),
    ("block_seconds_zero", _ds(block_seconds=0),
     [r"datasets\.demo\.block_seconds: must be > 0, got 0$"]),
    # .inf used to pass and fail every file (OverflowError sizing the decode block)
    ("block_seconds_inf", _ds(block_seconds=float("inf")),
     [r"datasets\.demo\.block_seconds: must be a finite number, got inf$"]),
    ("block_seconds_nan", _ds(block_seconds=float("nan")),
     [r"datasets\.demo\.block_seconds: must be a finite number, got nan$"]),
    # finite, yet no decode block can be sized from it (OverflowError at every file)
    ("block_seconds_absurd", _ds(block_seconds=1e305),
     [r"datasets\.demo\.block_seconds: 1e\+305 s at limits\.max_sample_rate \(768000 Hz\) "
      r"is more frames than a decode block can count$"]),
    ("three_problems_all_reported",
     _ds(sample_rate="abc", channels="left", features={"n_fft": 7, "compute": {"rms": {}}}),
     [r"datasets\.demo\.sample_rate: must be an integer, got 'abc'$",
      r"datasets\.demo\.channels: must be mix, first",
      r"datasets\.demo\.features\.n_fft: must be from 16"]),
    ("recipe_problems_all_reported", _ds(features={"n_fft": 7, "hop_length": 0, "compute": {
        "mfcc": {"n_mfcc": -1}, "nope": {}}}),
     [r"features\.n_fft: must be from 16", r"features\.hop_length: must be > 0, got 0$",
      r"features\.compute\.mfcc\.n_mfcc: must be > 0, got -1$",
      r"features\.compute\.nope: unknown feature"]),
    ("two_datasets_both_reported", {"datasets": {
        "a": {"source": "x", "features": {"n_fft": 7}},
        "b": {"source": "y", "limits": {"min_sample_rate": 9000, "max_sample_rate": 8000}}}},
     [r"datasets\.a\.features\.n_fft: ", r"datasets\.b\.limits\.min_sample_rate: "]),
    ("dataset_named_like_a_type", {"datasets": {"int": {"source": "x", "channels": "left"}}},
     [r"^datasets\.int\.channels: must be mix, first"]),
    ("stage_and_recipe_both_reported",
     _ds(features={"n_fft": 7}, stages={"segment": {"mdoe": "novelty"}}),
     [r"datasets\.demo\.features\.n_fft: ",
      r"datasets\.demo\.stages\.segment\.mdoe: unknown parameter \(did you mean mode\?\)"]),
]  # fmt: skip

#: words of pydantic's that a user must never see
LEAKS = re.compile(r"literal\[|function-(after|before)|Input should|pydantic|\.int:|\.str:|"
                   r"LabelsConfig|type=|For further information")


@pytest.mark.parametrize("doc,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_refused_naming_every_key_and_reason(doc, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    lines = str(info.value).splitlines()
    for rx in expected:
        assert any(re.search(rx, line) for line in lines), (rx, lines)
    for line in lines:
        assert not LEAKS.search(line), line
        assert re.match(r"^[\w.\[\]-]+: \S", line), f"no key path: {line!r}"
    assert len(lines) == len(set(lines)), lines


def test_the_table_covers_the_issue(tmp_path):
    assert len(CASES) >= 15
    # every kind the issue names is in the table
    names = {c[0] for c in CASES}
    assert {"n_fft_too_small", "n_fft_absurd", "hop_over_n_fft", "n_mfcc_over_n_mels",
            "min_rate_over_max_rate", "channels_word", "sample_rate_bool",
            "three_problems_all_reported"} <= names


DUPLICATED = """\
    storage: out
    datasets:
      demo:
        source: a/*.wav
        sample_rate: 22050
      other:
        source: b/*.wav
      demo:
        source: c/*.wav
        limits: {max_channels: 2, max_channels: 4}
    """


def test_a_key_declared_twice_is_an_error_with_both_lines(tmp_path, capsys):
    p = tmp_path / "datasets.yaml"
    p.write_text(textwrap.dedent(DUPLICATED))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{p}: datasets.demo: declared twice (lines 3 and 8); YAML would silently keep the last",
        f"{p}: datasets.demo.limits.max_channels: declared twice (lines 10 and 10); "
        "YAML would silently keep the last",
    ]
    assert main(["--config", str(p), "validate"]) == 2
    assert "datasets.demo: declared twice (lines 3 and 8)" in capsys.readouterr().err


def test_validate_refuses_a_recipe_that_would_fail_every_file_quickly(tmp_path, capsys):
    """The issue's n_fft 1e8 used to pass and allocate 95 GiB at the first file."""
    p = tmp_path / "datasets.yaml"
    p.write_text(textwrap.dedent("""\
        datasets:
          demo:
            source: a/*.wav
            features: {n_fft: 100000000, hop_length: 512, compute: {mfcc: {n_mfcc: 60, n_mels: 40}}}
            limits: {min_sample_rate: 48000, max_sample_rate: 8000}
        """))
    t0 = time.perf_counter()
    assert main(["--config", str(p), "validate"]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert "datasets.demo.features.n_fft: must be from 16 to 65536 samples, got 100000000" in err
    assert "datasets.demo.features.compute.mfcc.n_mfcc: 60 is more than n_mels (40)" in err
    assert "datasets.demo.limits.min_sample_rate: 48000 Hz is above max_sample_rate" in err
    # and every other command refuses it the same way, before any work
    assert main(["--config", str(p), "ingest", "demo", "-q"]) == 2
    assert not (tmp_path / "data").exists()

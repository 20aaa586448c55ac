"""Declared stage parameters: coercion, validation messages, dataset defaults, paths."""

from __future__ import annotations

import pytest

from audiopipe.stages import STAGES, stage_class
from audiopipe.stages.params import REQUIRED, Param, ParamError, check, help_text, resolve

P = (
    Param("mode", "str", "a", "how", choices=("a", "b")),
    Param("n", "int", 3, "count", low=1, high=10),
    Param("x", "float", 0.5, "ratio", low=0),
    Param("c", "float", 1.0, "strength", low=0, low_open=True),
    Param("sep", "str", ";", "separator", min_len=1),
    Param("on", "bool", False, "flag"),
    Param("names", "list", ("m",), "names"),
    Param("w", "floats", (0.9, 1.1), "warps ([] disables)", low=0.5, min_len=0),
    Param("path", "path", None, "a file"),
    Param("target", "str", REQUIRED, "needed"),
    Param("sr", "int", 22050, "rate", from_dataset="sample_rate"),
)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"mdoe": "a"}, "s.mdoe: unknown parameter (did you mean mode?)"),
        ({"zzz": 1}, "s.zzz: unknown parameter (known: mode, n, x, c, sep, on, names, w, path, target, sr)"),
        ({"mode": "c"}, "s.mode: must be one of a, b, got 'c'"),
        ({"n": 0}, "s.n: must be >= 1, got 0"),
        ({"n": 11}, "s.n: must be <= 10, got 11"),
        ({"n": 2.5}, "s.n: must be an integer, got 2.5"),
        ({"n": True}, "s.n: must be an integer, got True"),
        ({"x": "fast"}, "s.x: must be a number, got 'fast'"),
        ({"on": "maybe"}, "s.on: must be true or false, got 'maybe'"),
        ({"w": "0.9,x"}, "s.w: must be a list of numbers, got '0.9,x'"),
        ({"w": [0.1]}, "s.w: must be >= 0.5, got 0.1"),
        ({"mode": {"a": 1}}, "s.mode: must be a string, got {'a': 1}"),
        # not finite: inf passed every bound check and hung beat tracking (start_bpm: inf)
        ({"x": "inf"}, "s.x: must be a finite number, got inf"),
        ({"x": float("-inf")}, "s.x: must be a finite number, got -inf"),
        ({"x": "nan"}, "s.x: must be a finite number, got nan"),
        ({"w": [1.0, "inf"]}, "s.w: must be a list of finite numbers, got inf"),
        # an exclusive low bound (C: 0 failed inside sklearn, after work had started)
        ({"c": 0}, "s.c: must be > 0, got 0"),
        ({"sep": ""}, "s.sep: must not be empty, got ''"),
        # an empty list is refused unless declared (views: [] replaced an index by nothing)
        ({"names": []}, "s.names: must not be empty, got []"),
        ({"names": ""}, "s.names: must not be empty, got []"),
    ],
)
def test_each_bad_value_is_named_with_its_key(raw, problem):
    assert check(P, {"target": "t", **raw}, where="s") == [problem]


def test_bounds_and_lengths_that_pass():
    got = resolve(P, {"target": "t", "c": 1e-9, "sep": "|", "names": ["a"], "w": [], "x": 0})
    assert (got["c"], got["sep"], got["names"], got["w"], got["x"]) == (1e-9, "|", ["a"], [], 0)
    two = Param("ab", "list", None, "pair", min_len=2)
    assert two.coerce("a,b") == ["a", "b"]
    with pytest.raises(ParamError, match="needs at least 2 items"):
        two.coerce(["a"])


@pytest.mark.parametrize(
    ("stage", "raw", "key"),
    [
        ("beats", {"start_bpm": "inf"}, "start_bpm"),
        ("beats", {"tightness": "inf"}, "tightness"),
        ("fingerprint", {"density": "inf"}, "density"),
        ("retrieve", {"views": []}, "views"),
        ("tag", {"stats": []}, "stats"),
        ("tag", {"C": 0}, "C"),
        ("tag", {"sep": ""}, "sep"),
        ("classify", {"target": "label", "candidates": []}, "candidates"),
        ("classify", {"target": "label", "C": 0}, "C"),
    ],
)
def test_stages_refuse_degenerate_values_before_work_naming_the_key(stage, raw, key):
    from audiopipe.stages.runner import check_params

    problems = check_params(stage, raw, where=stage)
    assert len(problems) == 1 and problems[0].startswith(f"{stage}.{key}: "), problems


def test_lists_whose_empty_value_has_a_meaning_keep_it():
    from audiopipe.stages.runner import check_params

    assert check_params("classify", {"target": "label", "warps": []}, where="c") == []


def test_required_and_partial_checks():
    assert check(P, {}, where="s") == ["s.target: required parameter is missing"]
    assert check(P, {}, where="s", require=False) == []
    assert check(P, None, where="s") == ["s.target: required parameter is missing"]
    assert check(P, [1, 2], where="s") == ["s: must be a mapping of parameter: value, got [1, 2]"]


def test_resolve_fills_defaults_dataset_values_and_paths(tmp_path):
    got = resolve(
        P,
        {"target": "t", "n": "4", "on": "yes", "names": "a, b", "w": "", "path": "ev.csv"},
        dataset={"sample_rate": 8000},
        base_dir=tmp_path,
    )
    assert got == {
        "mode": "a",
        "n": 4,
        "x": 0.5,
        "c": 1.0,
        "sep": ";",
        "on": True,
        "names": ["a", "b"],
        "w": [],
        "path": str(tmp_path / "ev.csv"),
        "target": "t",
        "sr": 8000,  # from the dataset
    }
    # given beats the dataset; URLs and absolute paths stay as they are
    got = resolve(P, {"target": "t", "sr": 16000, "path": "s3://b/ev.csv"}, dataset={"sample_rate": 8000})
    assert got["sr"] == 16000 and got["path"] == "s3://b/ev.csv"
    assert resolve(P, {"target": "t"})["sr"] == 22050  # no dataset value: the default
    with pytest.raises(ParamError, match="s.n: must be >= 1"):
        resolve(P, {"target": "t", "n": -1}, where="s")


def test_every_stage_declaration_is_complete_and_its_defaults_valid():
    for name in STAGES:
        st = stage_class(name)
        assert st.name == name and st.summary and st.tables
        names = [p.name for p in st.params]
        assert len(names) == len(set(names)), name
        for p in st.params:
            assert p.doc, f"{name}.{p.name} has no doc"
            if not p.required and p.default is not None:
                p.coerce(list(p.default) if isinstance(p.default, tuple) else p.default)
        text = help_text(st.params)
        assert all(n in text for n in names)


def test_an_empty_path_is_the_parameter_left_unset_not_the_base_folder(tmp_path):
    """``run_stage``'s file check takes ``""`` for a path left unset (a call may pass it), but
    ``resolve`` made it ``base_dir`` itself: a stage got the config's folder as its reference
    file (review 9)."""
    got = resolve(P, {"target": "t", "path": ""}, base_dir=tmp_path)
    assert got["path"] is None
    assert resolve(P, {"target": "t", "path": "a.csv"}, base_dir=tmp_path)["path"] == str(
        tmp_path / "a.csv")


def test_an_empty_required_path_is_missing():
    """``""`` for a required path resolved to None without a word (review 10)."""
    decl = (Param("model_file", "path", REQUIRED, "a file"),)
    with pytest.raises(ParamError, match="model_file: required parameter is missing"):
        resolve(decl, {"model_file": ""})

"""``datasets.yaml``: load, validate and normalise the pipeline configuration.

Everything a run needs is checked here, before any work starts: a bad file is
rejected with the key path and the reason, e.g.
``datasets.demo.sample_rate: must be > 0, got -5``. Whether the local files it names
(labels, stage inputs) are there is checked by the run that reads them
(:mod:`audiopipe.config_files`), not here: a missing file is not a bad config.

Examples
--------
>>> from audiopipe.config import load_config
>>> cfg = load_config("datasets.yaml")          # doctest: +SKIP
>>> cfg.dataset("demo").sample_rate              # doctest: +SKIP
22050
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from audiopipe.config_files import path_keys
from audiopipe.config_text import (
    cron_problem,
    format_errors,
    load_yaml,
    memory_problem,
    name_problem,
    storage_problems,
)
from audiopipe.errors import ConfigError

__all__ = [
    "ConfigError",
    "UnknownDatasetError",
    "Config",
    "DatasetConfig",
    "load_config",
    "parse_config",
    "stage_problems",
]


class UnknownDatasetError(LookupError):
    """A dataset name that ``datasets.yaml`` does not declare."""


class _Strict(BaseModel):
    # strict: YAML gives real ints, floats and booleans, so `sample_rate: true` or
    # `max_files: "10"` is a mistake to report, not a value to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LabelsConfig(_Strict):
    """A labels table joined to the discovered files.

    ``path`` is a CSV (or Parquet) file; ``on`` names its column holding each
    file's path, relative to ``root`` (default: the folder of the labels file).
    """

    path: str
    on: str = "path"
    root: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _yaml11_on(cls, v: Any) -> Any:
        # YAML 1.1 reads the bare key `on:` as boolean True
        if isinstance(v, dict) and True in v:
            v = {("on" if k is True else k): x for k, x in v.items()}
        return v


class ShardConfig(_Strict):
    """How files are grouped into units of distributed work.

    A shard is one task: big enough that the ~1-2 s a Prefect task run costs is small
    next to its work (minutes of audio), small enough that the cluster has work for
    every worker. Shards hold at most ``max_files`` files and ``max_mb`` MiB of encoded
    audio; below that, the plan splits the work into at least ``min_shards`` shards of
    equal bytes (when there are that many files). ``min_shards`` defaults to two per
    worker of the cluster the run uses.
    """

    max_files: int = Field(512, gt=0)
    max_mb: int = Field(256, gt=0)
    min_shards: int | None = Field(None, gt=0)


class LimitsConfig(_Strict):
    """Files outside these limits become rows of the ``errors`` table."""

    max_duration_s: float = Field(4 * 3600.0, gt=0)
    min_duration_s: float = Field(0.0, ge=0)
    max_channels: int = Field(32, gt=0)
    min_sample_rate: int = Field(1000, gt=0)
    max_sample_rate: int = Field(768_000, gt=0)
    max_bytes: int = Field(8 * 1024**3, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> LimitsConfig:
        problems = []
        if self.min_sample_rate > self.max_sample_rate:
            problems.append(f"min_sample_rate: {self.min_sample_rate} Hz is above "
                            f"max_sample_rate ({self.max_sample_rate} Hz): every file would fail")
        if self.min_duration_s >= self.max_duration_s:
            problems.append(f"min_duration_s: {self.min_duration_s:g} s is not below "
                            f"max_duration_s ({self.max_duration_s:g} s): every file would fail")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class ClusterConfig(_Strict):
    """Where the work runs: a LocalCluster by default, or an existing scheduler."""

    scheduler: str | None = None
    n_workers: int = Field(2, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    memory_limit: str = "4GiB"

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, v: str) -> str:
        # as Dask will read it when the workers start (a typo failed the first ingest)
        why = memory_problem(v)
        if why:
            raise ValueError(why)
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler_url(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"must be an address like tcp://host:8786, got {v!r}")
        return v


class DatasetConfig(_Strict):
    """One dataset: where its files are, how to decode them, what to extract."""

    name: str = ""
    source: list[str]
    labels: LabelsConfig | None = None
    sample_rate: int = 22050
    channels: Literal["mix", "first"] | int = "mix"
    #: decode block length (s): bounds a worker's memory per file. Finite (.inf sized an
    #: impossible block and failed every file), with no cap of its own: a block longer than a
    #: file reads the whole file at once (memory bounded by limits.max_duration_s), so only a
    #: value whose frames at limits.max_sample_rate overflow a number is refused
    block_seconds: float = Field(60.0, gt=0, allow_inf_nan=False)
    features: dict[str, Any] = Field(default_factory=dict)
    shard: ShardConfig = ShardConfig()
    limits: LimitsConfig = LimitsConfig()
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict)
    schedule: str | None = None
    #: cap on the new + changed files one ingestion processes (files in uri order); the rest
    #: wait for the next run. Bounds a run's memory and duration on a huge backlog (the
    #: publish step holds a run's table rows); scheduled runs then catch up batch by batch.
    #: ``rebuild`` ignores it (a rebuild replaces every clip's features at once).
    max_files_per_run: int | None = Field(None, gt=0)
    #: an ingestion that would remove more than this share of the dataset's clips (an empty or
    #: unmounted source folder, a glob that stopped matching) stops before any work;
    #: ``audiopipe ingest --allow-removals`` lets one run through. 1.0: never refused
    max_removed_share: float = Field(0.5, ge=0, le=1)
    demo_corpus: bool = False

    @field_validator("stages", mode="before")
    @classmethod
    def _empty_stage_params(cls, v: Any) -> Any:
        # `beats:` with nothing after it reads as None: no parameters
        if isinstance(v, dict):
            return {k: ({} if x is None else x) for k, x in v.items()}
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        # "" (or blank) would resolve to the config's own folder, outputs included
        blank = "must not be empty or blank (a path, glob or URL), got {!r}"
        if isinstance(v, str):
            if not v.strip():
                raise ValueError(blank.format(v))
            return [v]
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one path, glob or URL")
        if isinstance(v, list):
            for i, x in enumerate(v, 1):
                if isinstance(x, str) and not x.strip():
                    raise ValueError(f"entry {i} " + blank.format(x))
        return v

    @field_validator("sample_rate")
    @classmethod
    def _positive_rate(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"must be > 0, got {v}")
        if v < 1000 or v > 384_000:
            raise ValueError(f"must be between 1000 and 384000 Hz, got {v}")
        return v

    @field_validator("channels")
    @classmethod
    def _channel_index(cls, v: Any) -> Any:
        if isinstance(v, int) and v < 0:
            raise ValueError(f"a channel index must be >= 0, got {v}")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        # as Prefect will read it when `audiopipe serve` makes the deployment
        why = None if v is None else cron_problem(v)
        if why:
            raise ValueError(why)
        return v

    @model_validator(mode="after")
    def _block_frames(self) -> DatasetConfig:
        # the decode block is int(block_seconds * rate) frames: inf past ~1.8e308
        if not math.isfinite(self.block_seconds * self.limits.max_sample_rate):
            raise ValueError(
                f"block_seconds: {self.block_seconds:g} s at limits.max_sample_rate "
                f"({self.limits.max_sample_rate} Hz) is more frames than a decode block can count"
            )
        return self

    def recipe(self) -> dict[str, Any]:
        """The normalised feature recipe (defaults filled, checked)."""
        if self.features and "sr" in self.features and self.features["sr"] != self.sample_rate:
            raise ValueError(
                f"features.sr: must equal the dataset's sample_rate ({self.sample_rate}), "
                f"got {self.features['sr']} (audio is resampled to sample_rate before extraction)"
            )
        return _checked_recipe(self.features, self.sample_rate)


class Config(_Strict):
    """The whole ``datasets.yaml``."""

    storage: str = "data/out"
    cluster: ClusterConfig = ClusterConfig()
    default_dataset: str | None = None
    datasets: dict[str, DatasetConfig]
    base_dir: str = "."

    @model_validator(mode="after")
    def _names(self) -> Config:
        if not self.datasets:
            raise ValueError("datasets: declare at least one dataset")
        if self.default_dataset is not None and self.default_dataset not in self.datasets:
            raise ValueError(
                f"default_dataset: {self.default_dataset!r} is not one of the datasets "
                f"({', '.join(sorted(self.datasets))})"
            )
        return self

    def dataset(self, name: str | None = None) -> DatasetConfig:
        """The named dataset (or the default one), with a clear error if unknown."""
        name = name or self.default_dataset or next(iter(self.datasets))
        if name not in self.datasets:
            raise UnknownDatasetError(
                f"unknown dataset {name!r}; datasets.yaml declares: {', '.join(sorted(self.datasets))}"
            )
        return self.datasets[name]

    def resolve(self, path: str) -> str:
        """Resolve a path of the config relative to the config file's folder (URLs untouched)."""
        if "://" in path or os.path.isabs(path):
            return path
        return str((Path(self.base_dir) / path).resolve())

    @property
    def storage_root(self) -> str:
        env = os.environ.get("AUDIOPIPE_STORAGE")
        return env if env else self.resolve(self.storage)


def _raw_dataset_problems(name: str, ds: dict[str, Any]) -> list[str]:
    """A dataset's recipe, stages and file keys checked from the raw YAML, whatever else is wrong
    with it, so one run of ``validate`` reports every problem (pydantic stops at a bad field)."""
    problems: list[str] = []
    features = ds.get("features")
    sr = ds.get("sample_rate", 22050)
    sr_ok = isinstance(sr, int) and not isinstance(sr, bool) and 1000 <= sr <= 384_000
    if features is None or isinstance(features, dict):
        lines = _recipe_problems(features or {}, sr if sr_ok else 22050, trial=sr_ok)
        if not sr_ok:  # (sample_rate itself is reported): what does not depend on it
            lines = [x for x in lines if "sr/2" not in x and not x.startswith("features.sr:")]
        problems += [f"datasets.{name}.{line}" for line in lines]
    stages = ds.get("stages")
    if isinstance(stages, dict) and all(isinstance(v, dict | None) for v in stages.values()):
        problems += stage_problems(name, {k: v or {} for k, v in stages.items()})
    return problems + _blank_paths(name, ds)


def _blank_paths(name: str, ds: dict[str, Any]) -> list[str]:
    """A local-file key (``labels.path``, a stage's file parameter) given as blank text: a bad
    config. Whether the file is there is checked by the run that reads it
    (:mod:`audiopipe.config_files`): a share not mounted is no reason to refuse the config."""
    return [f"datasets.{name}.{key}: must not be empty (leave the key out to not set it)"
            for key, v, _ in path_keys(ds) if isinstance(v, str) and not v.strip()]


def _recipe_problems(features: dict[str, Any], sr: int, trial: bool = True) -> list[str]:
    """``features.key: reason`` lines of a dataset's recipe at the dataset's sample rate.

    The verdict comes from :mod:`audiopipe.recipe_cache` when this recipe was checked before
    at this sample rate by the same features code: no import of :mod:`audiopipe.features`.
    """
    if features and "sr" in features and features["sr"] != sr:
        return [
            f"features.sr: must equal the dataset's sample_rate ({sr}), got {features['sr']} "
            "(audio is resampled to sample_rate before extraction)"
        ]
    verdict = _verdict(features, sr, trial)
    assert verdict is not None  # (checked when not cached)
    return list(verdict["problems"])


def _checked_recipe(features: dict[str, Any], sr: int) -> dict[str, Any]:
    """The normalised recipe: from the verdict :func:`load_config` left (memo or on-disk
    cache) when there is a clean one, else :func:`audiopipe.features.check_recipe` (raises)."""
    verdict = _verdict(features, sr, trial=True, check=False)
    if verdict is not None and not verdict["problems"]:
        return json.loads(json.dumps(verdict["recipe"]))  # a copy: callers may change it
    from audiopipe import features as F

    return F.check_recipe({**(features or F.DEFAULT_RECIPE), "sr": sr})


#: verdicts of this process, by cache key
_memo: dict[str, dict[str, Any]] = {}


def _verdict(
    features: dict[str, Any], sr: int, trial: bool, check: bool = True
) -> dict[str, Any] | None:
    """``{"recipe": normalised or None, "problems": [lines]}`` of a recipe at ``sr``: from this
    process's memo, else the on-disk cache, else checked now (``check``; else None) and kept
    in both."""
    from audiopipe import recipe_cache

    key = recipe_cache.verdict_key(features or {}, sr, trial=trial)
    if key is not None and key in _memo:
        return _memo[key]
    verdict = recipe_cache.lookup(key)
    if verdict is None:
        if not check:
            return None
        verdict = _check(features, sr, trial)
        # only plain JSON data is kept: what is read back must equal what was checked
        try:
            plain = json.loads(json.dumps(verdict)) == verdict
        except (TypeError, ValueError):
            plain = False
        if plain:
            recipe_cache.store(key, verdict)
    if key is not None:
        _memo[key] = verdict
    return verdict


def _check(features: dict[str, Any], sr: int, trial: bool) -> dict[str, Any]:
    """The recipe check itself: normalise it (the registry), then run it on a test signal."""
    from audiopipe import features as F

    recipe = dict(features) if features else dict(F.DEFAULT_RECIPE)
    recipe["sr"] = sr
    try:
        norm = F.check_recipe(recipe)
    except ValueError as err:
        return {"recipe": None, "problems": str(err).splitlines()}
    problem = _trial(json.loads(json.dumps(norm)), sr) if trial else None
    return {"recipe": norm, "problems": [problem] if problem else []}


def _trial(recipe: dict[str, Any], sr: int) -> str | None:
    """Run a checked recipe on a short test signal: what the checks cannot foresee (a band
    past the Nyquist frequency of a feature's own layout...) fails here, not on every file."""
    import numpy as np

    from audiopipe import features as F

    n = max(4 * recipe["n_fft"], sr // 4)
    y = (0.1 * np.sin(np.arange(n) * 0.3) + 0.01 * np.cos(np.arange(n) * 1.7)).astype(np.float32)
    try:
        F.Extractor(recipe, sr)(y)
    except (ValueError, ArithmeticError, IndexError) as err:
        return f"features: this recipe fails on a test signal ({err})"
    return None


def parse_config(data: Any, base_dir: str | os.PathLike[str] = ".") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming each bad key.

    Every problem is reported, one ``key.path: reason`` line each: types and ranges of each
    key, relations between keys (limits, the feature recipe's semantics), stage parameters.

    Examples
    --------
    >>> parse_config({"datasets": {"d": {"source": "x/*.wav", "sample_rate": -5}}})
    Traceback (most recent call last):
    ...
    audiopipe.errors.ConfigError: datasets.d.sample_rate: must be > 0, got -5
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping with a 'datasets' key, got {type(data).__name__}"
        )
    data = dict(data)
    datasets = data.get("datasets")
    if isinstance(datasets, dict):
        data["datasets"] = {
            k: ({**v, "name": k} if isinstance(v, dict) else v) for k, v in datasets.items()
        }
    data["base_dir"] = str(base_dir)
    problems: list[str] = []
    cfg = None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        problems += format_errors(err)
    problems += storage_problems(data.get("storage", Config.model_fields["storage"].default),
                                 str(base_dir), map(str, datasets if isinstance(datasets, dict) else ()))
    for name, ds in (datasets if isinstance(datasets, dict) else {}).items():
        why = name_problem(str(name))  # its folder under the storage root
        if why:
            problems.append(f"datasets.{name}: {why}")
        if isinstance(ds, dict):
            problems += _raw_dataset_problems(str(name), ds)
    if problems or cfg is None:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return cfg


def stage_problems(dataset: str, stages: dict[str, Any]) -> list[str]:
    """Problems of a dataset's ``stages:`` against each stage's declared parameters.

    Unknown stages and parameters (with a did-you-mean), wrong types, values outside the
    allowed ones, missing required parameters: one ``datasets.D.stages.S.key: reason`` line
    each. Only the stages' light declaration modules are imported.

    Examples
    --------
    >>> stage_problems("demo", {"segment": {"mdoe": "novelty"}})
    ['datasets.demo.stages.segment.mdoe: unknown parameter (did you mean mode?)']
    """
    import difflib

    from audiopipe.stages import STAGES
    from audiopipe.stages.checks import check_params

    problems = []
    for stage, raw in stages.items():
        where = f"datasets.{dataset}.stages.{stage}"
        if stage not in STAGES:
            near = difflib.get_close_matches(stage, list(STAGES), n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            problems.append(f"{where}: unknown stage ({hint}known: {', '.join(sorted(STAGES))})")
            continue
        problems += check_params(stage, raw, where=where)
    return problems


def load_config(path: str | os.PathLike[str] = "datasets.yaml") -> Config:
    """Read and validate ``datasets.yaml`` with a safe YAML loader."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such configuration file")
    try:
        data = load_yaml(p.read_text(), str(p))
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return parse_config(data, base_dir=p.resolve().parent)


def config_hash(ds: DatasetConfig) -> str:
    """Hash of everything in a dataset's config that changes its outputs."""
    payload = {
        "sample_rate": ds.sample_rate,
        "channels": ds.channels,
        "recipe": ds.recipe(),
    }
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()

"""``datasets.yaml``: load, validate and normalise the pipeline configuration.

Everything a run needs is checked here, before any work starts: a bad file is
rejected with the key path and the reason, e.g.
``datasets.demo.sample_rate: must be > 0, got -5``.

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
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ClusterConfig(_Strict):
    """Where the work runs: a LocalCluster by default, or an existing scheduler."""

    scheduler: str | None = None
    n_workers: int = Field(2, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    memory_limit: str = "4GiB"

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
    block_seconds: float = Field(60.0, gt=0)
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
        if isinstance(v, str):
            return [v]
        if isinstance(v, list) and not v:
            raise ValueError("must name at least one path, glob or URL")
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
        if v is not None and len(v.split()) not in (5, 6):
            raise ValueError(f"must be a cron expression with 5 fields, got {v!r}")
        return v

    @model_validator(mode="after")
    def _limits_consistent(self) -> DatasetConfig:
        if self.limits.min_duration_s >= self.limits.max_duration_s:
            raise ValueError("limits.min_duration_s must be below limits.max_duration_s")
        return self

    def recipe(self) -> dict[str, Any]:
        """The normalised feature recipe (defaults filled, checked)."""
        from audiopipe import features as F

        recipe = dict(self.features) if self.features else dict(F.DEFAULT_RECIPE)
        if self.features and "sr" in self.features and self.features["sr"] != self.sample_rate:
            raise ValueError(
                f"features.sr: must equal the dataset's sample_rate ({self.sample_rate}), "
                f"got {self.features['sr']} (audio is resampled to sample_rate before extraction)"
            )
        recipe["sr"] = self.sample_rate
        return F.check_recipe(recipe)


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


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after", "function-before"))


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = _fmt_loc(e["loc"])
        msg = e["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif (
            "input" in e and e["type"] not in ("value_error",) and not isinstance(e["input"], dict)
        ):
            msg = f"{msg}, got {e['input']!r}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "\n".join(lines)


def parse_config(data: Any, base_dir: str | os.PathLike[str] = ".") -> Config:
    """Validate a parsed YAML document; raise :class:`ConfigError` naming each bad key.

    Examples
    --------
    >>> parse_config({"datasets": {"d": {"source": "x/*.wav", "sample_rate": -5}}})
    Traceback (most recent call last):
    ...
    audiopipe.config.ConfigError: datasets.d.sample_rate: must be > 0, got -5
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
    try:
        cfg = Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None
    problems = []
    for name, ds in cfg.datasets.items():
        try:
            ds.recipe()
        except ValueError as err:
            problems.append(
                f"datasets.{name}.{err}"
                if str(err).startswith("features")
                else f"datasets.{name}.features: {err}"
            )
        problems += stage_problems(name, ds.stages)
    if problems:
        raise ConfigError("\n".join(problems))
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
    from audiopipe.stages.runner import check_params

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
        data = yaml.safe_load(p.read_text())
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

"""The stage contract: declared params → read → fit/predict → evaluate → write → plot.

A stage module holds its method and one small class that says what it needs and makes:

- :class:`Stage` (fits or scores the dataset as a whole: classify, tag, recommend,
  retrieve): ``params`` (its :class:`~audiopipe.stages.params.Param` declarations),
  ``tables`` (the tables it owns) and :meth:`Stage.run`, which *reads* its inputs,
  *fits/predicts*, *evaluates* and returns a :class:`StageOutput` (tables, metric rows,
  model, plot functions). It writes nothing itself.
- :class:`ClipStage` (works clip by clip: beats, fingerprint, transcribe, separate,
  segment): :meth:`ClipStage.fit` builds what every clip needs (a model, bases; often
  nothing), :meth:`ClipStage.process` is a plain function from a list of clip ids to
  table rows (:class:`ClipBatch`) - the unit the runner runs per shard on Dask
  (:mod:`audiopipe.stages.cluster`) when given a client and enough clips - and
  :meth:`ClipStage.evaluate` scores the updated tables.

:mod:`audiopipe.stages.runner` does the rest for every stage alike: validates and
resolves the parameters, decides whether the run can be skipped (inputs, parameters and
code unchanged) or, for a clip stage, which clips are new or removed, writes the outputs
through the dataset's storage location (tables as new Delta versions, files under a
run-scoped folder ``<dataset>/stages/<stage>/<run_id>/``), draws the plots and records the
run in ``runs``. Stages never import Prefect, and never import one another: what two
stages share lives in ``_common``, ``_frames``, ``_mir``, ``_viterbi`` or ``_nmf``.

Examples
--------
>>> from audiopipe.stages.params import Param
>>> class Echo(Stage):
...     name = "echo"
...     params = (Param("word", "str", "hi", "what to say"),)
...     def run(self, ctx):
...         return StageOutput(report={"said": ctx.params["word"]})
>>> Echo().param_names()
['word']
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, ClassVar

from audiopipe.stages.params import Param

if TYPE_CHECKING:
    import pyarrow as pa

    from audiopipe.store.dataset import Dataset
    from audiopipe.store.records import RunRow

__all__ = ["Stage", "ClipStage", "StageContext", "StageOutput", "ClipBatch", "Plot"]

#: draws one figure into a binary file object (PNG)
Plot = Callable[[IO[bytes]], None]


@dataclass
class StageContext:
    """What a stage run sees: the dataset (at its pinned versions), resolved params, run id."""

    ds: Dataset
    stage: str
    params: dict[str, Any]
    run_id: str
    #: the latest successful run of this stage (a ``runs`` row), if any
    previous: RunRow | None = None
    #: files this run wrote in this process (uris), for the run record
    written: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """This run's folder: ``<dataset>/stages/<stage>/<run_id>`` (local path or URL)."""
        return self.ds.path("stages", self.stage, self.run_id)

    def out_uri(self, *parts: str) -> str:
        """A file of this run under :attr:`folder` (nothing is written)."""
        return "/".join([self.folder, *parts])

    def write_bytes(self, data: bytes, *parts: str) -> str:
        """Write ``data`` to a file of this run through the storage location; returns its uri."""
        uri = self.out_uri(*parts)
        self.ds.write_bytes(uri, data)
        self.written.append(uri)
        return uri

    def write_with(self, writer: Callable[[IO[bytes]], None], *parts: str) -> str:
        """Let ``writer`` fill an in-memory file, then store it as :meth:`write_bytes` does."""
        buf = io.BytesIO()
        writer(buf)
        return self.write_bytes(buf.getvalue(), *parts)

    def clip_ids(self) -> list[str]:
        """Clip ids of the dataset, in ``clips`` order (content order: see ``Dataset.table``)."""
        t = self.ds.table("clips", ["clip_id"])
        return t.column("clip_id").to_pylist() if t.num_rows else []


@dataclass
class StageOutput:
    """What :meth:`Stage.run` produced; the runner writes it.

    ``tables`` are written whole (a new Delta version replacing the previous rows);
    ``replace`` maps a table to ``(rows, key)``: only rows whose ``key`` value is among
    the new rows' are replaced (``--predict`` adds its clips to ``predictions``).
    ``metrics`` are rows of :func:`audiopipe.stages._common.metric_rows`; ``model`` is
    saved with skops as ``<model_name>.skops`` in the run folder; each ``plots`` entry
    draws one PNG. ``report`` holds the figures printed for the user.
    """

    tables: dict[str, pa.Table] = field(default_factory=dict)
    replace: dict[str, tuple[pa.Table, str]] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    model: Any = None
    model_name: str | None = None
    model_id: str | None = None
    plots: dict[str, Plot] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    n_clips: int = 0


@dataclass
class ClipBatch:
    """Rows made from one list of clips: ``rows[table]`` (dicts with ``clip_id``), error rows.

    ``errors`` are rows of the ``errors`` table (step = the stage); ``plot`` is whatever
    :meth:`ClipStage.plots` needs to draw (e.g. the first clip's envelope), or None.
    """

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    plot: Any = None
    #: files written while making the rows (uris; a worker's, returned to the runner)
    written: list[str] = field(default_factory=list)
    #: the run's plots, already drawn from ``plot`` where the rows were made (uris; the
    #: first shard on a cluster draws them, so the runner has no drawing left to do)
    plots: list[str] | None = None


class Stage:
    """A dataset-wide stage; see the module docstring for the contract."""

    #: the name under ``stages:`` and in ``audiopipe stage NAME``
    name: ClassVar[str] = ""
    #: one line for ``--help`` and the docs
    summary: ClassVar[str] = ""
    #: declared parameters
    params: ClassVar[tuple[Param, ...]] = ()
    #: tables this stage owns (written by no other stage)
    tables: ClassVar[tuple[str, ...]] = ()
    #: bump when the stage's results change for the same inputs (part of the run's key)
    version: ClassVar[str] = "1"
    #: types a saved model of this stage may contain (skops)
    trusted: ClassVar[tuple[str, ...]] = ()
    #: whether :meth:`run` reads audio or features from the data tables (always here)
    clipwise: ClassVar[bool] = False

    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def check(self, params: Mapping[str, Any]) -> list[str]:
        """Problems between parameters (e.g. one of two is needed); ``[]`` when fine."""
        return []

    def inputs(self, ctx: StageContext) -> dict[str, Any]:
        """Inputs of the run's key besides the data tables and file parameters (the runner
        adds those): e.g. the saved model a ``predict`` run applies."""
        return {}

    def run(self, ctx: StageContext) -> StageOutput:
        """Read → fit/predict → evaluate; return the outputs (nothing written here)."""
        raise NotImplementedError


class ClipStage(Stage):
    """A stage whose outputs are per clip: only new clips are processed, removed ones dropped.

    Each table of ``tables`` has a ``clip_id`` column and the schema ``schemas[table]``.
    A run processes the clips of :meth:`select` that are not in the first table yet (nor
    settled by an errors row, :attr:`settled_errors`) and drops rows of clips no longer
    selected; a change of parameters, code or :meth:`model_key` recomputes every clip.
    """

    clipwise: ClassVar[bool] = True
    #: Arrow schema of each table in ``tables``
    schemas: ClassVar[dict[str, Any]] = {}
    #: clips per call of :meth:`process` (one shard of work)
    shard_size: ClassVar[int] = 64
    #: fewer new clips than this run in-process, starting no cluster
    min_cluster_clips: ClassVar[int] = 128
    #: ``errors.error_type`` kinds that are a clip's result, not a failure (e.g. a recording
    #: without sound): a clip with such a row from a successful run of the same setup
    #: (parameters, code, model) is done, like one with rows; other failures are retried
    settled_errors: ClassVar[frozenset[str]] = frozenset()

    def select(self, ctx: StageContext) -> list[str]:
        """The clips this stage covers (default: every clip of the dataset)."""
        return ctx.clip_ids()

    def model_key(self, ctx: StageContext) -> str | None:
        """Identity of what :meth:`fit` would build from the inputs; a change redoes every clip."""
        return None

    def fit(self, ctx: StageContext) -> Any:
        """What every clip needs (a model, bases, a clip → reference map); default nothing.

        A state with a ``warnings`` attribute (a list of strings: what was warned about while
        fitting, e.g. a CV fold lacking labels) has it listed in the run's report."""
        return None

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        """Rows of the given clips (a plain function of its arguments; nothing written)."""
        raise NotImplementedError

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        """Metric rows over the updated tables (every clip, not only this run's: read them
        with ``ctx.ds.table``)."""
        return []

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Plot]:
        """Plots of this run (from the data the first processed clip left in ``batch.plot``)."""
        return {}

"""Run a stage as a pipeline step: validated, incremental, versioned, recorded.

:func:`run_stage` is what every caller uses (the CLI in-process, the ``stages`` Prefect
flow inside a task, a notebook):

1. resolve the parameters from their declaration (unknown keys, bad values and local files
   not there refused before any work; defaults from the dataset; paths against ``datasets.yaml``);
2. compute the run's key: parameter hash, code version, and the versions of its inputs
   (the dataset's pinned ``clips``/``features``/``frames_index`` versions, the content
   hash of every file parameter, the model a ``--predict`` run applies);
3. skip when the last successful run of the stage has the same key and its tables are
   still at the versions it wrote (``force=True`` reruns);
4. run the stage (:class:`~audiopipe.stages.base.Stage` or, clip by clip, only the new
   clips of a :class:`~audiopipe.stages.base.ClipStage` and dropping removed ones; every
   clip when the parameters, code, model or the dataset's feature recipe changed);
5. write its tables as new Delta versions and its files under
   ``<dataset>/stages/<stage>/<run_id>/`` through the storage location, append metric
   rows, draw its plots, and append a ``runs`` row (kind ``stage``) with the parameters,
   their hash, the code version, input and output table versions, model id, artifacts and
   timings. A failing run appends a ``failed`` row and re-raises.

One run of a stage at a time per dataset (a lock per stage); a stage does not start while an
ingest, rebuild or vacuum holds the dataset's lock (it waits :data:`DATASET_WAIT_S`, then
refuses naming the holder), and an ingest, rebuild or vacuum does not start while a stage runs.
A dataset opened before an ingest or rebuild published (``run_stages`` opens it once for all
its stages; a notebook keeps one open) is opened again once the stage holds its lock, so the
run covers the clips of now; one opened as of a ``run_id`` is left as asked. A run whose stage
lock was taken over (its heartbeat failed for a lease: :mod:`audiopipe.store.lease`) raises
:class:`~audiopipe.store.lease.LeaseLost` instead of appending the ``runs`` row that would make
its outputs the stage's latest.

Examples
--------
>>> import audiopipe                                                # doctest: +SKIP
>>> ds = audiopipe.open_dataset("data/out", "demo")                # doctest: +SKIP
>>> run_stage(ds, "beats")["clips_processed"]                       # doctest: +SKIP
300
>>> run_stage(ds, "beats")["skipped"]                               # doctest: +SKIP
'unchanged since run beats-20261125T1312-ab12cd (inputs, parameters, code)'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from audiopipe.errors import ConfigError
from audiopipe.stages import stage_class
from audiopipe.stages._outputs import draw, metric_summary, to_table, write_errors, write_metrics
from audiopipe.stages._setup import (
    INPUT_TABLES,  # noqa: F401 (the runner's constants, defined beside its helpers)
    SHARED_TABLES,  # noqa: F401
    current_version,
    dataset_defaults,
    inputs,
    latest,
    outputs_intact,
    recipe_of,
)
from audiopipe.stages.base import ClipStage, Stage, StageContext, StageOutput
from audiopipe.stages.checks import check_params, check_request, missing_param_files
from audiopipe.stages.cluster import process_clips
from audiopipe.stages.params import ParamError, check, resolve

if TYPE_CHECKING:
    from audiopipe.store.dataset import Dataset

__all__ = [
    "run_stage",
    "run_stages",
    "run_named",
    "check_params",
    "code_version",
    "params_hash",
    "new_stage_run_id",
]

#: seconds a stage waits for an ingest, rebuild or vacuum holding the dataset's lock to end
DATASET_WAIT_S = 5.0


def new_stage_run_id(stage: str) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stage}-{now}-{uuid.uuid4().hex[:6]}"


def code_version(stage: Stage) -> str:
    """What made a stage's outputs: package, feature and stage versions, and the order stages
    read ``clips`` in (``Dataset.table``: outputs of folds drawn in another order are redone)."""
    from audiopipe import __version__
    from audiopipe.features.registry import FEATURES_VERSION

    v = f"{stage.name} {stage.version} clips content"
    return f"audiopipe {__version__} features {FEATURES_VERSION} {v}"


def params_hash(params: Mapping[str, Any]) -> str:
    """Stable hash (16 hex digits) of resolved parameters."""
    payload = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


class _Timer:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(self.phases.get(name, 0.0) + now - self.t, 4)
        self.t = now


def _run_whole(ctx: StageContext, stage: Stage, timer: _Timer) -> dict[str, Any]:
    from audiopipe.stages._common import save_model

    out: StageOutput = stage.run(ctx)
    timer.lap("run")
    versions: dict[str, int | None] = {}
    for name, data in out.tables.items():
        versions[name] = ctx.ds.write_table(name, data, mode="overwrite")
    for name, (data, key) in out.replace.items():
        versions[name] = ctx.ds.write_table(name, data, mode="replace", key=key)
    model_uri = save_model(ctx, out.model_name or stage.name, out.model) if out.model else None
    metrics_v = write_metrics(ctx.ds, out.metrics)
    if metrics_v is not None:
        versions["metrics"] = metrics_v
    timer.lap("write")
    plots = draw(ctx, out.plots)
    timer.lap("plot")
    return {
        "model_id": out.model_id,
        "tables": versions,
        "model": model_uri,
        "plots": plots,
        "metrics": metric_summary(out.metrics),
        "n_clips": out.n_clips,
        "processed": out.n_clips,
        "failed": 0,
        "report": out.report,
        "message": f"{out.n_clips} clips",
    }


def _run_clips(
    ctx: StageContext,
    stage: ClipStage,
    timer: _Timer,
    incremental: bool,
    client: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    selected = stage.select(ctx)
    key_table = stage.tables[0]
    if incremental:
        t = ctx.ds.table(key_table, ["clip_id"]) if key_table in ctx.ds.table_names() else None
        done = set(t.column("clip_id").unique().to_pylist()) if t is not None else set()
        from audiopipe.stages._outputs import settled_clips  # (no rows by design, e.g. silence)

        settled = settled_clips(ctx.ds, stage.name, stage.settled_errors, ctx.previous)
        chosen = set(selected)
        todo = [c for c in selected if c not in done and c not in settled]
        removed = sorted(done - chosen)
    else:
        todo, removed = list(selected), []
    timer.lap("plan")
    state = stage.fit(ctx) if todo or not incremental else None
    timer.lap("fit")
    batches, workers = process_clips(ctx, stage, todo, state, client, log)
    timer.lap("process")
    versions: dict[str, int | None] = {}
    keys = set(todo) | set(removed)
    for name in stage.tables:
        data = to_table([r for b in batches for r in b.rows.get(name, [])], stage.schemas[name])
        if incremental:
            if keys:
                versions[name] = ctx.ds.write_table(
                    name, data, mode="replace", key="clip_id", keys=keys
                )
            else:
                versions[name] = current_version(ctx.ds, name)
        else:
            versions[name] = ctx.ds.write_table(name, data, mode="overwrite")
    errors = [e for b in batches for e in b.errors]
    ev = write_errors(ctx.ds, errors)
    if ev is not None:
        versions["errors"] = ev
    metrics = stage.evaluate(ctx, state) if (todo or removed or not incremental) else []
    mv = write_metrics(ctx.ds, metrics)
    if mv is not None:
        versions["metrics"] = mv
    timer.lap("write")
    first = next((b for b in batches if b.plot is not None or b.plots is not None), None)
    plots = [] if first is None else first.plots  # drawn on a worker while shards ran
    if first is not None and plots is None:
        plots = draw(ctx, stage.plots(ctx, first))
    timer.lap("plot")
    failed = sum(b.failed for b in batches)
    what = "all" if not incremental else "new"
    return {
        "model_id": getattr(state, "model_id", None) or stage.model_key(ctx),
        "tables": versions,
        "model": getattr(state, "model_uri", None),
        "plots": plots,
        "metrics": metric_summary(metrics),
        "n_clips": len(selected),
        "processed": len(todo),
        "failed": failed,
        "removed": len(removed),
        "report": {"workers": workers, **({"warnings": w} if (w := getattr(state, "warnings", None)) else {})},
        "message": f"{len(todo)} {what} clips processed ({failed} failed), {len(removed)} removed; "
        f"{len(selected)} clips in the stage's tables",
    }


def _resolve(
    ds: Dataset, stage: Stage, name: str, raw: dict[str, Any], base_dir: str | None
) -> dict[str, Any]:
    """``raw`` checked and resolved (defaults, some from ``ds``), or :class:`ConfigError`."""
    try:
        problems = check(stage.params, raw, where=name)
        if problems:
            raise ParamError("\n".join(problems))
        resolved = resolve(
            stage.params,
            raw,
            dataset=dataset_defaults(ds, stage, raw),
            base_dir=base_dir,
            where=name,
        )
        cross = stage.check(resolved)
        if cross:
            raise ParamError("\n".join(f"{name}: {p}" for p in cross))
    except ParamError as err:
        raise ConfigError(str(err)) from None
    return resolved


def run_stage(
    ds: Dataset,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    base_dir: str | None = None,
    run_id: str | None = None,
    log: Callable[[str], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Run stage ``name`` on ``ds`` with ``params`` (see the module docstring); its report.

    ``client`` (a ``distributed.Client``, or a callable returning one, e.g.
    :class:`audiopipe.stages.cluster.LazyClient`, called only when needed) runs the new
    clips of a clip stage in shards on its workers when there are at least the stage's
    ``min_cluster_clips``; without it, or with fewer clips, they run in this process.
    The report has ``run_id``, ``skipped`` (why, or None), ``tables`` (versions written),
    ``metrics``, ``model``, ``plots``, counts and ``seconds``.
    """
    from audiopipe.store.lock import stage_lock
    from audiopipe.store.records import RunRow
    from audiopipe.store.runs import append_run, last_stage_run, read_runs

    stage = stage_class(name)()
    raw = dict(params or {})
    # (before resolving: another thread's run may bring the shared ``ds`` up to date meanwhile)
    before = dict(ds.versions)
    resolved = _resolve(ds, stage, name, raw, base_dir)
    missing = missing_param_files(ds.name, name, raw, base_dir)  # (as run_stages: no lock yet)
    if missing:
        raise FileNotFoundError("\n".join(missing))
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    timer = _Timer()
    loc = ds.location
    with stage_lock(loc, name, wait_s=DATASET_WAIT_S) as lease:
        if latest(ds).versions != before:  # an ingest published since resolved: its clips
            resolved = _resolve(ds, stage, name, raw, base_dir)
        run_id = run_id or new_stage_run_id(name)
        prev = last_stage_run(loc, name)
        ctx = StageContext(ds=ds, stage=name, params=resolved, run_id=run_id, previous=prev)
        ins = {**inputs(ds, stage, resolved), **stage.inputs(ctx)}
        phash, cv = params_hash(resolved), code_version(stage)
        same_setup = (  # (frames of another recipe: every clip again, see _setup.recipe_of)
            prev is not None
            and prev.params_hash == phash
            and prev.code_version == cv
            and (recipe := (ds.run or {}).get("recipe_hash")) is not None
            and recipe_of(prev, read_runs(loc)) == recipe
            and outputs_intact(ds, prev)
        )
        timer.lap("check")
        if (
            not force
            and same_setup
            and json.loads(prev.input_versions or "{}") == json.loads(json.dumps(ins))
        ):
            msg = f"unchanged since run {prev.run_id} (inputs, parameters, code); --force reruns"
            if log:
                log(f"{name}: {msg}")
            art = json.loads(prev.artifacts or "{}")
            return {
                "run_id": prev.run_id,
                "skipped": msg,
                "tables": prev.versions(),
                "model_id": prev.model_id,
                "model": art.get("model"),
                "plots": art.get("plots") or [],
                "seconds": round(time.perf_counter() - t0, 3),
            }
        row: dict[str, Any] = {
            "run_id": run_id,
            "dataset": ds.name,
            "kind": "stage",
            "stage": name,
            "code_version": cv,
            "started": started,
            "params": json.dumps(resolved, sort_keys=True, default=str),
            "params_hash": phash,
            "input_versions": json.dumps(ins, sort_keys=True),
            "recipe_hash": (ds.run or {}).get("recipe_hash"),
            "config_hash": (ds.run or {}).get("config_hash"),
        }
        try:
            if isinstance(stage, ClipStage):
                incremental = (
                    not force and same_setup and prev.model_id == stage.model_key(ctx)
                )
                res = _run_clips(ctx, stage, timer, incremental, client, log)
            else:
                res = _run_whole(ctx, stage, timer)
        except BaseException as err:
            finished = dt.datetime.now(dt.UTC)
            append_run(
                loc,
                RunRow(
                    **row,
                    status="failed",
                    finished=finished,
                    wall_seconds=(finished - started).total_seconds(),
                    message=f"{type(err).__name__}: {err}"[:2000],
                    timings=json.dumps(timer.phases),
                ),
            )
            raise
        finished = dt.datetime.now(dt.UTC)
        artifacts = {
            "folder": ctx.folder if ctx.written else None,
            "model": res["model"],
            "plots": res["plots"],
            "files": len(ctx.written),
        }
        row.update(
            status="ok",
            finished=finished,
            wall_seconds=(finished - started).total_seconds(),
            files_processed=res["processed"],
            files_failed=res["failed"],
            clips_total=res["n_clips"],
            table_versions=json.dumps(res["tables"], sort_keys=True),
            model_id=res["model_id"],
            artifacts=json.dumps(artifacts, sort_keys=True),
            timings=json.dumps(timer.phases, sort_keys=True),
            message=res["message"],
        )
        lease.check()  # its lock taken over (its heartbeat failed): no runs row shows its outputs
        append_run(loc, RunRow(**row))
    report = {
        "run_id": run_id,
        "skipped": None,
        "model_id": res["model_id"],
        "metrics": res["metrics"],
        "tables": res["tables"],
        "model": res["model"],
        "plots": res["plots"],
        "clips_processed": res["processed"],
        "clips_failed": res["failed"],
        "seconds": round((finished - started).total_seconds(), 3),
        **({"clips_removed": res["removed"]} if "removed" in res else {}),
        **res["report"],
    }
    if log:
        log(f"{name}: {res['message']} in {report['seconds']:.1f} s")
    return report


def run_named(
    root: str,
    dataset: str,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    base_dir: str | None = None,
    log: Callable[[str], None] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Open ``dataset`` under ``root`` (pinned to its last ingest) and :func:`run_stage` on it."""
    from audiopipe.store import open_dataset

    return run_stage(
        open_dataset(root, dataset),
        name,
        params,
        force=force,
        base_dir=base_dir,
        log=log,
        client=client,
    )


def run_stages(
    cfg: Any,
    dataset: str | None = None,
    names: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    runner: Callable[..., dict[str, Any]] = run_named,
    client: Any = None,
) -> dict[str, dict[str, Any]]:
    """Run a dataset's declared stages (or ``names``) in order; all are checked first.

    The request (parameters, then the local files they name) is checked completely before
    any stage runs (:func:`audiopipe.stages.checks.check_request`). ``overrides``
    (``--set``) apply to each stage; ``runner`` (default :func:`run_named`) runs one stage:
    the Prefect flow passes its task. ``client`` (in-process runner only) is shared by the
    clip stages (see :func:`run_stage`). ``cfg`` is an :class:`audiopipe.config.Config` (not
    imported here: the config imports the stages).
    """
    ds_cfg = cfg.dataset(dataset)
    _, todo = check_request(cfg, ds_cfg.name, names, overrides)
    if runner is run_named:  # in this process: open the dataset once for every stage
        from audiopipe.store import open_dataset

        ds = open_dataset(cfg.storage_root, ds_cfg.name)

        def runner(root: str, dataset: str, name: str, params: Any, **kw: Any) -> Any:
            return run_stage(ds, name, params, client=client, **kw)

    out = {}
    for n in todo:
        params = {**ds_cfg.stages.get(n, {}), **(overrides or {})}
        out[n] = runner(
            cfg.storage_root, ds_cfg.name, n, params, force=force, base_dir=cfg.base_dir, log=log
        )
    return out

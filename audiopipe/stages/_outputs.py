"""How a stage run's outputs are written: tables (new Delta versions), ``errors`` and ``metrics``
rows, plots - all through the dataset's storage location; and which ``errors`` rows settle a
clip (:func:`settled_clips`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from audiopipe.stages.base import StageContext
    from audiopipe.store.dataset import Dataset
    from audiopipe.store.records import RunRow

__all__ = ["to_table", "write_errors", "write_metrics", "draw", "metric_summary", "flac_bytes",
           "settled_clips"]


def to_table(rows: Sequence[Any], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    parts = [r for r in rows if isinstance(r, pa.Table)]
    dicts = [r for r in rows if not isinstance(r, pa.Table)]
    if dicts:
        parts.append(pa.Table.from_pylist(dicts, schema=schema))
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([p.select(schema.names).cast(schema) for p in parts])


def write_errors(ds: Dataset, rows: list[dict[str, Any]]) -> int | None:
    if not rows:
        return None
    import pyarrow as pa

    from audiopipe.store.tables import ERRORS_SCHEMA, conform

    return ds.write_table("errors", conform(pa.Table.from_pylist(rows), ERRORS_SCHEMA), mode="append")


def settled_clips(ds: Dataset, stage: str, kinds: frozenset[str], setup: RunRow | None) -> set[str]:
    """Clips whose ``errors`` row of ``stage`` is of a kind in ``kinds`` (a result, such as a
    recording without sound), written by a successful run of the same parameters, code and
    model, computed on frames of the same feature recipe as ``setup`` (the run an incremental
    run continues): done, not retried.

    A clip id names the clip's content, so a changed recording is a new clip; a run of
    another setup (a stage version bump, other parameters, a rebuild with another recipe)
    recomputes every clip anyway.
    """
    if not kinds or setup is None:
        return set()
    from audiopipe.stages._setup import recipe_of
    from audiopipe.store.runs import read_runs

    runs = read_runs(ds.location)
    recipe = recipe_of(setup, runs)
    same = {r.run_id for r in runs if r.kind == "stage" and r.stage == stage and r.status == "ok"
            and (r.params_hash, r.code_version, r.model_id)
            == (setup.params_hash, setup.code_version, setup.model_id)
            and recipe is not None and recipe_of(r, runs) == recipe}
    t = ds.table("errors", ["run_id", "clip_id", "step", "error_type"])
    return {c for r, c, s, k in zip(*(t.column(n).to_pylist() for n in t.column_names),
                                    strict=True)
            if s == stage and k in kinds and r in same and c is not None}


def write_metrics(ds: Dataset, rows: list[dict[str, Any]]) -> int | None:
    if not rows:
        return None
    import pyarrow as pa

    from audiopipe.stages._common import metrics_schema

    return ds.write_table(
        "metrics", pa.Table.from_pylist(rows, schema=metrics_schema()), mode="append"
    )


def draw(ctx: StageContext, plots: Mapping[str, Any]) -> list[str]:
    uris = []
    for name, draw in plots.items():
        uris.append(ctx.write_with(draw, "plots", f"{name}.png"))
    return uris


def metric_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in rows:
        key = r["metric"] if r.get("model_id") is None or not str(r["model_id"]).endswith(
            "-baseline"
        ) else f"{r['model_id'].removesuffix('-baseline')}.{r['metric']}"
        out[key] = round(float(r["value"]), 4)
    return out


def flac_bytes(y: np.ndarray, sr: int) -> bytes:
    """A mono FLAC file (16-bit) of ``y``, scaled down only if it would clip; written in blocks."""
    import io

    import numpy as np
    import soundfile as sf

    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0:  # FLAC is integer PCM: keep the stem's shape, avoid clipping
        y = y / peak
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=sr, channels=1, format="FLAC", subtype="PCM_16") as f:
        for a in range(0, y.size, 1 << 18):
            f.write(y[a : a + (1 << 18)])
    return buf.getvalue()

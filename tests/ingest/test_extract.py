"""Extracting a shard: per-file errors as rows, staged reuse, the time breakdown, BLAS threads."""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl

from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, staging
from audiopipe.ingest.extract import PHASES
from tests.audio_fixtures import sine, write
from tests.conftest import write_config


def _plan(tmp_path, n=3, read_ahead=False, **ds):
    for i in range(n):
        y = np.stack([sine(f=300 + 100 * i, dur=1.5, sr=44100)] * 2, axis=1)
        write(tmp_path / "c" / f"{i}.flac", y, 44100, "FLAC", "PCM_16")
    cfg = write_config(
        tmp_path,
        {"t": {"source": str(tmp_path / "c"), "shard": {"min_shards": 1}, **ds}},
    )
    plan = plan_ingest(load_config(cfg), "t", read_ahead=read_ahead)
    assert len(plan.shards) == 1
    return plan


@pytest.mark.parametrize("read_ahead", [False, True])
def test_timings_account_for_the_shard_and_the_result_is_staged_once(tmp_path, read_ahead):
    plan = _plan(tmp_path, read_ahead=read_ahead)
    shard, ctx = plan.shards[0], plan.context
    res = extract_shard(shard, ctx)
    assert (res.files_ok, res.files_failed, res.reused) == (3, 0, False)
    assert set(res.timings) == {*PHASES, "total"}
    assert res.timings["total"] == pytest.approx(res.seconds)
    for phase in ("hash", "header", "decode", "mix", "resample", "features", "zarr", "staging"):
        assert res.timings[phase] > 0, phase
    # the reading side (with read-ahead in its own thread, which leaves resampling to this one)
    reading = ("hash", "header", "decode", "mix") + (() if read_ahead else ("resample",))
    this_thread = sum(v for k, v in res.timings.items() if k != "total" and k not in reading)
    if read_ahead:  # reading overlaps: this thread's phases (waiting included) make the total
        assert this_thread == pytest.approx(res.seconds, rel=1e-6)
    else:
        assert res.timings["wait"] == 0
        assert this_thread + sum(res.timings[k] for k in reading) == pytest.approx(res.seconds, rel=1e-6)
    again = extract_shard(shard, ctx)  # staged with _SUCCESS: nothing is recomputed
    assert again.reused and again.files_ok == 3 and again.timings == res.timings
    assert staging.read_staged(ctx.location, [shard.key], "clips").num_rows == 3


@pytest.mark.parametrize("read_ahead", [False, True])
def test_a_file_that_fails_is_a_row_and_the_others_go_on(tmp_path, read_ahead):
    plan = _plan(tmp_path, read_ahead=read_ahead)
    shard, ctx = plan.shards[0], plan.context
    bad = shard.files[1].uri

    def hook(uri: str) -> None:
        if uri == bad:
            raise ValueError("a checker refused it")

    res = extract_shard(shard, ctx, decoder_hook=hook)
    assert (res.files_ok, res.files_failed) == (2, 1)
    errors = staging.read_staged(ctx.location, [shard.key], "errors").to_pylist()
    (e,) = errors
    assert e["uri"] == bad and e["step"] == "features" and e["error_type"] == "ValueError"
    assert e["message"].startswith("ValueError: a checker refused it | ")
    assert "Traceback" in e["message"] and e["clip_id"] is not None
    idx = staging.read_staged(ctx.location, [shard.key], "frames_index").to_pylist()
    assert [(r["start"], r["stop"]) for r in idx] == [(0, idx[0]["stop"]), (idx[0]["stop"], idx[1]["stop"])]


def _blas_threads() -> int:
    return max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas")


def test_extraction_runs_with_one_blas_thread_and_restores_the_limit(tmp_path):
    plan = _plan(tmp_path, n=2)  # (the hook runs in this thread: no read-ahead)
    seen: list[int] = []
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        extract_shard(plan.shards[0], plan.context, decoder_hook=lambda _: seen.append(_blas_threads()))
        after = _blas_threads()
    assert seen == [1, 1], "each file is decoded and extracted with one BLAS thread"
    assert after == before, "the caller's limit is back afterwards"

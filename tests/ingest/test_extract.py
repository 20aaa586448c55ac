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


@pytest.mark.parametrize("spare_core", [False, True], ids=["one-thread", "file-pool"])
def test_timings_account_for_the_shard_and_the_result_is_staged_once(tmp_path, spare_core):
    plan = _plan(tmp_path, read_ahead=spare_core)
    shard, ctx = plan.shards[0], plan.context
    res = extract_shard(shard, ctx)
    assert (res.files_ok, res.files_failed, res.reused) == (3, 0, False)
    assert set(res.timings) == {*PHASES, "total"}
    assert res.timings["total"] == pytest.approx(res.seconds)
    for phase in ("hash", "header", "decode", "mix", "resample", "features", "zarr", "staging"):
        assert res.timings[phase] > 0, phase
    # with a spare core the files are extracted in pool threads (hash ... stats), while this
    # thread waits for them and writes: its phases make the total
    pool = ("hash", "header", "decode", "mix", "resample", "features", "stats")
    this_thread = sum(v for k, v in res.timings.items() if k != "total" and k not in pool)
    if spare_core:
        assert this_thread == pytest.approx(res.seconds, rel=1e-6)
        assert res.timings["wait"] > 0
    else:
        assert res.timings["wait"] == 0
        assert this_thread + sum(res.timings[k] for k in pool) == pytest.approx(res.seconds, rel=1e-6)
    again = extract_shard(shard, ctx)  # staged with _SUCCESS: nothing is recomputed
    assert again.reused and again.files_ok == 3 and again.timings == res.timings
    assert staging.read_staged(ctx.location, [shard.key], "clips").num_rows == 3


@pytest.mark.parametrize("spare_core", [False, True], ids=["one-thread", "file-pool"])
def test_a_file_that_fails_is_a_row_and_the_others_go_on(tmp_path, spare_core):
    plan = _plan(tmp_path, read_ahead=spare_core)
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


def _staged(ctx, shard):
    """The shard's staged rows and frames, without what differs between runs (part name)."""
    from audiopipe.store.frames import open_part

    loc = ctx.location
    tables = {t: staging.read_staged(loc, [shard.key], t).to_pylist()
              for t in ("clips", "features", "frames_index", "errors")}  # fmt: skip
    (part,) = {r["part"] for r in tables["frames_index"]}
    for r in tables["frames_index"]:
        r.pop("part")
    for r in tables["errors"]:
        r["message"] = r["message"].split(" | ")[0]  # (the traceback names the thread's frames)
    g = open_part(loc.frames_uri(part), loc.fsspec_options)
    return tables, {k: np.asarray(g[k][:]) for k in sorted(g.array_keys())}


def test_the_file_pool_gives_what_one_thread_gives_in_file_order(tmp_path):
    """Files of very different lengths (a later file finishes first in the pool), failures
    before and during decoding between them: the same rows in the same order, the same
    frames at the same positions of the part, as extracting in this thread."""
    from audiopipe.catalog import FileEntry
    from audiopipe.ingest.shard import Shard
    from tests.audio_fixtures import bad_inputs

    c = tmp_path / "c"
    lengths = [6.0, 0.4, 3.0, 0.2, 4.5]
    paths = [write(c / f"{i}.flac", np.stack([sine(f=300 + 50 * i, dur=d, sr=44100)] * 2, 1),
                   44100, "FLAC", "PCM_16") for i, d in enumerate(lengths)]  # fmt: skip
    bad = bad_inputs(tmp_path / "bad")
    paths[2:2] = [bad["truncated_flac"][0], bad["text"][0]]
    files = tuple(FileEntry(str(p), p.stat().st_size, p.stat().st_mtime) for p in paths)
    out = {}
    for spare_core in (False, True):
        plan = _plan(tmp_path / f"p{spare_core}", n=1, read_ahead=spare_core)
        shard = Shard(f"s-{spare_core}", files)
        res = extract_shard(shard, plan.context)
        assert (res.files_ok, res.files_failed) == (5, 2)
        out[spare_core] = _staged(plan.context, shard)
    (rows1, frames1), (rows2, frames2) = out[False], out[True]
    assert [r["uri"] for r in rows2["clips"]] == [str(p) for p in paths if "bad" not in str(p)]
    assert [r["uri"] for r in rows2["errors"]] == [str(p) for p in paths[2:4]]
    for t in rows1:
        for a, b in zip(rows1[t], rows2[t], strict=True):
            a, b = dict(a), dict(b)
            for k in ("run_id", "time"):  # (of the run)
                a.pop(k, None), b.pop(k, None)
            assert a == b, t
    assert frames1.keys() == frames2.keys()
    for k in frames1:
        np.testing.assert_array_equal(frames1[k], frames2[k], err_msg=k)

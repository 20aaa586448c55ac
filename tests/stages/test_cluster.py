"""Clip stages in shards on a real Dask LocalCluster (2 worker processes): the same tables as
in-process, a failing clip is a row, a clip that kills its worker is isolated."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from audiopipe.stages import run_stage
from audiopipe.stages.beats import Beats
from audiopipe.stages.cluster import LazyClient, plan_clip_shards

from ._ingest import ingest


@pytest.fixture(scope="module")
def client(dask_scheduler):
    from distributed import Client

    with Client(dask_scheduler, timeout=60) as c:
        c.wait_for_workers(2, timeout=120)
        yield c


@pytest.fixture()
def any_size(monkeypatch):
    """Send every run to the cluster, however few its clips."""
    monkeypatch.setattr(Beats, "min_cluster_clips", 1)


def _sorted(t, col):
    return t.to_pandas().sort_values(col, kind="stable").reset_index(drop=True)


def test_plan_is_balanced_with_two_shards_per_worker():
    ids = [f"c{i:02d}" for i in range(10)]
    shards = plan_clip_shards(ids, shard_size=32, n_workers=2)
    assert [len(s) for s in shards] in ([3, 2, 3, 2], [2, 3, 2, 3], [3, 3, 2, 2], [2, 2, 3, 3])
    assert [c for s in shards for c in s] == ids  # consecutive, in order, none lost
    # by weight: one long clip gets a shard of its own
    w = [10.0] + [1.0] * 9
    assert plan_clip_shards(ids, 32, 1, w)[0] == ["c00"]


def test_beats_on_the_cluster_equal_in_process(demo_folder, tmp_path, client, any_size):
    ds = ingest(tmp_path / "out", "c", str(demo_folder), None)
    some = {"clips": ds.table("clips", ["clip_id"]).column("clip_id").to_pylist()[::3]}
    here = run_stage(ds, "beats", some, force=True)
    assert here["workers"] == 0  # no client: in this process
    tempo, beats = _sorted(ds.table("tempo"), "clip_id"), _sorted(ds.table("beats"), "clip_id")
    there = run_stage(ds, "beats", some, force=True, client=client)
    assert there["workers"] == 2 and there["clips_processed"] == here["clips_processed"] > 8
    # the plot was drawn by the worker of the first shard, into this run's folder
    assert [Path(u).name for u in there["plots"]] == [Path(u).name for u in here["plots"]]
    assert there["run_id"] in there["plots"][0]
    assert Path(there["plots"][0]).read_bytes()[:4] == b"\x89PNG"
    ds2 = type(ds)(ds.location)
    # the same rows; floats to a tolerance (workers hold BLAS to one thread: another
    # summation order in the last bits)
    got, got_beats = _sorted(ds2.table("tempo"), "clip_id"), _sorted(ds2.table("beats"), "clip_id")
    assert got[["clip_id", "n_beats", "error"]].equals(tempo[["clip_id", "n_beats", "error"]])
    np.testing.assert_allclose(got.bpm, tempo.bpm, rtol=1e-6)
    assert list(got_beats.clip_id) == list(beats.clip_id)
    np.testing.assert_allclose(got_beats.time_s, beats.time_s, atol=1e-3)
    # a lazy client is not started for a run that stays in-process (nothing new to do)
    with LazyClient() as lazy:
        assert run_stage(ds2, "beats", some, client=lazy)["skipped"] and not lazy.started


def _forget_decoder_hook() -> None:
    import os

    os.environ.pop("AUDIOPIPE_DECODER_HOOK", None)


def test_a_clip_killing_its_worker_becomes_an_errors_row(
    demo_folder, tmp_path, client, any_size, monkeypatch
):
    src = tmp_path / "src"
    src.mkdir()
    wavs = sorted(Path(demo_folder).rglob("*.wav"))[:8]
    for i, w in enumerate(wavs[:7]):
        shutil.copy(w, src / f"ok{i}.wav")
    shutil.copy(wavs[7], src / "poison.wav")
    (src / "broken.wav").write_bytes(b"RIFF....WAVEnot audio")  # fails at ingest: no clip
    ds = ingest(tmp_path / "out", "p", str(src), None)
    # the clip's audio vanishes after ingest: process() raises, the stage makes it a row
    (src / "ok6.wav").unlink()
    monkeypatch.setenv("AUDIOPIPE_DECODER_HOOK", "tests.fault_hooks:crash_on_poison")

    def set_failures(n):
        def f(dask_scheduler, n=n):
            old = dask_scheduler.allowed_failures
            dask_scheduler.allowed_failures = n
            return old

        return client.run_on_scheduler(f)

    old = set_failures(0)  # a killed worker surfaces at once (as tests/flows do)
    try:
        rep = run_stage(ds, "beats", client=client)
    finally:
        set_failures(old)
        # the nannies respawned the killed workers with the hook in their environment: take
        # it out, or every later run on the session's cluster decodes through it (a flow
        # test run after this one found its local run's decodes logged by these workers)
        monkeypatch.delenv("AUDIOPIPE_DECODER_HOOK")
        client.wait_for_workers(2, timeout=120)
        client.run(_forget_decoder_hook)
    tempo = ds.table("tempo").to_pandas()
    clips = ds.table("clips").to_pandas().set_index("clip_id").uri
    names = {Path(clips[c]).name: c for c in clips.index}
    assert rep["clips_processed"] == 8 and rep["clips_failed"] == 2
    ok = tempo[tempo.error.isna()]
    assert sorted(Path(clips[c]).name for c in ok.clip_id) == [f"ok{i}.wav" for i in range(6)]
    assert tempo.set_index("clip_id").error[names["ok6.wav"]]  # a plain failure: its row
    errors = ds.table("errors").to_pandas()
    crashed = errors[errors.step == "beats"]
    assert list(crashed.clip_id) == [names["poison.wav"]]
    assert crashed.error_type.iloc[0] == "worker_crashed"
    assert "killed the worker" in crashed.message.iloc[0]
    # the poison clip was alone when it was blamed: its shard was split around it
    decoded = (src / ".decoded.log").read_text().split()
    assert 2 <= sum(u.endswith("poison.wav") for u in decoded[1::2]) <= 4


def test_lazy_client_starts_a_quiet_cluster_that_runs_shards():
    """The LocalCluster a LazyClient starts has Dask's background CPU off (the settings
    reach the worker processes, not only this one) and still runs work."""
    import dask

    with LazyClient(n_workers=1, memory_limit="1GiB") as lazy:
        c = lazy()
        assert lazy.started and c.submit(sum, [1, 2], pure=False).result() == 3
        assert list(c.run(lambda: dask.config.get("distributed.worker.profile.enabled")).values()) == [False]
        assert c.run_on_scheduler(lambda dask_scheduler: "stealing" in dask_scheduler.extensions) is False


def test_each_run_on_a_worker_gets_the_decoder_hook_it_asked_for(monkeypatch):
    # the worker's cached Dataset was shared by runs of any hook, and each call set its own
    # hook on it afterwards, outside the lock: a run could decode with another run's hook
    import os.path
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import audiopipe.store.dataset as dataset_module
    from audiopipe.stages import cluster

    class FakeDataset:  # opening a real one reads its runs table: not what is tested here
        def __init__(self, loc, run_id=None):
            self.location, self.run_id, self.decoder_hook = loc, run_id, None

    monkeypatch.setattr(dataset_module, "Dataset", FakeDataset)
    monkeypatch.setattr(cluster, "_OPEN", {})
    hooks = {None: None, "os.path:basename": os.path.basename, "os.path:dirname": os.path.dirname,
             "os.path:normpath": os.path.normpath, "os.path:abspath": os.path.abspath}

    def work(hook):
        return cluster.ClipWork("/r", "d", {}, "run1", "beats", {}, "s1", decoder_hook=hook)

    a = cluster._dataset(work("os.path:basename"))
    b = cluster._dataset(work("os.path:dirname"))
    assert a.decoder_hook is os.path.basename and b.decoder_hook is os.path.dirname
    assert cluster._dataset(work("os.path:basename")) is a  # still opened once per hook
    start = threading.Barrier(8)

    def many(t):
        start.wait()
        got = []
        for h in np.random.default_rng(t).choice(list(hooks)[1:] + [None], 100):
            got.append((h, cluster._dataset(work(h))))
        return got

    with ThreadPoolExecutor(8) as pool:
        got = [p for res in pool.map(many, range(8)) for p in res]
    assert len(got) == 800 and all(ds.decoder_hook is hooks[h] for h, ds in got)

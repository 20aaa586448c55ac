"""Reading a source file for an ingest: hash it then decode it from its path, or read its bytes
once, hash them and decode them from memory (:mod:`audiopipe.ingest.reader`).

Local files: both ways on the same files (ESC-10's Ogg clips from the shared corpora, and
generated FLAC files, 44.1 kHz stereo, 120 s each), in alternating rounds; the median seconds
per file of each way. Remote files (the same FLAC files on a moto S3 server on 127.0.0.1, when
moto is installed): a :class:`~audiopipe.ingest.reader.ShardReader`'s walk and decode of each
file, and the GET requests the server answered. Prints a table; asserts nothing. Run::

    .venv/bin/python benchmarks/read_once.py --rounds 3
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audiopipe.audio import stream  # noqa: E402
from audiopipe.catalog import FileEntry, hash_bytes, hash_file  # noqa: E402
from audiopipe.ingest.reader import Opened, ShardReader  # noqa: E402

SR = 22050


def _decode(src) -> int:
    return sum(b.size for b in stream(src, SR, block_seconds=60.0))


def by_path(path: str) -> int:
    hash_file(path)
    return _decode(path)


def in_memory(path: str) -> int:
    with open(path, "rb") as f:
        data = f.read()
    hash_bytes(data)
    return _decode(io.BytesIO(data))


def _flac_corpus(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        p = folder / f"f{i}.flac"
        t = np.arange(120 * 44100) / 44100
        y = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(p, np.stack([y, y[::-1]], 1).astype(np.float32), 44100, "PCM_16", format="FLAC")
        out.append(str(p))
    return out


def _time(fn, paths: list[str]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return (time.perf_counter() - t0) / len(paths)


def local_rows(sets: dict[str, list[str]], rounds: int) -> list[tuple[str, str, float]]:
    rows = []
    for name, paths in sets.items():
        for p in paths:  # page cache warm for both ways
            by_path(p)
        got = {"path": [], "memory": []}
        for r in range(rounds):
            order = ("path", "memory") if r % 2 == 0 else ("memory", "path")
            for way in order:
                got[way].append(_time(by_path if way == "path" else in_memory, paths))
        rows += [(name, way, statistics.median(v)) for way, v in got.items()]
    return rows


def remote_rows(paths: list[str], rounds: int) -> list[tuple[str, str, float, int]]:
    try:
        import boto3
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError:
        return []
    import audiopipe.ingest.reader as reader_mod

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # (a line per request)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    gets: list[str] = []
    app = server._server.app

    def logged(environ, start_response):
        if environ["REQUEST_METHOD"] == "GET":
            gets.append(environ.get("PATH_INFO", ""))
        return app(environ, start_response)

    server._server.app = logged
    host, port = server.get_host_and_port()
    opts = {"key": "k", "secret": "s", "client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", aws_access_key_id="k",
                 aws_secret_access_key="s", region_name="us-east-1").create_bucket(Bucket="bench")
    fs = s3fs.S3FileSystem(**opts)
    entries = []
    for p in paths:
        fs.put(p, f"bench/{Path(p).name}")
        entries.append(FileEntry(f"s3://bench/{Path(p).name}", os.path.getsize(p), 1.0))
    rows = []
    keep = reader_mod.IN_MEMORY_BYTES
    try:
        for way, limit in (("hash, then decode via fsspec", 0), ("read once, from memory", keep)):
            reader_mod.IN_MEMORY_BYTES = limit
            secs = []
            for _ in range(rounds):
                gets.clear()
                t0 = time.perf_counter()
                reader = ShardReader(SR, "mix", 60.0, storage_options=opts)
                for ev in reader.events(entries):
                    assert isinstance(ev, Opened), ev
                    sum(b.size for b in ev.blocks())
                secs.append((time.perf_counter() - t0) / len(entries))
            rows.append(("flac 120 s (s3)", way, statistics.median(secs), len(gets) // len(entries)))
    finally:
        reader_mod.IN_MEMORY_BYTES = keep
        server.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flac", type=int, default=4, help="generated FLAC files (120 s each)")
    args = ap.parse_args()
    corpora = Path(os.environ.get("AUDIOPIPE_CORPORA", ROOT.parent / "shared" / "corpora"))
    with tempfile.TemporaryDirectory() as d:
        sets = {"flac 120 s stereo": _flac_corpus(Path(d), args.flac)}
        esc = sorted(str(p) for p in (corpora / "esc10" / "audio").glob("*.ogg"))[:80]
        if esc:
            sets["esc10 ogg 5 s"] = esc
        rows = local_rows(sets, args.rounds)
        remote = remote_rows(sets["flac 120 s stereo"], args.rounds)
    print(f"{'files':<20} {'way':<30} {'ms/file':>9} {'GETs/file':>10}")
    for name, way, s in rows:
        print(f"{name:<20} {way:<30} {1000 * s:9.1f} {'':>10}")
    for name, way, s, g in remote:
        print(f"{name:<20} {way:<30} {1000 * s:9.1f} {g:>10}")


if __name__ == "__main__":
    main()

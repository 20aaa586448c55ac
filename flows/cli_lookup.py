"""The lookup commands of the ``audiopipe`` script: ``identify`` (fingerprint answers for
files, folders or globs) and ``similar`` (nearest clips); neither imports Prefect.

Examples
--------
::

    audiopipe identify clips/ --out answers.csv       # many excerpts, one process
    audiopipe similar query.wav -d demo -k 5          # the five nearest clips
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from audiopipe.config import load_config

__all__ = ["cmd_identify", "cmd_similar"]


def _queries(items: list[str]) -> list[str]:
    """Files named directly, audio files found in folders, or glob matches (in order).

    A path that exists is taken as written, whatever its characters ('Album [2020]/a.wav'
    is a file, not a pattern); only one that does not is expanded as a glob, and a pattern
    that matches nothing is kept as written, so the caller names it instead of dropping it.
    """
    import glob

    from audiopipe.catalog import AUDIO_EXTENSIONS

    out: list[str] = []
    for it in items:
        if os.path.isdir(it):
            found = sorted(
                os.path.join(d, f)
                for d, _, fs in os.walk(it)
                for f in fs
                if f.lower().endswith(AUDIO_EXTENSIONS)
            )
            out += found
        elif not os.path.exists(it) and any(c in it for c in "*?[") and "://" not in it:
            out += sorted(glob.glob(it, recursive=True)) or [it]
        else:
            out.append(it)
    if not out:
        raise FileNotFoundError(f"no audio files in {', '.join(items)}")
    return out


def _write_answers(rows: list[dict[str, Any]], path: str) -> None:
    """Answers as a table: ``.csv`` or ``.parquet`` (chosen by the extension)."""
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    elif path.endswith(".csv"):
        import pyarrow.csv as pc

        pc.write_csv(table, path)
    else:
        raise ValueError(f"--out must end with .csv or .parquet, got {path!r}")


def cmd_identify(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    from audiopipe.stages.fingerprint import identify_many
    from audiopipe.store import open_dataset

    queries = _queries(args.files)
    # a file named that is not there: said before any work (the decoder's words were
    # "not a readable audio file (System error.)")
    missing = [q for q in queries if "://" not in q and not os.path.exists(q)]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    ds = open_dataset(cfg.storage_root, cfg.dataset(args.dataset).name)
    answers = identify_many(ds, queries)
    cols = ("query", "clip_id", "uri", "offset_s", "confidence", "votes", "runner_up", "error")
    if args.out:
        _write_answers([{c: a.get(c) for c in cols} for a in answers], args.out)
    matched = 0
    for a in answers:
        q = a["query"] if len(answers) > 1 else ""
        if a["clip_id"] is None:
            why = f" ({a['error']})" if a.get("error") else ""
            print(f"{q + '  ' if q else ''}no match in {ds.name}{why}")
            continue
        matched += 1
        print(
            f"{q + '  ' if q else ''}{a['uri']}  offset {a['offset_s']:.2f} s  "
            f"confidence {a['confidence']:.2f}  ({a['votes']} matching hashes)"
        )
    if args.out:
        print(f"{matched}/{len(answers)} identified; answers in {args.out}", file=sys.stderr)
    return 0 if matched else 3


def cmd_similar(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    from audiopipe.stages.retrieve import similar_many
    from audiopipe.store import open_dataset

    ds = open_dataset(cfg.storage_root, cfg.dataset(args.dataset).name)
    queries: list[str] = []
    for q in args.queries:  # folders and globs expand to their audio files; ids stay as given
        expand = os.path.isdir(q) or (any(c in q for c in "*?[") and "://" not in q)
        queries += _queries([q]) if expand else [q]
    answers = similar_many(ds, queries, k=args.k, view=args.view)
    rows = []
    for a in answers:
        if a["error"]:
            rows.append({"query": a["query"], "rank": None, "clip_id": None, "uri": None,
                         "score": None, "error": a["error"]})
        rows += [{"query": a["query"], **h, "error": None} for h in a["hits"]]
    if args.out:
        _write_answers(rows, args.out)
        print(f"{len(answers)} queries answered; table in {args.out}", file=sys.stderr)
        return 0 if any(a["hits"] for a in answers) else 1
    for a in answers:
        if len(answers) > 1:
            print(f"{a['query']}:")
        if a["error"]:
            print(f"  {a['error']}")
        for r in a["hits"]:
            print(f"{r['rank']:>3}  {r['score']:.3f}  {r['uri']}")
    return 0 if any(a["hits"] for a in answers) else 1

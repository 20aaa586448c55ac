"""The events file of ``segment``: (path, onset_s, offset_s, label) rows → reference segments.

Rows are checked before any training: a missing or non-numeric onset/offset, an event that
ends before it starts, starts before 0 s or after its clip ends, has no label, or overlaps
the one before it in the same clip, is refused with the file, the row and the problem; rows
whose path names no clip of the dataset are ignored with a warning that counts them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["reference_segments"]


def reference_segments(ctx: Any) -> dict[str, list]:
    """Per clip id: the full reference segmentation of ``ctx.params["events"]``.

    Parameters
    ----------
    ctx : StageContext
        The segment stage's context (``events`` and ``background`` parameters).

    Returns
    -------
    dict
        clip id → ``[(start_s, end_s, label), ...]`` from 0 to the clip's duration, the
        gaps between events labelled ``background``, in ``clips`` order (content order:
        the supervised CV's folds depend on the recordings, not on the file's spelling).
    """
    import pandas as pd

    from audiopipe.stages._common import (
        StageInputError,
        read_frame_file,
        refuse_rows,
        uri_matcher,
        warn_unmatched,
    )

    ds, path, bg = ctx.ds, ctx.params["events"], ctx.params["background"]
    ev = read_frame_file(ds, path, "events", ("path", "onset_s", "offset_s", "label"))
    on, off = (pd.to_numeric(ev[c], errors="coerce") for c in ("onset_s", "offset_s"))
    refuse_rows(ds, path, "events", ev, on.isna() | off.isna(),
                "have no number as onset_s or offset_s")
    refuse_rows(ds, path, "events", ev, off <= on, "end before they start (offset_s <= onset_s)")
    refuse_rows(ds, path, "events", ev, on < 0, "start before 0 s (onset_s < 0)")
    lab = ev["label"]
    refuse_rows(ds, path, "events", ev, lab.isna() | (lab.astype(str).str.strip() == ""),
                "have no label")
    ev = ev.assign(onset_s=on, offset_s=off)
    match = uri_matcher(ds)
    cids = {p: match(p) for p in dict.fromkeys(ev["path"])}
    warn_unmatched(ds, path, "events", ev["path"], [cids[p] is not None for p in ev["path"]])
    t = ds.table("clips", ["clip_id", "duration_s"]).to_pydict()
    dur = dict(zip(t["clip_id"], t["duration_s"], strict=True))
    ends = pd.Series([dur[cids[p]] if cids[p] is not None else float("inf") for p in ev["path"]],
                     index=ev.index)
    refuse_rows(ds, path, "events", ev, on >= ends, "start after their clip ends (onset_s >= "
                "its duration_s)")
    # by clip, not by the path's spelling: "sub/a.wav" and "a.wav" may name one clip
    ev = ev.assign(_clip=[cids[p] or "" for p in ev["path"]])
    prev_end = ev.sort_values(["_clip", "onset_s"]).groupby("_clip")["offset_s"].shift()
    refuse_rows(ds, path, "events", ev.drop(columns="_clip"),
                (on < prev_end.reindex(ev.index)).fillna(False) & (ev["_clip"] != ""),
                "overlap the event before them in the same clip (one label per moment)")
    out: dict[str, list] = {}
    for cid, grp in ev.groupby("_clip"):
        if not cid:
            continue
        segs, at = [], 0.0
        rows = grp.sort_values("onset_s")[["onset_s", "offset_s", "label"]]
        for a, b, lab in rows.itertuples(index=False):
            a, b = float(a), min(float(b), float(dur[cid]))
            if a > at:
                segs.append((at, a, bg))
            segs.append((a, b, str(lab)))
            at = b
        if at < dur[cid]:
            segs.append((at, float(dur[cid]), bg))
        out[cid] = segs
    if not out:
        raise StageInputError(f"dataset {ds.name!r}: no clip of events file {path} is in the dataset")
    return {c: out[c] for c in t["clip_id"] if c in out}  # clips order: the folds follow it

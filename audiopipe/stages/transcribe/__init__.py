"""Transcription: pitch tracking (pYIN-style) -> ``pitch`` table, note events -> ``notes``
table + MIDI files.

Monophonic (:mod:`.pitch`): :func:`pitch_track` computes YIN's cumulative mean normalised difference per
frame, turns its troughs into pitch candidates with probabilities under a Beta(2, 18)
distribution of thresholds (Mauch & Dixon 2014, pYIN), and decodes a voiced/unvoiced
pitch path with a banded Viterbi HMM. :func:`notes_from_pitch` turns the path into notes
(onset, offset, MIDI pitch, velocity) with pitch hysteresis and a minimum duration.

Polyphonic (:mod:`.poly`): :class:`HarmonicNMF` explains the magnitude spectrogram with fixed harmonic
templates (one per MIDI pitch) and sparse KL-NMF activations; :func:`notes_from_activations`
thresholds them with hysteresis. The stage :class:`Transcribe` (clip by clip: only new
clips) picks ``method`` "mono" (default) or "poly" and writes ``notes`` (clip_id, onset_s,
offset_s, midi, velocity, error), the frame-wise pitch track ``pitch`` (clip_id, time_s,
f0_hz - null when unvoiced -, voiced, confidence; the predominant f0 whatever ``method``,
``pitch=false`` leaves it out of a "poly" run), one MIDI file per clip in its run folder
(table ``midi``: clip_id, uri) and a piano-roll PNG with the pitch track over it. The
pitch path uses the stages' one Viterbi decoder (:mod:`audiopipe.stages._viterbi`), the
activations their one NMF
(:mod:`audiopipe.stages._nmf`).

Examples
--------
>>> import numpy as np
>>> sr = 22050
>>> t = np.arange(sr) / sr
>>> y = 0.5 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
>>> f0, voiced, prob = pitch_track(y, sr)
>>> round(float(np.median(f0[voiced])))
440
>>> [n[2] for n in notes_from_pitch(f0, voiced, sr=sr, y=y)]
[69]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audiopipe.audio import to_mono
from audiopipe.stages._mir import midi_bytes
from audiopipe.stages.base import ClipBatch, ClipStage, StageContext
from audiopipe.stages.params import Param
from audiopipe.stages.transcribe.pitch import (
    Note,
    hz_to_midi,
    midi_to_hz,
    min_frame_length,
    notes_from_pitch,
    pitch_track,
)
from audiopipe.stages.transcribe.poly import HarmonicNMF, notes_from_activations, onset_frames

__all__ = [
    "pitch_track",
    "notes_from_pitch",
    "HarmonicNMF",
    "notes_from_activations",
    "transcribe",
    "transcribe_with_pitch",
    "pitch_table",
    "hz_to_midi",
    "midi_to_hz",
    "Transcribe",
]


def transcribe(
    y: np.ndarray,
    sr: float = 22050,
    method: str = "mono",
    *,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    frame_length: int = 2048,
    hop_length: int = 256,
    min_note_duration: float = 0.1,
) -> list[Note]:
    """Notes of a clip: ``method="mono"`` (pitch track) or ``"poly"`` (harmonic NMF).

    Examples
    --------
    >>> transcribe(np.zeros(22050, np.float32))
    []
    """
    notes, _ = transcribe_with_pitch(
        y, sr, method, fmin=fmin, fmax=fmax, frame_length=frame_length, hop_length=hop_length,
        min_note_duration=min_note_duration, pitch=False,
    )
    return notes


def transcribe_with_pitch(
    y: np.ndarray,
    sr: float = 22050,
    method: str = "mono",
    *,
    fmin: float = 65.0,
    fmax: float = 2093.0,
    frame_length: int = 2048,
    hop_length: int = 256,
    min_note_duration: float = 0.1,
    pitch: bool = True,
) -> tuple[list[Note], tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """Notes of a clip and its pitch track ``(f0, voiced, voiced_prob)`` (None if ``pitch``
    is false and ``method`` is "poly"; the mono path computes the track anyway).

    The pitch track is :func:`pitch_track`'s (the predominant f0, one value per frame,
    frame ``t`` centred at ``t * hop_length / sr``), whatever ``method`` makes the notes.

    Examples
    --------
    >>> notes, (f0, voiced, conf) = transcribe_with_pitch(np.zeros(22050, np.float32))
    >>> notes, f0.shape, bool(voiced.any())
    ([], (87,), False)
    """
    y = to_mono(y)
    if method not in ("mono", "poly"):
        raise ValueError(f"method must be 'mono' or 'poly', got {method!r}")
    track = None
    if method == "mono" or pitch:
        track = pitch_track(y, sr, fmin, fmax, frame_length, hop_length)
    if method == "mono":
        f0, v, p = track
        notes = notes_from_pitch(
            f0, v, p, sr=sr, hop_length=hop_length, y=y, min_note_duration=min_note_duration
        )
        return notes, track
    est = HarmonicNMF(
        midi_min=int(np.ceil(hz_to_midi(fmin))),
        midi_max=int(np.floor(hz_to_midi(fmax))),
        hop_length=hop_length,
    )
    H = est.fit_transform(y, sr)
    notes = notes_from_activations(
        H, est.midi_numbers(), sr=sr, hop_length=hop_length, min_note_duration=min_note_duration,
        onsets=onset_frames(y, sr, hop_length),
    )
    return notes, track


def _pitch_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("clip_id", pa.string()),
            ("time_s", pa.float64()),
            ("f0_hz", pa.float64()),
            ("voiced", pa.bool_()),
            ("confidence", pa.float32()),
        ]
    )


def pitch_table(
    clip_id: str, f0: np.ndarray, voiced: np.ndarray, conf: np.ndarray, sr: float, hop_length: int
) -> Any:
    """Rows of the ``pitch`` table for one clip, as a pyarrow Table (the stage's schema).

    Examples
    --------
    >>> t = pitch_table("c", np.array([np.nan, 220.0]), np.array([False, True]),
    ...                 np.array([0.1, 0.9]), 22050, 256)
    >>> t.column("f0_hz").to_pylist(), t.column("voiced").to_pylist()
    ([None, 220.0], [False, True])
    """
    import pyarrow as pa

    n = len(f0)
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.asarray(voiced, dtype=bool) & np.isfinite(f0)
    return pa.Table.from_pydict(
        {
            "clip_id": pa.array([clip_id] * n, pa.string()),
            "time_s": pa.array(np.arange(n) * hop_length / sr, pa.float64()),
            "f0_hz": pa.array(f0, pa.float64(), mask=~voiced),
            "voiced": pa.array(voiced, pa.bool_()),
            "confidence": pa.array(np.asarray(conf, dtype=np.float32), pa.float32()),
        },
        schema=_pitch_schema(),
    )


# --------------------------------------------------------------------------- stage


def _piano_roll(fh: Any, notes: list[Note], title: str, track: Any = None) -> None:
    """Notes as bars (colour: velocity) and, when given, the pitch track ``(t, midi)`` over them."""
    from audiopipe.stages._common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for on, off, m, v in notes:
        ax.broken_barh([(on, off - on)], (m - 0.4, 0.8), color=plt.cm.viridis(v / 127))
    lo = [n[2] for n in notes]
    end = [n[1] for n in notes]
    if track is not None and np.isfinite(track[1]).any():
        t, m = track
        ax.plot(t, m, color="crimson", lw=1, label="pitch track (f0)")
        ax.legend(loc="upper right", fontsize=8)
        lo += [float(np.nanmin(m)), float(np.nanmax(m))]
        end.append(float(t[np.isfinite(m)].max()))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    if lo:
        ax.set_ylim(min(lo) - 2, max(lo) + 2)
        ax.set_xlim(0, max(end) + 0.1)
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=80)
    plt.close(fig)


class Transcribe(ClipStage):
    """Notes of every clip (table ``notes``), its pitch track (table ``pitch``) and one MIDI
    file per clip (table ``midi``)."""

    name = "transcribe"
    summary = (
        "Pitch track (pYIN-style) or harmonic NMF → notes, clip by clip; tables `notes` "
        "(clip_id, onset_s, offset_s, midi, velocity, error), `pitch` (clip_id, time_s, f0_hz "
        "- null when unvoiced -, voiced, confidence; one row per frame) and `midi` (clip_id, "
        "uri of the clip's MIDI file)."
    )
    params = (
        Param("method", "str", "mono", "monophonic pitch track or polyphonic NMF",
              choices=("mono", "poly")),
        Param("sr", "int", 22050, "analysis sample rate (Hz)", low=1000, from_dataset="sample_rate"),
        Param("fmin", "float", 65.0, "lowest pitch (Hz)", low=1),
        Param("fmax", "float", 2093.0, "highest pitch (Hz; above sr / 2: up to sr / 2)", low=1),
        Param("frame_length", "int", 2048,
              "pitch analysis frame (samples); at least 2 ceil(sr / fmin) + 1 (the default "
              "fits fmin 65 Hz up to 48 kHz; at 96 kHz set 2955 or more, or raise fmin)", low=64),
        Param("hop_length", "int", 256, "hop between frames (samples; <= frame_length)", low=1),
        Param("min_note_duration", "float", 0.1, "shortest note kept (s)", low=0),
        Param("pitch", "bool", True,
              "write the frame-wise pitch track (table `pitch`); always computed by mono"),
        Param("clips", "list", None, "only these clip ids (default: every clip)"),
    )
    tables = ("midi", "notes", "pitch")  # the first has one row per clip: what is done
    version = "2"  # 2: the `pitch` table

    def check(self, params: dict[str, Any]) -> list[str]:
        if params["fmin"] >= min(params["fmax"], params["sr"] / 2):
            return [f"fmin ({params['fmin']}) must be below fmax ({params['fmax']}, at most "
                    f"the Nyquist frequency {params['sr'] / 2:g} Hz at sr {params['sr']})"]
        track = params["method"] == "mono" or params["pitch"]
        frame, what = min(  # each analysis the method runs: the shortest frame decides
            ([(params["frame_length"], "frame_length")] if track else [])
            + ([(HarmonicNMF().n_fft, "the poly STFT's n_fft")] if params["method"] == "poly" else []))
        need = min_frame_length(params["fmin"], params["sr"])
        if track and params["frame_length"] < need:
            return [
                f"frame_length ({params['frame_length']}) is too short for fmin "
                f"({params['fmin']} Hz) at sr {params['sr']}: the pitch track needs "
                f"frame_length >= {need} (else its lowest pitch would be higher than fmin)"
            ]
        if params["hop_length"] > frame:
            return [f"hop_length ({params['hop_length']}) must be <= {what} ({frame}): longer "
                    "hops leave samples between frames unheard"]
        return []

    @property
    def schemas(self) -> dict[str, Any]:  # type: ignore[override]
        import pyarrow as pa

        return {
            "notes": pa.schema(
                [
                    ("clip_id", pa.string()),
                    ("onset_s", pa.float64()),
                    ("offset_s", pa.float64()),
                    ("midi", pa.int32()),
                    ("velocity", pa.int32()),
                    ("error", pa.string()),
                ]
            ),
            "midi": pa.schema([("clip_id", pa.string()), ("uri", pa.string())]),  # None: failed
            "pitch": _pitch_schema(),
        }

    def select(self, ctx: StageContext) -> list[str]:
        ids = ctx.clip_ids()
        want = set(ctx.params["clips"] or ())
        return [c for c in ids if c in want] if want else ids

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        p = ctx.params
        kw = {k: p[k] for k in ("fmin", "fmax", "frame_length", "hop_length", "min_note_duration")}
        kw["fmax"] = min(p["fmax"], p["sr"] / 2)  # no pitch above Nyquist can be heard
        out = ClipBatch(rows={"notes": [], "midi": [], "pitch": []})
        for cid in clip_ids:
            try:
                y, _ = ctx.ds.load_audio(cid, sr=p["sr"])
                notes, track = transcribe_with_pitch(
                    y, p["sr"], p["method"], pitch=p["pitch"], **kw
                )
            except Exception as err:  # noqa: BLE001  (errors are data)
                out.failed += 1
                out.rows["notes"].append(
                    {"clip_id": cid, "onset_s": None, "offset_s": None, "midi": None,
                     "velocity": None, "error": f"{type(err).__name__}: {err}"}
                )
                out.rows["midi"].append({"clip_id": cid, "uri": None})
                continue
            out.rows["notes"] += [
                {"clip_id": cid, "onset_s": a, "offset_s": b, "midi": m, "velocity": v,
                 "error": None}
                for a, b, m, v in notes
            ]
            if p["pitch"] and track is not None:
                out.rows["pitch"].append(pitch_table(cid, *track, p["sr"], p["hop_length"]))
            uri = ctx.write_bytes(midi_bytes(notes), "midi", f"{cid}.mid")
            out.rows["midi"].append({"clip_id": cid, "uri": uri})
            if out.plot is None and notes:
                curve = None
                if track is not None:
                    t = np.arange(track[0].size) * p["hop_length"] / p["sr"]
                    curve = (t, np.where(track[1], hz_to_midi(track[0]), np.nan))
                out.plot = (cid, notes, curve)
        return out

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        import pyarrow.compute as pc

        from audiopipe.stages._common import metric_rows

        t = ctx.ds.table("notes", ["clip_id", "error"]).to_pydict()
        pt = ctx.ds.table("pitch", ["voiced"]).column("voiced")
        m = {
            "n_clips": ctx.ds.table("midi", ["clip_id"]).num_rows,
            "n_errors": sum(e is not None for e in t["error"]),
            "n_notes": sum(e is None for e in t["error"]),
            "n_pitch_frames": len(pt),
            "voiced_fraction": float(pc.mean(pt.cast("int8")).as_py() or 0.0) if len(pt) else 0.0,
        }
        return metric_rows(
            "transcribe", ctx.params["method"], m, evaluation="count", run_id=ctx.run_id
        )

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Any]:
        cid, notes, curve = batch.plot
        title = f"{cid[:12]} ({ctx.params['method']}): notes and pitch track"
        return {"transcribe": lambda fh: _piano_roll(fh, notes, title, curve)}

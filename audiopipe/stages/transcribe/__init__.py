"""Transcription: pitch tracking (pYIN-style) -> note events -> ``notes`` table + MIDI files.

Monophonic (:mod:`.pitch`): :func:`pitch_track` computes YIN's cumulative mean normalised difference per
frame, turns its troughs into pitch candidates with probabilities under a Beta(2, 18)
distribution of thresholds (Mauch & Dixon 2014, pYIN), and decodes a voiced/unvoiced
pitch path with a banded Viterbi HMM. :func:`notes_from_pitch` turns the path into notes
(onset, offset, MIDI pitch, velocity) with pitch hysteresis and a minimum duration.

Polyphonic (:mod:`.poly`): :class:`HarmonicNMF` explains the magnitude spectrogram with fixed harmonic
templates (one per MIDI pitch) and sparse KL-NMF activations; :func:`notes_from_activations`
thresholds them with hysteresis. The stage :class:`Transcribe` (clip by clip: only new
clips) picks ``method`` "mono" (default) or "poly" and writes ``notes`` (clip_id, onset_s,
offset_s, midi, velocity, error), one MIDI file per clip in its run folder (table ``midi``:
clip_id, uri) and a piano-roll PNG. The pitch path uses the stages' one Viterbi decoder
(:mod:`audiopipe.stages._viterbi`), the activations their one NMF
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
    notes_from_pitch,
    pitch_track,
)
from audiopipe.stages.transcribe.poly import HarmonicNMF, notes_from_activations

__all__ = [
    "pitch_track",
    "notes_from_pitch",
    "HarmonicNMF",
    "notes_from_activations",
    "transcribe",
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
    y = to_mono(y)
    if method == "mono":
        f0, v, p = pitch_track(y, sr, fmin, fmax, frame_length, hop_length)
        return notes_from_pitch(
            f0, v, p, sr=sr, hop_length=hop_length, y=y, min_note_duration=min_note_duration
        )
    if method == "poly":
        est = HarmonicNMF(
            midi_min=int(np.ceil(hz_to_midi(fmin))),
            midi_max=int(np.floor(hz_to_midi(fmax))),
            hop_length=hop_length,
        )
        H = est.fit_transform(y, sr)
        return notes_from_activations(
            H, est.midi_numbers(), sr=sr, hop_length=hop_length, min_note_duration=min_note_duration
        )
    raise ValueError(f"method must be 'mono' or 'poly', got {method!r}")


# --------------------------------------------------------------------------- stage


def _piano_roll(fh: Any, notes: list[Note], title: str) -> None:
    from audiopipe.stages._common import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    for on, off, m, v in notes:
        ax.broken_barh([(on, off - on)], (m - 0.4, 0.8), color=plt.cm.viridis(v / 127))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    if notes:
        ax.set_ylim(min(n[2] for n in notes) - 2, max(n[2] for n in notes) + 2)
        ax.set_xlim(0, max(n[1] for n in notes) + 0.1)
    fig.tight_layout()
    fig.savefig(fh, format="png", dpi=80)
    plt.close(fig)


class Transcribe(ClipStage):
    """Notes of every clip (table ``notes``) and one MIDI file per clip (table ``midi``)."""

    name = "transcribe"
    summary = (
        "Pitch track (pYIN-style) or harmonic NMF → notes, clip by clip; tables `notes` "
        "(clip_id, onset_s, offset_s, midi, velocity, error) and `midi` (clip_id, uri of the "
        "clip's MIDI file)."
    )
    params = (
        Param("method", "str", "mono", "monophonic pitch track or polyphonic NMF",
              choices=("mono", "poly")),
        Param("sr", "int", 22050, "analysis sample rate (Hz)", low=1000, from_dataset="sample_rate"),
        Param("fmin", "float", 65.0, "lowest pitch (Hz)", low=1),
        Param("fmax", "float", 2093.0, "highest pitch (Hz)", low=1),
        Param("frame_length", "int", 2048, "pitch analysis frame (samples)", low=64),
        Param("hop_length", "int", 256, "hop between frames (samples)", low=1),
        Param("min_note_duration", "float", 0.1, "shortest note kept (s)", low=0),
        Param("clips", "list", None, "only these clip ids (default: every clip)"),
    )
    tables = ("midi", "notes")  # the first has one row per clip: what is done

    def check(self, params: dict[str, Any]) -> list[str]:
        if params["fmin"] >= params["fmax"]:
            return [f"fmin ({params['fmin']}) must be below fmax ({params['fmax']})"]
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
        }

    def select(self, ctx: StageContext) -> list[str]:
        ids = ctx.clip_ids()
        want = set(ctx.params["clips"] or ())
        return [c for c in ids if c in want] if want else ids

    def process(self, ctx: StageContext, clip_ids: Sequence[str], state: Any) -> ClipBatch:
        p = ctx.params
        kw = {k: p[k] for k in ("fmin", "fmax", "frame_length", "hop_length", "min_note_duration")}
        out = ClipBatch(rows={"notes": [], "midi": []})
        for cid in clip_ids:
            try:
                y, _ = ctx.ds.load_audio(cid, sr=p["sr"])
                notes = transcribe(y, p["sr"], p["method"], **kw)
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
            uri = ctx.write_bytes(midi_bytes(notes), "midi", f"{cid}.mid")
            out.rows["midi"].append({"clip_id": cid, "uri": uri})
            if out.plot is None and notes:
                out.plot = (cid, notes)
        return out

    def evaluate(self, ctx: StageContext, state: Any) -> list[dict[str, Any]]:
        from audiopipe.stages._common import metric_rows

        t = ctx.ds.table("notes", ["clip_id", "error"]).to_pydict()
        m = {
            "n_clips": ctx.ds.table("midi", ["clip_id"]).num_rows,
            "n_errors": sum(e is not None for e in t["error"]),
            "n_notes": sum(e is None for e in t["error"]),
        }
        return metric_rows(
            "transcribe", ctx.params["method"], m, evaluation="count", run_id=ctx.run_id
        )

    def plots(self, ctx: StageContext, batch: ClipBatch) -> dict[str, Any]:
        cid, notes = batch.plot
        title = f"{cid[:12]} ({ctx.params['method']})"
        return {"transcribe": lambda fh: _piano_roll(fh, notes, title)}

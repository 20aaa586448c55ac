"""Bad inputs, one row each: how the file is made, and the ``errors`` row it must become.

All of them go into one corpus with good files and one ingestion (the library path: plan,
extract every shard, publish); each bad file must give exactly its expected row (step,
error_type, a fragment of a one-line message naming the cause) and every good file, odd or
not, must become a clip. Files are small and generated; the whole table runs in seconds.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiopipe
from audiopipe.config import load_config
from audiopipe.ingest import extract_shard, plan_ingest, publish
from tests.audio_fixtures import sine
from tests.conftest import write_config

SR = 22050
AS_ROOT = os.geteuid() == 0


def _wav(
    pcm: bytes = b"",
    *,
    fmt_tag: int = 1,
    channels: int = 1,
    rate: int = SR,
    bits: int = 16,
    data_len: int | None = None,
    form: bytes = b"WAVE",
    with_fmt: bool = True,
) -> bytes:
    """A RIFF/WAVE file, its header fields as given (lies included)."""
    align = max(1, channels * bits // 8)
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, fmt_tag, channels, rate, rate * align, align, bits)
    data = b"data" + struct.pack("<I", len(pcm) if data_len is None else data_len) + pcm
    body = form + (fmt if with_fmt else b"") + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pcm16(dur: float = 1.0) -> bytes:
    return (sine(dur=dur) * 32767).astype("<i2").tobytes()


def _encoded(fmt: str, subtype: str | None = None, dur: float = 2.0, sr: int = SR) -> bytes:
    path = Path(tempfile.mkdtemp()) / f"x.{fmt.lower()}"
    sf.write(path, sine(dur=dur, sr=sr), sr, format=fmt, subtype=subtype)
    return path.read_bytes()


def _noise_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _float_wav(value: float) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        y = sine(dur=0.5)
        y[1000:1010] = value
        sf.write(p, y, SR, subtype="FLOAT")

    return make


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data() if callable(data) else data)


def _audio(y_fn: Callable[[], np.ndarray], sr: int = SR, **kw) -> Callable[[Path], None]:
    return lambda p: sf.write(p, y_fn(), sr, **kw)


def _symlink_loop(p: Path) -> None:
    p.symlink_to(p.name)  # a.wav -> a.wav


def _dangling(p: Path) -> None:
    p.symlink_to(p.parent / "gone" / "nowhere.wav")


def _directory(p: Path) -> None:
    p.mkdir()


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _unreadable(p: Path) -> None:
    sf.write(p, sine(dur=0.5), SR)
    p.chmod(0)


#: the dataset's limits, chosen so that each limit has a file just past it
LIMITS = {
    "max_duration_s": 5.0,
    "min_duration_s": 0.02,
    "max_channels": 8,
    "min_sample_rate": 4000,
    "max_sample_rate": 200_000,
    "max_bytes": 1_000_000,
}

#: (kind, file name, how to make it, expected (step, error_type, message fragment))
BAD: list[tuple[str, str, Callable[[Path], None], tuple[str, str, str]]] = [
    ("zero_length_wav", "zero.wav", _bytes(b""), ("decode", "empty", "file is empty (0 bytes)")),
    ("zero_length_flac", "zero.flac", _bytes(b""), ("decode", "empty", "file is empty (0 bytes)")),
    ("text_named_wav", "text.wav", _bytes(b"just some text, not audio\n" * 40),
     ("decode", "decode", "not a readable audio file")),
    ("text_named_mp3", "text.mp3", _bytes(b"just some text, not audio\n" * 40),
     ("decode", "decode", "not a readable audio file")),
    ("random_bytes_flac", "noise.flac", _bytes(_noise_bytes(5000, 1)),
     ("decode", "decode", "not a readable audio file")),
    ("random_bytes_ogg", "noise.ogg", _bytes(_noise_bytes(5000, 2)),
     ("decode", "decode", "not a readable audio file")),
    ("truncated_flac", "truncated.flac", _bytes(lambda: _encoded("FLAC")[:6000]),
     ("decode", "decode", "the header promises (Error : flac decoder lost sync.): the file is cut short")),
    ("truncated_ogg", "truncated.ogg", _bytes(lambda: _encoded("OGG", "VORBIS")[:3000]),
     ("decode", "decode", "not a readable audio file (Supported file format but file is "
                          "malformed.)")),
    ("truncated_mp3", "truncated.mp3", _bytes(lambda: _encoded("MP3", "MPEG_LAYER_III")[:3000]),
     ("decode", "truncated", "truncated")),
    ("wav_data_shorter_than_header", "short_data.wav",
     _bytes(lambda: _wav(_pcm16(), data_len=4 * len(_pcm16()))),
     ("decode", "truncated", "header claims")),
    ("wav_huge_declared_length", "huge_len.wav",
     _bytes(lambda: _wav(_pcm16(0.5), data_len=0xFFFFFFF0)),
     ("decode", "truncated", "truncated")),
    ("wav_header_only", "header_only.wav", _bytes(lambda: _wav(b"")),
     ("decode", "empty", "no audio frames")),
    ("wav_cut_in_header", "cut_header.wav", _bytes(lambda: _wav(_pcm16())[:20]),
     ("decode", "decode", "not a readable audio file")),
    ("wav_unknown_codec", "codec.wav", _bytes(lambda: _wav(_pcm16(), fmt_tag=0x1234)),
     ("decode", "decode", "not a readable audio file")),
    ("wav_without_fmt_chunk", "no_fmt.wav", _bytes(lambda: _wav(_pcm16(), with_fmt=False)),
     ("decode", "decode", "not a readable audio file")),
    ("riff_not_wave", "avi.wav", _bytes(lambda: _wav(_pcm16(), form=b"AVI ")),
     ("decode", "decode", "not a readable audio file")),
    ("flac_bad_magic", "magic.flac", _bytes(lambda: b"fLaX" + _encoded("FLAC")[4:]),
     ("decode", "decode", "not a readable audio file")),
    ("wav_zero_channels", "zero_ch.wav", _bytes(lambda: _wav(_pcm16(), channels=0)),
     ("decode", "decode", "not a readable audio file")),
    ("wav_zero_sample_rate", "zero_rate.wav", _bytes(lambda: _wav(_pcm16(), rate=0)),
     ("decode", "decode", "not a readable audio file")),
    ("float_wav_nan", "nan.wav", _float_wav(np.nan), ("decode", "decode", "NaN or infinity")),
    ("float_wav_inf", "inf.wav", _float_wav(np.inf), ("decode", "decode", "NaN or infinity")),
    ("symlink_loop", "loop.wav", _symlink_loop, ("read", "symlink_loop", "symbolic link loop")),
    ("dangling_symlink", "dangling.wav", _dangling,
     ("read", "dangling_link", "dangling symbolic link")),
    ("directory_named_wav", "folder.wav", _directory,
     ("read", "not_a_file", "is a directory named like an audio file")),
    ("fifo_named_wav", "pipe.wav", _fifo, ("read", "not_a_file", "is not a regular file")),
    ("over_max_duration", "long.wav", _audio(lambda: sine(dur=6.0, sr=8000), 8000),
     ("decode", "limits", "limits.max_duration_s")),
    ("under_min_duration", "blip.wav", _audio(lambda: sine(dur=0.01)),
     ("decode", "limits", "limits.min_duration_s")),
    ("over_max_channels", "ten_ch.wav", _audio(lambda: np.stack([sine(dur=0.2)] * 10, 1)),
     ("decode", "limits", "limits.max_channels")),
    ("under_min_sample_rate", "rate2k.wav", _audio(lambda: sine(dur=0.5, sr=2000), 2000),
     ("decode", "limits", "limits.*_sample_rate")),
    ("over_max_sample_rate", "rate384k.wav", _audio(lambda: sine(dur=0.2, sr=384000), 384000),
     ("decode", "limits", "limits.*_sample_rate")),
    ("over_max_bytes", "big.wav", _audio(lambda: sine(dur=3.0, sr=96000), 96000, subtype="FLOAT"),
     ("decode", "limits", "over limits.max_bytes")),
    ("header_lies_rate_1hz", "rate1.wav", _bytes(lambda: _wav(_pcm16(), rate=1)),
     ("decode", "limits", "limits.*_sample_rate")),
    ("id3_tag_only_mp3", "id3.mp3", _bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 200),
     ("decode", "decode", "not a readable audio file")),
]  # fmt: skip
if not AS_ROOT:  # (root reads any file: see test_unreadable_file_names_permissions)
    BAD.append(("permission_denied", "locked.wav", _unreadable,
                ("read", "permission", "permission denied")))  # fmt: skip

#: odd but valid: each must become a clip (kind, file name, how to make it)
GOOD: list[tuple[str, str, Callable[[Path], None]]] = [
    ("plain_wav", "good.wav", _audio(lambda: sine(dur=1.0))),
    ("silence", "silence.wav", _audio(lambda: np.zeros(SR // 2, np.float32))),
    ("wav_named_flac", "wav_inside.flac", _audio(lambda: sine(dur=0.5), format="WAV")),
    ("flac_named_wav", "flac_inside.wav", _audio(lambda: sine(dur=0.5), format="FLAC")),
    ("upper_case_extension", "LOUD.WAV", _audio(lambda: sine(dur=0.5))),
    ("unicode_name", "café ♪.wav", _audio(lambda: sine(dur=0.5))),
    ("six_channels", "six.wav", _audio(lambda: np.stack([sine(dur=0.5)] * 6, 1))),
    ("rate_8k", "rate8k.wav", _audio(lambda: sine(dur=0.5, sr=8000), 8000)),
    ("mp3", "good.mp3", _bytes(lambda: _encoded("MP3", "MPEG_LAYER_III", dur=1.0))),
    ("ogg", "good.ogg", _bytes(lambda: _encoded("OGG", "VORBIS", dur=1.0))),
    ("link_to_good_file", "link.wav", lambda p: p.symlink_to("good.wav")),
    ("file_inside_dir_named_wav", "folder.wav/inner.wav", _audio(lambda: sine(dur=0.5))),
]


def _build(folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    bad, good = {}, {}
    for kind, name, make, _ in BAD:
        make(folder / name)
        bad[kind] = folder / name
    for kind, name, make in GOOD:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        make(folder / name)
        good[kind] = folder / name
    return bad, good


def _ingest(tmp_path: Path, corpus: Path, read_ahead: bool) -> audiopipe.store.Dataset:
    recipe = {"n_fft": 512, "hop_length": 256, "compute": {"mfcc": {"n_mfcc": 13, "n_mels": 40},
                                                           "rms": {}}}
    cfg = write_config(tmp_path, {"t": {"source": str(corpus), "features": recipe,
                                        "limits": LIMITS, "shard": {"min_shards": 2}}})
    plan = plan_ingest(load_config(cfg), "t", read_ahead=read_ahead)
    publish(plan, [extract_shard(s, plan.context) for s in plan.shards])
    return audiopipe.open_dataset(str(tmp_path / "out"), "t")


def test_the_table_has_the_issues_kinds():
    kinds = {b[0] for b in BAD}
    assert len(kinds) >= 30 + (not AS_ROOT)
    assert {"symlink_loop", "dangling_symlink", "directory_named_wav", "float_wav_nan",
            "wav_zero_channels", "wav_zero_sample_rate", "wav_huge_declared_length",
            "text_named_wav", "truncated_mp3", "truncated_ogg"} <= kinds


@pytest.mark.parametrize("read_ahead", [False, True], ids=["one-thread", "read-ahead"])
def test_each_bad_input_is_its_errors_row_and_every_good_file_a_clip(tmp_path, read_ahead):
    bad, good = _build(tmp_path / "corpus")
    ds = _ingest(tmp_path, tmp_path / "corpus", read_ahead)
    clips = ds.table("clips").to_pandas()
    errors = ds.table("errors").to_pandas()
    assert errors.uri.is_unique, errors.uri[errors.uri.duplicated()].tolist()
    rows = errors.set_index("uri")
    problems = []
    for kind, _name, _, (step, etype, fragment) in BAD:
        uri = str(bad[kind])
        if uri not in rows.index:
            problems.append(f"{kind}: no errors row")
            continue
        r = rows.loc[uri]
        got = (r.step, r.error_type, r.message)
        if (r.step, r.error_type) != (step, etype) or fragment not in r.message:
            problems.append(f"{kind}: expected {(step, etype, fragment)}, got {got}")
        if "\n" in r.message or "Traceback" in r.message or "file is empty" in r.message and (
                etype != "empty"):
            problems.append(f"{kind}: message is misleading or not one plain line: {r.message!r}")
    assert not problems, "\n".join(problems)
    assert set(clips.uri) == {str(p) for p in good.values()}
    assert len(errors) == len(BAD)


def test_unreadable_file_names_permissions(tmp_path):
    """A file this process may not read is a ``read`` row saying so (run as an ordinary user
    when the tests run as root, since root reads any file)."""
    from audiopipe.catalog import FileEntry
    from audiopipe.ingest.reader import Failed, ShardReader

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    p = folder / "locked.wav"
    _unreadable(p)
    entry = FileEntry(str(p), p.stat().st_size, 1.0)
    if not AS_ROOT:
        (ev,) = ShardReader(SR, "mix", 60.0).events([entry])
        assert isinstance(ev, Failed) and ev.error.kind == "permission"
        return
    code = (  # everything imported first, then the privileges dropped (to nobody)
        "import os\n"
        "from audiopipe.catalog import FileEntry\n"
        "from audiopipe.ingest.reader import ShardReader\n"
        "reader = ShardReader(22050, 'mix', 60.0)\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"(ev,) = reader.events([FileEntry({str(p)!r}, 1, 1.0)])\n"
        "print(type(ev).__name__, ev.error.kind, ev.error)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Failed permission permission denied: cannot read the file")

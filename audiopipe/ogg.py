"""Walk an Ogg file's pages: does one stream (link) end it, with its end-of-stream page?

libsndfile takes an Ogg file's length from its last page's granule position, so a file cut
short decodes as a shorter clip, and of a chained file (Ogg files concatenated: a
beginning-of-stream page, flag ``0x02``, after the first link's pages) it decodes the first
link only, both without complaint. The walk follows the pages by their headers; bytes that
are not Ogg (an ID3v1 tag, padding) are skipped as libogg skips them (to the next page with a
valid checksum), and the last page is taken only with a valid checksum.

Two ways to walk, with the same answer: :func:`problem` seeks over the pages' bodies of a
local file (or one in memory: 11 ms for 30 min of audio); :class:`OggWalk` is fed the bytes
in order, keeping at most a page, and :class:`Tap` feeds it the bytes libsndfile reads from a
remote file object (libsndfile reads an Ogg file front to back once, after its headers and
tail), so the check reads nothing of its own, rather than walking the file through before
it is decoded. (An ingest reads a remote file once more, to hash it, before decoding it.)

Examples
--------
>>> import io
>>> problem(io.BytesIO(b"OggS" + bytes(40)))[0][:54]
'file is truncated: its last complete Ogg page (ending '
>>> w = OggWalk(44)
>>> w.feed(b"OggS" + bytes(40)); w.problem() == problem(io.BytesIO(b"OggS" + bytes(40)))
True
"""

from __future__ import annotations

import io
import zlib
from typing import Any, BinaryIO

__all__ = ["OggWalk", "Tap", "problem"]

#: bit-reversal of each byte value: the Ogg checksum is zlib's CRC-32 with its bits reversed
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
_WAIT = "wait"  # (OggWalk: the bytes that decide have not come yet)


def _crc_ok(page: bytes | bytearray | memoryview) -> bool:
    """Whether a whole page's checksum (bytes 22-25) is right."""
    page = bytes(page)
    raw = zlib.crc32((page[:22] + bytes(4) + page[26:]).translate(_REV8), 0xFFFFFFFF)
    return int(f"{raw ^ 0xFFFFFFFF:032b}"[::-1], 2) == int.from_bytes(page[22:26], "little")


def _page(fh: BinaryIO, pos: int, size: int, check: bool = False) -> tuple[int, int] | None:
    """``(flags, end)`` of the Ogg page at byte ``pos`` of ``fh`` (``size`` bytes long); None when
    none starts there, it runs past the end or (``check``) its checksum is wrong."""
    fh.seek(pos)
    head = fh.read(27 + 255)  # "OggS", version 0, flags, ..., n_segments at +26, lacing values
    if len(head) < 27 or head[:5] != b"OggS\0" or len(head) < 27 + head[26]:
        return None
    end = pos + 27 + head[26] + sum(head[27 : 27 + head[26]])
    if end > size:
        return None
    if check:
        fh.seek(pos)
        if not _crc_ok(fh.read(end - pos)):
            return None
    return head[5], end


def _resync(fh: BinaryIO, pos: int, size: int) -> int | None:
    """Where the next page with a valid checksum starts at or after ``pos`` (as libogg skips
    bytes that are not Ogg); None when none does."""
    while pos < size:
        fh.seek(pos)
        buf = fh.read(1 << 16)
        i = buf.find(b"OggS")
        while i >= 0:
            if _page(fh, pos + i, size, check=True):
                return pos + i
            i = buf.find(b"OggS", i + 1)
        pos += max(1, len(buf) - 3)
    return None


def _verdict(links: int, last: tuple[int, int, int], size: int) -> tuple[str, str] | None:
    if links > 1:
        return f"chained Ogg stream ({links} links): only the first can be decoded", "decode"
    if not last[1] & 0x04:
        return (
            f"file is truncated: its last complete Ogg page (ending at byte {last[2]} of "
            f"{size}) does not end the stream (no end-of-stream flag)",
            "truncated",
        )
    return None


def problem(fh: BinaryIO) -> tuple[str, str] | None:
    """``(message, kind)`` of what is wrong with the Ogg file ``fh`` (seekable; its position is
    left where it was), or None when one stream ends it."""
    start = fh.tell()
    try:
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        pos: int | None = 0
        links, in_bos, pages = 0, False, [(0, 0, 0), (0, 0, 0)]  # the last two: start, flags, end
        while pos is not None and pos < size:
            page = _page(fh, pos, size)
            if page is None:
                pos = _resync(fh, pos + 1, size)
                continue
            links += bool(page[0] & 0x02) and not in_bos
            in_bos = bool(page[0] & 0x02)
            pages = [pages[1], (pos, *page)]
            pos = page[1]
        if pages[1][2] and not _page(fh, pages[1][0], size, check=True):
            pages = pages[:1]  # the "last page" is bytes that only look like one
    finally:
        fh.seek(start)
    return _verdict(links, pages[-1], size)


class OggWalk:
    """:func:`problem`'s walk over the bytes of a ``size``-byte file given in order
    (:meth:`feed`), keeping at most about a page of them; :meth:`problem` once all are in."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fed = 0  # bytes given so far
        self.buf, self.base = bytearray(), 0  # the bytes kept, from file offset base
        self.pos: int | None = 0  # where the next page starts (None: no more pages)
        self.scan: int | None = None  # looking for a page from here (after bytes not Ogg)
        self.links, self.in_bos = 0, False
        self.pages = [(0, 0, 0), (0, 0, 0)]  # the last two: start, flags, end
        self.last: bytes | None = None  # the bytes of pages[1], once all in

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """The next bytes of the file."""
        skip = max(0, self.base - self.fed)  # bytes of page bodies nobody needs
        self.fed += len(data)
        if skip < len(data):
            self.buf += data[skip:]
        self._walk()
        self._trim()

    def _bytes(self, a: int, b: int) -> bytes | bytearray:
        return self.buf[a - self.base : b - self.base]

    def _page(self, p: int, check: bool = False) -> tuple[int, int] | str | None:
        """``_page`` at file offset ``p``, or ``_WAIT`` when the bytes deciding it are still to come."""
        if p + 27 > self.size:
            return None
        if p + 27 > self.fed:
            return _WAIT
        head = self._bytes(p, p + 27)
        if head[:5] != b"OggS\0":
            return None
        n = head[26]
        if p + 27 + n > self.size:
            return None
        if p + 27 + n > self.fed:
            return _WAIT
        end = p + 27 + n + sum(self._bytes(p + 27, p + 27 + n))
        if end > self.size:
            return None
        if check:
            if end > self.fed:
                return _WAIT
            if not _crc_ok(self._bytes(p, end)):
                return None
        return head[5], end

    def _walk(self) -> None:
        while self.pos is not None and self.pos < self.size:
            if self.scan is not None:  # _resync
                found = self._resync()
                if found == _WAIT:
                    return
                self.pos, self.scan = (None if found is None else int(found)), None
                continue
            page = self._page(self.pos)
            if page == _WAIT:
                return
            if page is None:
                self.scan = self.pos + 1
                continue
            assert isinstance(page, tuple)
            self.links += bool(page[0] & 0x02) and not self.in_bos
            self.in_bos = bool(page[0] & 0x02)
            self.pages, self.last = [self.pages[1], (self.pos, *page)], None
            self.pos = page[1]

    def _resync(self) -> int | str | None:
        assert self.scan is not None
        while True:
            i = self.buf.find(b"OggS", max(0, self.scan - self.base))
            if i < 0:
                if self.fed >= self.size:
                    return None
                self.scan = max(self.scan, self.fed - 3)
                return _WAIT
            c = self.base + i
            page = self._page(c, check=True)
            if page == _WAIT:
                self.scan = c
                return _WAIT
            if page is not None:
                return c
            self.scan = c + 1

    def _trim(self) -> None:
        """Drop the bytes the walk has no more use for."""
        keep = self.size if self.pos is None else (self.scan if self.scan is not None else self.pos)
        start, _, end = self.pages[1]
        if end and self.last is None:
            if end <= self.fed:  # the last page so far, whole: kept for its checksum
                self.last = bytes(self._bytes(start, end))
            else:
                keep = min(keep, start)
        if keep > self.base:
            del self.buf[: keep - self.base]
            self.base = keep

    def problem(self) -> tuple[str, str] | None:
        """:func:`problem` of the file, once its ``size`` bytes are all fed."""
        if self.fed < self.size:
            raise ValueError(f"{self.fed} of {self.size} bytes fed")
        pages = self.pages
        if pages[1][2] and not (self.last is not None and _crc_ok(self.last)):
            pages = pages[:1]
        return _verdict(self.links, pages[-1], self.size)


class Tap:
    """A seekable file object (remote: read through fsspec) seen through by libsndfile: the
    bytes it reads in order, from the start, feed an :class:`OggWalk` when the file begins
    like an Ogg one. :meth:`problem` reads what libsndfile left unread (the links after the
    first, bytes after the stream) and answers as :func:`problem` would."""

    def __init__(self, f: Any) -> None:
        self.f = f
        start = f.tell()
        f.seek(0, io.SEEK_END)
        self.size = f.tell()
        f.seek(start)
        self.walk: OggWalk | None = None
        self.upto = 0  # the walk has every byte before this offset

    def _saw(self, pos: int, data: bytes | bytearray | memoryview) -> None:
        if pos == 0 and self.walk is None and bytes(data[:4]) == b"OggS":
            self.walk = OggWalk(self.size)
        if self.walk is not None and pos <= self.upto < pos + len(data):
            self.walk.feed(data[self.upto - pos :])
            self.upto = pos + len(data)

    def read(self, n: int = -1) -> bytes:
        pos = self.f.tell()
        data = self.f.read(n)
        self._saw(pos, data)
        return data

    def readinto(self, b: Any) -> int:
        pos = self.f.tell()
        n = self.f.readinto(b)  # (AttributeError: soundfile then calls read)
        self._saw(pos, memoryview(b)[:n])
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def problem(self) -> tuple[str, str] | None:
        """``(message, kind)`` of what is wrong with the file (an Ogg one), or None."""
        if self.walk is None:  # (not begun like an Ogg file: the walk seeking through it)
            return problem(self.f)
        pos = self.f.tell()
        try:
            self.f.seek(self.upto)
            while self.upto < self.size and (chunk := self.f.read(1 << 20)):
                self.walk.feed(chunk)
                self.upto += len(chunk)
        finally:
            self.f.seek(pos)
        return self.walk.problem()

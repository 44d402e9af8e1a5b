"""The archive's compression: zstd frames (with checksums) or gzip members, chosen, written, sniffed, read.

An archive is a concatenation of compressed streams (the manifest's, then the run's), each a zstd
frame or a gzip member: both formats decompress such a concatenation to the concatenated tar stream.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from typing import IO, Any, Final, Protocol, cast

from tbhub.adapters.storage.archive.format import SUFFIXES
from tbhub.errors import ArchiveError

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - a dependency; gzip keeps archiving possible without it
    _zstd = None  # type: ignore[assignment]

ZSTD_LEVEL: Final = 3
GZIP_LEVEL: Final = 6  # gzip's own default, what `tar -czf` uses
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC: Final = b"\x1f\x8b"


class Output(Protocol):
    def write(self, data: bytes) -> int: ...


class Compressor:
    """One compressed stream (a zstd frame with checksum, or a gzip member) appended to ``out``."""

    def __init__(self, codec: str, out: Output, threads: int = 0) -> None:
        self._out = out
        self._obj: Any
        if codec == "zstd":
            self._obj = _zstd.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=threads).compressobj()
        else:  # wbits 31: a gzip header and trailer (mtime 0, so the bytes depend on the data only)
            self._obj = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        chunk = self._obj.compress(data)
        if chunk:
            self._out.write(chunk)

    def close(self) -> None:
        self._out.write(self._obj.flush())


def choose_codec(compression: str | None) -> str:
    if compression is None:
        return "zstd" if _zstd is not None else "gzip"
    if compression not in SUFFIXES:
        raise ArchiveError(f"unknown compression {compression!r} (zstd or gzip)")
    if compression == "zstd" and _zstd is None:
        raise ArchiveError("zstd compression needs the zstandard package (or use gzip)")
    return compression


def decompressor(codec: str, raw: IO[bytes]) -> IO[bytes]:
    if codec == "zstd":
        reader: IO[bytes] = _zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        return reader
    return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))  # reads concatenated members


def sniff(archive: object, raw: IO[bytes]) -> str:
    """The codec of the archive ``raw`` (named ``archive`` in messages), from its first bytes."""
    magic = raw.read(4)
    raw.seek(0)
    if magic == _ZSTD_MAGIC:
        if _zstd is None:
            raise ArchiveError(f"{archive} is zstd-compressed but the zstandard package is not installed")
        return "zstd"
    if magic.startswith(_GZIP_MAGIC):
        return "gzip"
    raise ArchiveError(f"{archive} is not a tbhub archive (neither zstd nor gzip)")


def check_zstd_frames(archive: object, raw: IO[bytes]) -> None:
    """Fail unless ``raw`` is a sequence of complete zstd frames, walking only their headers.

    python-zstandard's stream reader ends quietly at a truncated frame: no error, and the frame's
    checksum is never checked. Frame and block headers (RFC 8878, section 3.1.1) give every frame's
    length, so a truncated archive shows as a file that ends inside one.
    """
    end = raw.seek(0, os.SEEK_END)
    pos = 0

    def read(n: int) -> int:
        raw.seek(pos)
        data = raw.read(n)
        if len(data) != n:
            raise ArchiveError(f"{archive} is truncated (it ends inside a zstd frame)")
        return int.from_bytes(data, "little")

    while pos < end:
        magic = read(4)
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: magic, 4-byte length, data
            pos += 4
            pos += 4 + read(4)
            continue
        if magic != 0xFD2FB528:
            raise ArchiveError(f"{archive} is corrupt: no zstd frame at byte {pos}")
        pos += 4
        descriptor = read(1)
        single_segment = descriptor >> 5 & 1
        window = 0 if single_segment else 1
        dictionary = (0, 1, 2, 4)[descriptor & 3]
        content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
        pos += 1 + window + dictionary + content_size
        last = False
        while not last:
            block = read(3)
            last, kind, size = bool(block & 1), block >> 1 & 3, block >> 3
            if kind == 3:
                raise ArchiveError(f"{archive} is corrupt: reserved zstd block type at byte {pos}")
            pos += 3 + (1 if kind == 1 else size)  # an RLE block stores its byte once
        pos += 4 if descriptor & 4 else 0  # content checksum
    if pos != end:
        raise ArchiveError(f"{archive} is truncated (it ends inside a zstd frame)")
    raw.seek(0)


def corruption_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors and ``tarfile`` raise for damaged data."""
    errors: tuple[type[BaseException], ...] = (
        tarfile.TarError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        UnicodeDecodeError,
    )
    return (*errors, _zstd.ZstdError) if _zstd is not None else errors

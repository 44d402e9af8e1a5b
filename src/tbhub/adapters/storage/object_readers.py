"""Streams over one object of an ``ObjectLogStore`` (see its module docstring for the read policy)."""

from __future__ import annotations

import io
from typing import Any, Protocol, cast

__all__ = ["READ_AHEAD_MAX", "CountingReader", "RangeReader"]


class Counter(Protocol):
    """Where a stream adds the bytes it fetched (``ObjectLogStore.count``)."""

    def count(self, *, opened: int = 0, fetched: int = 0) -> None: ...


#: The most a sequential reader fetches ahead in one ranged GET.
READ_AHEAD_MAX = 4 * 1024 * 1024
_READ_AHEAD_MIN = 256 * 1024
#: A read this far past the buffer still counts as going on (the scanner skips small payloads).
_SEQUENTIAL_GAP = 16 * 1024


class _ReadOnlyStream(io.RawIOBase):
    """A read-only, seekable stream whose subclass implements ``read`` (``RawIOBase`` builds ``read``
    on ``readinto``; these streams work the other way round)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


class RangeReader(_ReadOnlyStream):
    """A read-only stream over one object of known size: each read not already buffered is one ranged
    GET; sequential reads fetch ahead (see the module docstring); the bytes fetched are counted."""

    def __init__(self, fs: Any, path: str, size: int, store: Counter) -> None:
        self._fs, self._path, self._size, self._store = fs, path, size, store
        self._pos = 0
        self._buf = b""
        self._base = 0  # object offset of _buf[0]
        self._ahead = 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _fetch(self, start: int, end: int) -> bytes:
        data = cast(bytes, self._fs.cat_file(self._path, start=start, end=end))
        self._store.count(fetched=len(data))
        return data

    def read(self, size: int | None = -1) -> bytes:
        pos = self._pos
        end = self._size if size is None or size < 0 else min(self._size, pos + size)
        if end <= pos:
            return b""
        rel = pos - self._base
        if rel >= 0 and end - self._base <= len(self._buf):
            data = self._buf[rel : end - self._base]
        else:
            have = self._buf[rel:] if 0 <= rel < len(self._buf) else b""
            # Going on inside or just after what was fetched (a record that straddled the buffer's end,
            # the next window past a small payload) is sequential; a longer seek skipped a payload.
            sequential = self._buf != b"" and 0 <= rel <= len(self._buf) + _SEQUENTIAL_GAP
            self._ahead = min(max(2 * self._ahead, _READ_AHEAD_MIN), READ_AHEAD_MAX) if sequential else 0
            start = pos + len(have)
            fetched = self._fetch(start, min(self._size, max(end, start + self._ahead)))
            self._buf, self._base = have + fetched, pos
            data = self._buf[: end - pos]
        self._pos = pos + len(data)
        return data



class CountingReader(_ReadOnlyStream):
    """A read-only stream over an fsspec file that counts the bytes fetched from the store.

    The count is taken where the file fetches byte ranges (what goes over the network), not where
    the caller reads, so a read-ahead cache would show up in it.
    """

    def __init__(self, inner: Any, store: Counter) -> None:
        self._inner = inner
        self._store = store
        cache: Any = getattr(inner, "cache", None)
        fetcher = getattr(cache, "fetcher", None)
        self._counts_fetches = fetcher is not None
        if fetcher is not None:
            def counted(start: int, end: int) -> bytes:
                data = cast(bytes, fetcher(start, end))
                store.count(fetched=len(data))
                return data

            cache.fetcher = counted

    def read(self, size: int | None = -1) -> bytes:
        data = cast(bytes, self._inner.read(-1 if size is None else size))
        if not self._counts_fetches:
            self._store.count(fetched=len(data))
        return data


    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return cast(int, self._inner.seek(offset, whence))

    def tell(self) -> int:
        return cast(int, self._inner.tell())

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()

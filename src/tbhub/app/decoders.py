"""Decoders lent to the hub's request threads: one per read, never shared while in use.

A decoder keeps a batch's working state on its templates, so two threads must not share one: reads
that run at once (the hub answers in threads) each borrow their own, given back afterwards with the
layouts it learnt, and at most as many exist as reads ever ran at once. The curves' series cache and
the targets' cache each keep a pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from tbhub.core.scalars import EventDecoder

__all__ = ["DecoderPool"]


class DecoderPool:
    def __init__(self) -> None:
        self._idle: list[EventDecoder] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[EventDecoder]:
        """A decoder for one read, given back afterwards."""
        with self._lock:
            decoder = self._idle.pop() if self._idle else None
        if decoder is None:
            from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when reading points

            decoder = ProtobufDecoder()
        try:
            yield decoder
        finally:
            with self._lock:
                self._idle.append(decoder)

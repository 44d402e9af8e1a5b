"""CRC-32C in C (``google-crc32c``), to inject where ``tbhub.core`` accepts a ``Crc32c``.

``crc32c`` is a module-level function on purpose: ``tbhub.core.scanner.scan_many`` pickles it to
send it to worker processes.
"""

from __future__ import annotations

import google_crc32c

__all__ = ["IMPLEMENTATION", "crc32c"]

IMPLEMENTATION: str = google_crc32c.implementation
"""``"c"`` when the C extension loaded, ``"python"`` when google-crc32c fell back to pure Python."""


def crc32c(data: bytes, /) -> int:
    """CRC-32C (Castagnoli) of ``data``, unmasked, as an unsigned 32-bit int."""
    value: int = google_crc32c.value(data)
    return value

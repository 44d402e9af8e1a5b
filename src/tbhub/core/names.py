"""Names from the file system as text that is safe to show: run, dataset and path names are data.

On Linux a folder name is any bytes but ``/`` and NUL. Python hands undecodable bytes over as lone
surrogates (``os.fsdecode``'s ``surrogateescape``), which is lossless and is what tbhub keeps in
memory and uses to open files; but such a string cannot be encoded as UTF-8 (a page, a JSON answer,
a database row), and a name holding control characters can recolour a terminal or forge lines.

``shown`` is the one display form: it maps every undecodable byte to ``\\xNN`` and every control
character to a backslash escape, and leaves every other character as it is, so ordinary names,
non-ASCII letters included, are shown unchanged.
"""

from __future__ import annotations

import re

__all__ = ["has_undecodable", "shown", "without_surrogates"]

# C0 controls, DEL, C1 controls, the line and paragraph separators and the bidirectional overrides
# and isolates (which reorder the text that follows them: "Trojan Source"), and surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the undecodable byte itself
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def shown(name: str) -> str:
    """``name`` as text any terminal, page or JSON encoder takes: undecodable bytes and control
    characters escaped (``bad-\\xff``, ``\\x1b[31m``), everything else unchanged."""
    return _UNSAFE.sub(_escape, name) if _UNSAFE.search(name) else name


def has_undecodable(name: str) -> bool:
    """True when ``name`` holds bytes that are not UTF-8 (as ``surrogateescape`` decoded them)."""
    return any(0xDC80 <= ord(c) <= 0xDCFF for c in name)


def without_surrogates(text: str) -> str:
    """``text`` with only its undecodable bytes (surrogates) escaped: for messages and errors that
    quote a name and may span lines, where ``shown`` would also escape the line breaks."""
    return _SURROGATE.sub(_escape, text) if _SURROGATE.search(text) else text

"""Relpaths and names in database text columns, losslessly, whatever bytes the file system gave.

A name with bytes that are not UTF-8 reaches tbhub with lone surrogates (``surrogateescape``), which
neither SQLite nor PostgreSQL accept as text. ``to_db`` and ``from_db`` are exact inverses over every
Python string and leave every ordinary string (no surrogate, not starting with ``MARK``) as it is, so
existing rows keep their meaning and only the rare undecodable name is stored in another form:
``MARK`` followed by the name with ``\\`` doubled and each surrogate written ``\\xNN`` (a byte) or
``\\uNNNN``. No relpath or run name starts with ``/`` (relpaths are relative, names have no slash),
so ``MARK`` never collides with a real name; a string that does start with it is escaped as well.
"""

from __future__ import annotations

import re

__all__ = ["MARK", "from_db", "from_db_or_none", "to_db", "to_db_or_none"]

MARK = "/"
_NEEDS = re.compile("[\ud800-\udfff]")
_OUT = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|\\)")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _unescape(match: re.Match[str]) -> str:
    body = match.group(1)
    if body == "\\":
        return "\\"
    if body[0] == "x":
        return chr(0xDC00 + int(body[1:], 16))
    return chr(int(body[1:], 16))


def to_db(text: str) -> str:
    """The form of ``text`` a database text column takes (valid Unicode, no surrogates)."""
    if not text.startswith(MARK) and not _NEEDS.search(text):
        return text
    return MARK + _NEEDS.sub(_escape_char, text.replace("\\", "\\\\"))


def from_db(text: str) -> str:
    """The string ``to_db`` was given."""
    if not text.startswith(MARK):
        return text
    return _OUT.sub(_unescape, text[len(MARK) :])


def to_db_or_none(text: str | None) -> str | None:
    return None if text is None else to_db(text)


def from_db_or_none(text: str | None) -> str | None:
    return None if text is None else from_db(text)

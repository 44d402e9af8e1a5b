"""Every spelling of a secret that a server may quote back in an error.

SMTP servers are known to echo the argument of a failed ``AUTH`` in their reply (``535 5.7.8 bad
credentials: AGFsZXJ0c0...``): that argument is the password in base64, alone (``AUTH LOGIN``) or in
``\\0user\\0password`` (``AUTH PLAIN``, RFC 4616). Error text is shown in the CLI, written to the serve
log and stored as a channel's ``reason``, which viewers read; so before any of that, each of these
forms is scrubbed, not only the password as typed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import quote

__all__ = ["secret_forms"]

#: Shorter base64 fragments would match ordinary words of an error message by chance.
_MIN_FRAGMENT = 6
_ENCODERS: tuple[Callable[[bytes], bytes], ...] = (base64.b64encode, base64.urlsafe_b64encode)


def _fragments(data: bytes) -> list[str]:
    """The base64 text of ``data`` that does not depend on its neighbours, at each of the three
    alignments it can have inside a longer encoded string (after 0, 1 or 2 other bytes)."""
    out = []
    for lead in range(3):
        for encode in _ENCODERS:
            text = encode(b"\0" * lead + data).decode("ascii")
            # Character i holds bits [6i, 6i + 6): keep those that lie wholly within ``data``.
            start = -(-8 * lead // 6)
            stop = 8 * (lead + len(data)) // 6
            if stop - start >= _MIN_FRAGMENT:
                out.append(text[start:stop])
    return out


def secret_forms(secret: str, *, user: str | None = None) -> list[str]:
    """``secret`` as typed, percent-encoded and in base64: whole (``AUTH LOGIN``), inside the ``AUTH
    PLAIN`` string for ``user``, and as fragments at any offset of a longer base64 text. Longest first,
    so that a scrubber replaces a whole encoded string before any part of it."""
    if not secret:
        return []
    raw = secret.encode("utf-8", "surrogateescape")
    whole = [raw]
    if user is not None:
        login = user.encode("utf-8", "surrogateescape")
        whole += [b"\0" + login + b"\0" + raw, login + b"\0" + login + b"\0" + raw]
    forms = {secret, quote(secret, safe="")}
    for data in whole:
        forms.update(encode(data).decode("ascii") for encode in _ENCODERS)
    forms.update(_fragments(raw))
    return sorted(forms, key=len, reverse=True)

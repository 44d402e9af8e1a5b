"""Accounts: roles, password hashing and opaque tokens (sessions, API tokens, setup links).

Standard library only. Invariants:

- Roles are ordered ``viewer < editor < admin``; a role grants everything the lower ones do.
- Passwords are stored as scrypt hashes (``hashlib.scrypt``, a random 16-byte salt per password);
  ``verify_password`` compares in constant time and never raises on a malformed hash (it is ``False``).
- Tokens (session cookies, API tokens, setup links) are 32 random bytes, URL-safe; only their
  SHA-256 digest is stored, so a copy of the database does not let anyone in.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "ROLES",
    "Role",
    "User",
    "hash_password",
    "new_token",
    "token_digest",
    "verify_password",
]


class Role(enum.IntEnum):
    """What a user may do; compare with ``>=``."""

    VIEWER = 1  # hub pages, the API's reads and TensorBoard
    EDITOR = 2  # also notes, tags, pins, bookmarks
    ADMIN = 3  # also users and tokens

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r} (viewer, editor or admin)") from None


ROLES = tuple(str(r) for r in Role)


@dataclass(frozen=True, slots=True)
class User:
    """Who a request acts as. ``via`` says how it authenticated: session, token, proxy or none.
    ``endpoints``: the only endpoints it may act on (an API token limited to some); ``None``: all."""

    name: str
    role: Role
    via: str
    id: int | None = None
    endpoints: frozenset[str] | None = None

    def may_use(self, endpoint: str) -> bool:
        return self.endpoints is None or endpoint in self.endpoints


# scrypt cost: 16 MiB of memory and about 50 ms per check; OWASP's minimum is N=2**17 with r=8 at
# 128 MiB, which is too much for a hub that may run next to training jobs. N=2**14 is the RFC 7914 example.
_N, _R, _P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for the database."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected),
            maxmem=2**26,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def new_token(prefix: str = "") -> str:
    """A fresh secret; ``prefix`` (``tbh_``) makes API tokens recognisable to secret scanners."""
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()

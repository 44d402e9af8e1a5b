"""How long failed logins make the next try wait, per account, per client address and per pair.

Standard library only. Each key (``pair``: one account from one address; ``account``: from anywhere;
``address``: any account from one address) counts its failures; after ``Limit.free`` of them every
further try waits ``first_s``, doubling with each failure, up to ``cap_s``. Failures older than
``FORGET_AFTER_S`` are forgotten. Invariants:

- A refused try (while locked) counts nothing and costs no password hash.
- The pair weighs most: the legitimate user's own address rarely shares it with an attacker. The
  account alone, which an attacker anywhere can push, locks after more failures and for at most a
  minute, so nobody can lock a real user out for long; the address alone stops password spraying.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORGET_AFTER_S", "KINDS", "LIMITS", "Limit", "lockout_s", "wait_s"]


@dataclass(frozen=True, slots=True)
class Limit:
    free: int  # failures before the first wait
    first_s: float
    cap_s: float


#: A first wait of 10 s is long enough to notice and short enough for a user who mistyped five times.
LIMITS: dict[str, Limit] = {
    "pair": Limit(free=5, first_s=10.0, cap_s=300.0),
    "account": Limit(free=20, first_s=10.0, cap_s=60.0),
    "address": Limit(free=20, first_s=10.0, cap_s=300.0),
}
KINDS = tuple(LIMITS)
FORGET_AFTER_S = 900.0


def lockout_s(kind: str, failures: int) -> float:
    """How long the key stays locked after its ``failures``-th failure."""
    limit = LIMITS[kind]
    if failures < limit.free:
        return 0.0
    return min(limit.cap_s, limit.first_s * 2.0 ** min(failures - limit.free, 32))


def wait_s(kind: str, failures: int, last_at: float, now: float) -> float:
    """Seconds from ``now`` until the key may try again (0: now)."""
    if now - last_at > FORGET_AFTER_S:
        return 0.0
    return max(0.0, last_at + lockout_s(kind, failures) - now)

"""Human units of the domain: ages like ``7d`` and sizes like ``2.1 GB``."""

from __future__ import annotations

import re

__all__ = ["format_age", "format_size", "parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 86400.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``"30d"`` → seconds. Units s, m, h, d, w; a bare number means days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_size(text: str) -> int:
    """``"2GB"`` → bytes (decimal units; ``GiB`` binary). A bare number means bytes."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 500MB or 2GiB")
    number, unit = float(match.group(1)), match.group(2).lower()
    if not unit or unit == "b":
        return int(number)
    base = 1024 if "i" in unit else 1000
    return int(number * base ** ("kmgtp".index(unit[0]) + 1))


def format_size(size: float) -> str:
    """Decimal units, as disks and cloud bills count them: ``2.1 GB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_age(seconds: float) -> str:
    """A short age: ``45s``, ``12m``, ``5h``, ``3d``, ``6w``."""
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f}h"
    if seconds < 86400 * 28:
        return f"{seconds / 86400:.0f}d"
    return f"{seconds / 604800:.0f}w"

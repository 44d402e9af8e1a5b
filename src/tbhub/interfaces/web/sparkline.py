"""Sparklines: a tiny inline SVG of a series, drawn on the server (no script, allowed by the CSP).

Only presentation attributes are used (no ``style``): the hub's Content-Security-Policy forbids
inline styles. The stroke is ``currentColor``, so the line follows the page's text colour in light
and dark mode; NaN and infinite values break the line and the last one, if not finite, is marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["sparkline_svg"]


def sparkline_svg(
    values: Sequence[float], *, width: int = 120, height: int = 28, label: str = "", pad: float = 2.0
) -> Markup:
    """An ``<svg>`` line of ``values`` (in order, evenly spaced), scaled to the finite values' range."""
    finite = [v for v in values if math.isfinite(v)]
    title = f"<title>{escape(label)}</title>" if label else ""
    head = (f'<svg class="sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(label or "sparkline")}" xmlns="http://www.w3.org/2000/svg">{title}')
    if not finite:
        return Markup(head + "</svg>")
    low, high = min(finite), max(finite)
    span = high - low or 1.0
    n = len(values)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        # A flat series is drawn across the middle.
        return height / 2 if high == low else pad + (height - 2 * pad) * (1 - (v - low) / span)

    parts: list[str] = []
    pen_down = False
    for i, v in enumerate(values):
        if not math.isfinite(v):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x(i):.1f} {y(v):.1f}")
        pen_down = True
    if n == 1 or len(finite) == 1:  # one point: a dot, a path of one move draws nothing
        i = next(i for i, v in enumerate(values) if math.isfinite(v))
        body = f'<circle cx="{x(i):.1f}" cy="{y(values[i]):.1f}" r="1.5" fill="currentColor"/>'
    else:
        body = (f'<path d="{" ".join(parts)}" fill="none" stroke="currentColor" stroke-width="1.25" '
                'stroke-linejoin="round" stroke-linecap="round"/>')
    if not math.isfinite(values[-1]):
        body += (f'<circle class="sparkline-nonfinite" cx="{width - pad - 1:.1f}" cy="{pad + 1:.1f}" r="2" '
                 'fill="#cf222e"/>')
    return Markup(head + body + "</svg>")

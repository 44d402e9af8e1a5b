"""Shared bookmarks: a named link to a TensorBoard view or to a hub page.

A TensorBoard view is the endpoint plus what TensorBoard keeps in the URL fragment: the dashboard,
the run filter (``regexInput``), the tag filter (``tagFilter``) and the smoothing
(``_smoothingWeight``). ``tensorboard_url`` builds ``/tb/ENDPOINT/#scalars&regexInput=...``; the
values are percent-encoded, so any regex survives the round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from tbhub.core.names import shown

__all__ = ["DASHBOARDS", "Bookmark", "run_filter", "stays_on_hub", "tensorboard_link", "tensorboard_url"]

#: TensorBoard's dashboards that read the run and tag filters from the fragment.
DASHBOARDS = ("scalars", "timeseries", "images", "histograms", "distributions", "graphs", "text", "hparams")
_NAME = re.compile(r"^[\w][\w .:/+-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PROBE = "hub.invalid"


def stays_on_hub(page: str) -> bool:
    """Whether a browser following ``page`` as a link on the hub stays on the hub.

    Browsers parse links the WHATWG URL way, not as written: they drop tabs and line breaks anywhere
    and leading or trailing controls and spaces, and in http(s) URLs a backslash is a slash. So
    ``/\\evil.example/phish`` and ``/\\t/evil.example`` (a real tab) are ``//evil.example/...``:
    another host. A page is accepted only if it is a path (``/`` but not ``//``) once read that way,
    and holds no control character at all.
    """
    if not page.startswith("/") or _CONTROL.search(page):
        return False
    seen = page.strip(" ").replace("\\", "/")
    if seen.startswith("//"):
        return False
    parts = urlsplit(f"http://{_PROBE}{seen}")
    return parts.netloc == _PROBE and parts.path.startswith("/")


@dataclass(frozen=True, slots=True)
class Bookmark:
    """``endpoint`` set: a TensorBoard view; else ``page``: a hub path (``/compare?tags=loss``)."""

    name: str
    owner: str
    description: str = ""
    endpoint: str | None = None
    dashboard: str = "scalars"
    run_filter: str = ""
    tag_filter: str = ""
    smoothing: float | None = None
    page: str | None = None
    created_at: float = 0.0
    id: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bookmark name {self.name!r}: letters, digits, spaces and . : / + - (up to 128)")
        if (self.endpoint is None) == (self.page is None):
            raise ValueError("a bookmark names either an endpoint (a TensorBoard view) or a hub page")
        if self.page is not None and not stays_on_hub(self.page):
            raise ValueError(f"a hub page is a path on the hub, like /compare?tags=loss, not {self.page!r}")
        if self.dashboard not in DASHBOARDS:
            raise ValueError(f"unknown dashboard {self.dashboard!r} ({', '.join(DASHBOARDS)})")
        if self.smoothing is not None and not 0 <= self.smoothing < 1:
            raise ValueError("smoothing is between 0 and 1 (0.6 is TensorBoard's default)")
        for pattern in (self.run_filter, self.tag_filter):
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a regular expression: {pattern!r} ({error})") from None

    @property
    def url(self) -> str:
        if self.page is not None:
            return self.page
        assert self.endpoint is not None
        return tensorboard_url(self.endpoint, self.dashboard, self.run_filter, self.tag_filter, self.smoothing)


def tensorboard_url(
    endpoint: str, dashboard: str = "scalars", run_filter: str = "", tag_filter: str = "",
    smoothing: float | None = None,
) -> str:
    """The hub path of a TensorBoard view, its state in the fragment as TensorBoard writes it."""
    parts = [dashboard]
    if run_filter:
        parts.append(f"regexInput={quote(run_filter, safe='')}")
    if tag_filter:
        parts.append(f"tagFilter={quote(tag_filter, safe='')}")
    if smoothing is not None:
        parts.append(f"_smoothingWeight={smoothing:g}")
    return f"/tb/{quote(endpoint, safe='')}/#" + "&".join(parts)


_REGEX_SYNTAX = re.compile(r"[\\^$.*+?()[\]{}|]")


def run_filter(relpath: str) -> str:
    """TensorBoard's run filter for one run: ``^RUN(/|$)``, the run and its sub-runs (``RUN/train``,
    ``RUN/eval``: TensorBoard names a run by its folder), not ``RUN-other``. ``relpath`` is the run's
    path below the log root (``dataset/run``, or ``run`` with the ``{run}`` layout)."""
    return "^" + _REGEX_SYNTAX.sub(r"\\\g<0>", shown(relpath.strip("/"))) + "(/|$)"


def tensorboard_link(endpoint: str, relpath: str) -> str:
    """The hub path of TensorBoard's scalars for one run (see ``run_filter``)."""
    return tensorboard_url(endpoint, "scalars", run_filter(relpath))

"""The runs explorer's query: which runs, in which order, which page; and the rows it answers.

A ``RunQuery`` is what a URL's query string says (``RunQuery.from_params``), so a view of the explorer
can be shared and bookmarked; ``params()`` writes it back (only what differs from the defaults). The
state database answers it in SQL (``adapters/db/run_index.py``), a page at a time, so an endpoint
with 10,000 runs costs what one page of them costs.

Sort keys (``SORT_KEYS``) name columns of the explorer; ``-key`` sorts descending. Every sort ends with
(endpoint, relpath) so that a page boundary never moves between two requests of the same view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from tbhub.core.bookmarks import run_filter
from tbhub.core.units import parse_duration

__all__ = [
    "DEFAULT_SORT",
    "PAGE_SIZES",
    "SORT_KEYS",
    "STATUSES",
    "ExplorerRow",
    "RunPage",
    "RunQuery",
    "StatusCounts",
    "runs_filter",
]

#: Column -> what it sorts by (the adapter maps each to SQL).
SORT_KEYS = (
    "endpoint", "dataset", "run", "size", "events", "files", "step", "modified", "status", "pinned", "tags", "notes",
)
DEFAULT_SORT = "-modified"
#: The statuses a run can have; ``unknown`` is a run the alert engine has not judged yet.
STATUSES = ("running", "stalled", "diverged", "finished", "unknown")
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
_PINNED = ("", "yes", "no")


@dataclass(frozen=True, slots=True)
class RunQuery:
    """One view of the explorer. Text filters match anywhere, case-insensitively; ``text`` matches the
    dataset, run, a tag or a note's text. ``newer``/``older`` are ages (``2h``, ``7d``) of the last write."""

    endpoint: str = ""
    text: str = ""
    dataset: str = ""
    run: str = ""
    tag: str = ""
    note: str = ""
    status: str = ""
    newer: str = ""
    older: str = ""
    pinned: str = ""
    sort: str = DEFAULT_SORT
    page: int = 1
    per: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> RunQuery:
        """The query a URL's parameters ask for; ``ValueError`` (a sentence) for a value that is not one."""
        names = {f.name for f in fields(cls)}
        values: dict[str, str] = {k: str(v).strip() for k, v in params.items() if k in names and str(v).strip()}
        query = cls(**{k: v for k, v in values.items() if k not in ("page", "per")})  # type: ignore[arg-type]
        try:
            page = int(values.get("page", "1"))
            per = int(values.get("per", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise ValueError("page and per are whole numbers") from None
        if page < 1:
            raise ValueError("page starts at 1")
        if per not in PAGE_SIZES:
            raise ValueError(f"per is one of {', '.join(map(str, PAGE_SIZES))}")
        query = replace(query, page=page, per=per)
        query.check()
        return query

    def check(self) -> None:
        key = self.sort.removeprefix("-")
        if key not in SORT_KEYS:
            raise ValueError(f"sort by one of {', '.join(SORT_KEYS)} (-KEY: descending), not {self.sort!r}")
        if self.status and self.status not in STATUSES:
            raise ValueError(f"status is one of {', '.join(STATUSES)}, not {self.status!r}")
        if self.pinned not in _PINNED:
            raise ValueError("pinned is yes or no")
        for name in ("newer", "older"):
            value = getattr(self, name)
            if value:
                try:
                    parse_duration(value)
                except ValueError as error:
                    raise ValueError(f"{name}: {error}") from None

    @property
    def sort_key(self) -> str:
        return self.sort.removeprefix("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def newer_s(self) -> float | None:
        """Only runs written to within this many seconds."""
        return parse_duration(self.newer) if self.newer else None

    @property
    def older_s(self) -> float | None:
        """Only runs not written to for this many seconds."""
        return parse_duration(self.older) if self.older else None

    @property
    def filtered(self) -> bool:
        """Whether any filter is set (an empty answer then means "no match", not "no runs")."""
        return any(getattr(self, n) for n in ("text", "dataset", "run", "tag", "note", "status", "newer",
                                                "older", "pinned"))

    def params(self, **changes: str | int) -> dict[str, str]:
        """The URL parameters of this view with ``changes``, leaving out defaults (short shared URLs)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        default = RunQuery()
        return {f.name: str(getattr(query, f.name)) for f in fields(query)
                if getattr(query, f.name) != getattr(default, f.name)}

    def sorted_by(self, key: str) -> dict[str, str]:
        """The parameters of this view sorted by ``key``: flips the direction when it is the key already.
        Sizes, counts, steps and times start descending (the largest, the newest first), names ascending."""
        if key == self.sort_key:
            wanted = key if self.descending else f"-{key}"
        else:
            wanted = f"-{key}" if key in ("size", "events", "files", "step", "modified", "pinned", "notes") else key
        return self.params(sort=wanted, page=1)


@dataclass(frozen=True, slots=True)
class ExplorerRow:
    """One run as the explorer lists it: the index's aggregates and the marks users put on it."""

    endpoint: str
    dataset: str
    run: str
    relpath: str
    size_bytes: int
    event_files: int
    event_count: int
    last_step: int | None
    first_wall_time: float | None
    last_wall_time: float | None
    last_modified_ns: int
    truncated: bool
    corrupt: bool
    status: str | None
    reason: str | None
    pinned: bool
    notes: int
    tags: tuple[str, ...] = ()
    last_note: str | None = None


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of a query's answer and how many runs match in all."""

    query: RunQuery
    rows: list[ExplorerRow]
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.per))

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when none)."""
        return (self.query.page - 1) * self.query.per + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


@dataclass(slots=True)
class StatusCounts:
    """How many runs of an endpoint (or of all) are in each status, and their size on disk."""

    endpoint: str
    counts: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    size_bytes: int = 0

    def add(self, status: str, runs: int, size_bytes: int) -> None:
        self.counts[status] = self.counts.get(status, 0) + runs
        self.runs += runs
        self.size_bytes += size_bytes

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @classmethod
    def total(cls, parts: Iterable[StatusCounts]) -> StatusCounts:
        out = cls("")
        for part in parts:
            for status, n in part.counts.items():
                out.counts[status] = out.counts.get(status, 0) + n
            out.runs += part.runs
            out.size_bytes += part.size_bytes
        return out


def runs_filter(relpaths: Sequence[str]) -> str:
    """TensorBoard's run filter for exactly these runs and their sub-runs: ``^(A|B)(/|$)``, each
    escaped as ``run_filter`` escapes one run (which this reuses, so there is one escaping)."""
    if len(relpaths) == 1:
        return run_filter(relpaths[0])
    bodies = [run_filter(r)[1 : -len("(/|$)")] for r in dict.fromkeys(relpaths)]
    return "^(" + "|".join(bodies) + ")(/|$)"

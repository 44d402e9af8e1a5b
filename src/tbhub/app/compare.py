"""Compare runs: a row per run with the chosen tags' last, best and target values."""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.scalars import run_scalars
from tbhub.app.series import SeriesCache, run_series
from tbhub.app.services import Services
from tbhub.app.targets import TargetSearch
from tbhub.core.compare import CompareRow, Target, build_rows, matching_tags
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.scalars import TagSummary
from tbhub.core.series import DEFAULT_POINTS, SeriesPoints

__all__ = [
    "Selection",
    "compare_runs",
    "find_runs",
    "run_id",
    "search_runs",
    "select_filtered",
    "select_recent",
    "select_runs",
    "selection_rows",
    "selection_series",
]


def compare_runs(
    services: Services,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    tags: Sequence[str] = (),
    target: Target | None = None,
    scan: bool = True,
) -> list[CompareRow]:
    """Rows for ``tbhub compare`` and ``/compare``.

    ``scan=True`` (the CLI): a fresh scan, scalar summaries brought up to date, and a ``target`` read
    from the points. ``scan=False`` (the hub): only what the index and the scalar index hold, no file
    is opened (the background alert engine keeps the scalar index fresh).
    """
    from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when comparing

    decoder = ProtobufDecoder()
    rows: list[CompareRow] = []
    specs = services.select(names)
    if scan:
        inventories = {inv.endpoint.name: inv.runs for inv in scan_endpoints(services, names)}
    else:
        inventories = {s.name: endpoint_runs(services, s.name) for s in specs}
    for spec in specs:
        runs = inventories[spec.name]
        selected = [r for r in runs if dataset_glob is None or fnmatch.fnmatchcase(r.dataset, dataset_glob)]
        prune = scan and len(selected) == len(runs)
        summaries = run_scalars(services, spec, selected, decoder, prune=prune, parse=scan)
        hits = None
        if target is not None and scan:
            plan = [(run, real) for run in selected
                    if (real := matching_tags(summaries.get(run.relpath, {}), target.tag)) is not None]
            hits = {relpath: hit for (_, relpath), hit in TargetSearch(target).first_points(services, plan).items()}
        rows.extend(build_rows(selected, summaries, list(tags), hits=hits))
    return rows


@dataclass(frozen=True, slots=True)
class Selection:
    """Runs chosen by id (``endpoint/relpath`` as shown), across endpoints, with their tag summaries."""

    runs: list[RunSummary]
    tags: dict[str, dict[str, TagSummary]]  # run id -> tag -> summary
    unknown: list[str]  # ids that name no run in the index

    def tag_counts(self) -> list[tuple[str, int]]:
        """Every scalar tag of the chosen runs with how many of them have it: most common first."""
        counts = Counter(tag for tags in self.tags.values() for tag in tags)
        return sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))

    def default_tag(self) -> str | None:
        """The tag to show when none is asked for: the most common one, a loss-like one among the
        most common first (what a TensorBoard user looks at first), ``None`` without any tag."""
        counts = self.tag_counts()
        if not counts:
            return None
        top = [tag for tag, n in counts if n == counts[0][1]]
        losses = [t for t in top if "loss" in t.rpartition("/")[2].lower()]
        return (losses or top)[0]


def run_id(run: RunSummary) -> str:
    """How a run is named across endpoints (URLs, the compare picker): ``endpoint/dataset/run``, shown."""
    return f"{run.endpoint}/{shown(run.relpath)}"


def find_runs(services: Services, ids: Sequence[str]) -> tuple[list[RunSummary], list[str]]:
    """The runs ``ids`` name (``endpoint/relpath``, each once, in the order given) and the ids that
    name none. Reads the index of each endpoint named, nothing else."""
    wanted: dict[str, list[str]] = {}
    for rid in dict.fromkeys(i.strip().strip("/") for i in ids if i.strip()):
        endpoint, _, relpath = rid.partition("/")
        wanted.setdefault(endpoint, []).append(relpath)
    found: dict[str, RunSummary] = {}
    for endpoint, relpaths in wanted.items():
        if endpoint not in services.specs:
            continue
        want = set(relpaths)
        for run in endpoint_runs(services, endpoint):
            if shown(run.relpath) in want:
                found[run_id(run)] = run
    order = list(dict.fromkeys(i.strip().strip("/") for i in ids if i.strip()))
    return [found[i] for i in order if i in found], [i for i in order if i not in found]


def select_runs(services: Services, ids: Sequence[str]) -> Selection:
    """The runs ``ids`` name and their tag summaries from the state database (no file is opened)."""
    runs, unknown = find_runs(services, ids)
    tags: dict[str, dict[str, TagSummary]] = {}
    by_endpoint: dict[str, list[RunSummary]] = {}
    for run in runs:
        by_endpoint.setdefault(run.endpoint, []).append(run)
    for endpoint, chosen in by_endpoint.items():
        summaries = run_scalars(services, services.spec(endpoint), chosen, parse=False, prune=False)
        for run in chosen:
            tags[run_id(run)] = summaries.get(run.relpath, {})
    return Selection(runs, tags, unknown)


def selection_rows(selection: Selection, wanted: Sequence[str]) -> list[CompareRow]:
    """Compare rows of the chosen runs for the ``wanted`` tags."""
    rows: list[CompareRow] = []
    for run in selection.runs:  # one by one: two endpoints may hold the same relpath
        rows.extend(build_rows([run], {run.relpath: selection.tags[run_id(run)]}, list(wanted)))
    return rows


def search_runs(services: Services, query: str, limit: int = 50) -> tuple[list[RunSummary], int]:
    """Runs of every endpoint whose id contains each word of ``query`` (case-insensitive), newest
    first, at most ``limit``; and how many matched."""
    words = query.lower().split()
    matched = [
        run
        for name in services.specs
        for run in endpoint_runs(services, name)
        if all(w in run_id(run).lower() for w in words)
    ]
    matched.sort(key=lambda r: -r.last_modified_ns)
    return matched[:limit], len(matched)


def select_recent(services: Services, count: int) -> Selection:
    """The ``count`` most recently written runs of every endpoint, newest first, with their tag summaries."""
    recent, _ = search_runs(services, "", count)
    tags: dict[str, dict[str, TagSummary]] = {}
    for endpoint in dict.fromkeys(r.endpoint for r in recent):
        chosen = [r for r in recent if r.endpoint == endpoint]
        summaries = run_scalars(services, services.spec(endpoint), chosen, parse=False, prune=False)
        tags.update({run_id(r): summaries.get(r.relpath, {}) for r in chosen})
    return Selection(recent, tags, [])


def select_filtered(services: Services, endpoint: str | None, dataset_glob: str | None) -> Selection:
    """Every run of ``endpoint`` (all endpoints: ``None``) whose dataset matches ``dataset_glob``,
    with its tag summaries from the state database (no file is opened)."""
    runs: list[RunSummary] = []
    tags: dict[str, dict[str, TagSummary]] = {}
    for spec in services.select([endpoint] if endpoint else None):
        chosen = [r for r in endpoint_runs(services, spec.name)
                  if dataset_glob is None or fnmatch.fnmatchcase(r.dataset, dataset_glob)]
        summaries = run_scalars(services, spec, chosen, parse=False, prune=False)
        for run in chosen:
            tags[run_id(run)] = summaries.get(run.relpath, {})
        runs.extend(chosen)
    return Selection(runs, tags, [])


def selection_series(
    services: Services,
    selection: Selection,
    wanted: Sequence[str],
    cache: SeriesCache,
    *,
    max_points: int = DEFAULT_POINTS,
) -> list[dict[str, SeriesPoints]]:
    """For each chosen run (in order), the series of each ``wanted`` tag it has, keyed by the name
    asked for (``loss`` finds the run's ``train/loss`` as the table does), each at most ``max_points``
    points. Reads only these runs' event files (cached by file identity: ``app.series``)."""
    out = []
    for run in selection.runs:
        tags = selection.tags.get(run_id(run), {})
        real = {name: found for name in wanted if (found := matching_tags(tags, name)) is not None}
        series = run_series(services, run, set(real.values()), cache, max_points=max_points)
        out.append({name: series[tag] for name, tag in real.items() if tag in series})
    return out

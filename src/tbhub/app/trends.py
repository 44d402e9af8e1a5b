"""Efficiency trends per endpoint and dataset (``tbhub trends``, ``/trends``, ``/api/trends``)."""

from __future__ import annotations

from collections.abc import Sequence

from tbhub.app.compute import compute_runs
from tbhub.app.services import Services
from tbhub.app.targets import TargetSearch
from tbhub.core.trends import MetricSpec, Trend, build_trends, run_facts

__all__ = ["trends_report"]


def trends_report(
    services: Services,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    metric: MetricSpec | None = None,
    target: TargetSearch | None = None,
    scan: bool = True,
) -> list[Trend]:
    """The trends of the selected endpoints and datasets. ``scan=True`` (the CLI): scan and bring the
    scalar states up to date; ``scan=False`` (the hub): the index and the stored states only. Either
    way ``target``'s first hits are read from the points (``compute_runs``)."""
    runs = compute_runs(services, names=names, dataset_glob=dataset_glob, target=target, scan=scan)
    return build_trends((run_facts(r.compute, r.tags, metric, training=r.training) for r in runs), metric)

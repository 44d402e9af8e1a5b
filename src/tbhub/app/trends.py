"""Efficiency trends per endpoint and dataset (``tbhub trends``, ``/trends``, ``/api/trends``)."""

from __future__ import annotations

from collections.abc import Sequence

from tbhub.app.compute import compute_runs
from tbhub.app.services import Services
from tbhub.core.compare import Target
from tbhub.core.trends import MetricSpec, Trend, build_trends, run_facts

__all__ = ["trends_report"]


def trends_report(
    services: Services,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    metric: MetricSpec | None = None,
    target: Target | None = None,
    scan: bool = True,
) -> list[Trend]:
    """The trends of the selected endpoints and datasets. ``scan=True`` (the CLI): scan, bring the
    scalar states up to date, read ``target`` hits from the points; ``scan=False`` (the hub): the
    index and the stored states only, without target hits."""
    runs = compute_runs(services, names=names, dataset_glob=dataset_glob, target=target, scan=scan)
    return build_trends((run_facts(r.compute, r.tags, metric) for r in runs), metric)

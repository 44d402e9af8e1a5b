"""What the ``/trends`` page (and ``GET /api/trends``) shows: the trends of the index, no scan; with a
target, the time and cost to it (its first hits read from the event files: ``tbhub.app.targets``)."""

from __future__ import annotations

from typing import Any

from tbhub.app.hub import Hub
from tbhub.app.targets import TargetSearch
from tbhub.app.trends import trends_report
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.trends import MetricSpec, parse_metric
from tbhub.errors import UsageError
from tbhub.interfaces.cost_records import trend_record

__all__ = ["CHARTS", "trends_data"]

#: The charts of a dataset on the page: (measure, title), drawn when some point has the measure.
CHARTS = (
    ("steps_per_s", "steps per second (busy time)"),
    ("samples_per_s", "samples per second"),
    ("gpu_hours", "GPU-hours per run"),
    ("cost", "cost per run"),
    ("target_hours", "busy hours to the target"),
    ("target_cost", "cost to the target"),
    ("metric", "best metric"),
)


def trends_data(hub: Hub, dataset: str | None, metric: str | None, target: TargetSearch | None = None
                ) -> dict[str, Any]:
    """The trends of every endpoint (datasets matching ``dataset``), with the best ``metric`` per point
    and the busy time and cost to ``target``.

    Bad input (a metric that does not parse, a target tag no run logged) is a ``UsageError`` (400).
    Read from the index and the scalar states the alert engine stores; only a target opens event
    files, of the runs that logged its tag (bounded per request, cached: ``TargetSearch``).
    """
    spec: MetricSpec | None = None
    if metric:
        try:
            spec = parse_metric(metric)
        except ValueError as error:
            raise UsageError(str(error)) from None
    currency = hub.config.cost.currency
    trends = trends_report(hub.services, dataset_glob=dataset or None, metric=spec, target=target, scan=False)
    goal = None if target is None else str(target.target)
    records = [trend_record(t, metric=None if spec is None else str(spec), target=goal, currency=currency)
               for t in trends]
    charts = []
    for record in records:
        record["charts"] = [
            {"measure": m, "title": f"best {spec}" if m == "metric" and spec
             else title.replace("the target", goal) if goal and m.startswith("target_") else title}
            for m, title in CHARTS if any(p[m] is not None for p in record["points"])
        ]
        charts.append(record)
    priced = any(p["cost"] is not None for r in records for p in r["points"])
    return {
        "trends": charts,
        "currency": currency,
        "metric": None if spec is None else str(spec),
        "target": goal,
        "price_note": None if priced or not records else PRICE_NOT_SET,
    }

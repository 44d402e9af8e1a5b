"""What the ``/trends`` page (and ``GET /api/trends``) shows: the trends of the index, no scan."""

from __future__ import annotations

from typing import Any

from tbhub.app.hub import Hub
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
    ("metric", "best metric"),
)


def trends_data(hub: Hub, dataset: str | None, metric: str | None) -> dict[str, Any]:
    """The trends of every endpoint (datasets matching ``dataset``), with the best ``metric`` per point.

    Bad input (a metric that does not parse) is a ``UsageError`` (400). Read from the index and the
    scalar states the alert engine stores: no event file is opened, so there is no time to a target here.
    """
    spec: MetricSpec | None = None
    if metric:
        try:
            spec = parse_metric(metric)
        except ValueError as error:
            raise UsageError(str(error)) from None
    currency = hub.config.cost.currency
    trends = trends_report(hub.services, dataset_glob=dataset or None, metric=spec, scan=False)
    records = [trend_record(t, metric=None if spec is None else str(spec), target=None, currency=currency)
               for t in trends]
    charts = []
    for record in records:
        record["charts"] = [
            {"measure": m, "title": f"best {spec}" if m == "metric" and spec else title}
            for m, title in CHARTS if any(p[m] is not None for p in record["points"])
        ]
        charts.append(record)
    priced = any(p["cost"] is not None for r in records for p in r["points"])
    return {
        "trends": charts,
        "currency": currency,
        "metric": None if spec is None else str(spec),
        "price_note": None if priced or not records else PRICE_NOT_SET,
    }

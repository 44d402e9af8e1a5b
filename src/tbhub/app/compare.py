"""Compare runs: a row per run with the chosen tags' last, best and target values."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence

from tbhub.adapters.crc import crc32c
from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.scalars import run_scalars
from tbhub.app.services import AnyLogStore, Services
from tbhub.core.compare import CompareRow, Target, build_rows
from tbhub.core.models import RunSummary
from tbhub.core.scalars import ScalarPoint, iter_points, run_tag

__all__ = ["compare_runs"]


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
        store = services.store(spec.name)

        def points(run: RunSummary, tag: str, store: AnyLogStore = store) -> Iterator[ScalarPoint]:
            for f in run.files:
                subdir = f.relpath[len(run.relpath) + 1 :].rpartition("/")[0] if f.relpath != run.relpath else ""
                with store.open(f.relpath) as fh:
                    for point in iter_points(fh, None, inode=f.inode, size=f.size, decoder=decoder, crc32c=crc32c):
                        if run_tag(subdir, point[0]) == tag:
                            yield point

        rows.extend(build_rows(selected, summaries, list(tags), target=target if scan else None, target_points=points))
    return rows

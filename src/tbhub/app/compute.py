"""The compute side of runs: busy time, GPU-hours and cost per run, from the stored scalar states.

Shared by ``tbhub usage`` / ``/usage`` and ``tbhub trends`` / ``/trends``. The CLI brings the states
up to date first (``parse=True``: only the bytes appended since the last pass are read) and may look
for a target's first hit in the points; the hub reads what the alert engine stored (``parse=False``:
no event file is opened on a request), so it has no target hits.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tbhub.adapters.crc import crc32c
from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.scalars import state_from_json, update_scalar_states
from tbhub.app.services import Services
from tbhub.core.compare import Target, matching_tags
from tbhub.core.cost import RunCompute, run_compute, trainer_devices
from tbhub.core.frameworks import recognise
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.scalars import EventDecoder, TagSummary, iter_points, merge_tags, run_tag, run_texts

__all__ = ["RunCost", "compute_runs", "endpoint_compute", "plan_devices"]


@dataclass(frozen=True, slots=True)
class RunCost:
    """A run's compute with its tag summaries; ``target_tag``: the tag the target was looked up in
    (``None``: no target asked, or the run has no such tag)."""

    compute: RunCompute
    tags: dict[str, TagSummary] = field(default_factory=dict)
    target_tag: str | None = None

    @property
    def run(self) -> RunSummary:
        return self.compute.run


def plan_devices(tags: Mapping[str, TagSummary], texts: Mapping[str, str]) -> int | None:
    """The device count a run's logs give: for a finished Hugging Face Trainer run, its args'
    per-device batch and accumulation against its final samples and steps per second
    (``tbhub.core.cost.trainer_devices``); ``None`` otherwise (GPUs then come from ``[cost] gpus``,
    else 1)."""
    found = recognise(tags, texts)
    if found.framework != "transformers":
        return None

    def last(name: str) -> float | None:
        key = matching_tags(tags, name)
        return None if key is None else tags[key].last_value

    return trainer_devices(found.facts, last("train/train_samples_per_second"), last("train/train_steps_per_second"))


def _target_wall_time(services: Services, spec: EndpointSpec, run: RunSummary, tag: str, target: Target,
                      decoder: EventDecoder) -> float | None:
    """The earliest wall time at which ``target`` held in ``run`` (every file's points of ``tag``)."""
    store = services.store(spec.name)
    best: float | None = None
    for f in run.files:
        subdir = f.relpath[len(run.relpath) + 1 :].rpartition("/")[0] if f.relpath != run.relpath else ""
        with store.open(f.relpath) as fh:
            for point_tag, _step, wall, value in iter_points(fh, None, inode=f.inode, size=f.size,
                                                             decoder=decoder,
                                                             crc32c=crc32c):
                if run_tag(subdir, point_tag) == tag and target.met(value):
                    best = wall if best is None else min(best, wall)
                    break  # later points of this file are later (file order): the first hit is enough
    return best


def endpoint_compute(
    services: Services,
    spec: EndpointSpec,
    runs: Sequence[RunSummary],
    *,
    parse: bool,
    prune: bool = False,
    target: Target | None = None,
) -> list[RunCost]:
    """The compute of ``runs`` (of endpoint ``spec``). ``parse``: bring the scalar states up to date
    first (the CLI); otherwise only what the state database holds (the hub). ``target`` is looked up
    in the points only with ``parse``."""
    decoder: EventDecoder | None = None
    if parse:
        from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when parsing

        decoder = ProtobufDecoder()
    if decoder is not None:
        known = update_scalar_states(services, spec, runs, decoder, prune=prune)
    else:
        known = services.state.load_scalar_states(spec.name)
    status_rules = services.config.alerts.rules_for(spec.name)
    cost_rules = services.config.cost.rules_for(spec.name)
    out: list[RunCost] = []
    for run in runs:
        states = [state_from_json(known[f.relpath][3]) for f in run.files if f.relpath in known]
        loose = len(run.files) == 1 and run.files[0].relpath == run.relpath
        root = run.relpath.rpartition("/")[0] if loose else run.relpath
        tags = merge_tags(root, states)
        target_tag = matching_tags(tags, target.tag) if target is not None else None
        hit = None
        if target is not None and target_tag is not None and parse and decoder is not None:
            hit = _target_wall_time(services, spec, run, target_tag, target, decoder)
        compute = run_compute(
            run,
            [(s.activity, s.activity_gap) for s in states],
            stalled_after=status_rules.rule_for(run.dataset).stalled_after_s,
            rule=cost_rules.rule_for(run.dataset),
            plan_devices=plan_devices(tags, run_texts(root, states)),
            target_wall_time=hit,
        )
        out.append(RunCost(compute, tags, target_tag))
    return out


def compute_runs(
    services: Services,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    target: Target | None = None,
    scan: bool = True,
    runs: Sequence[RunSummary] | None = None,
) -> list[RunCost]:
    """The compute of every run of the selected endpoints (``names``) and datasets (``dataset_glob``).

    ``scan=True`` (the CLI): a fresh scan (or the given ``runs``, just scanned), the scalar states
    brought up to date, ``target`` read from the points. ``scan=False`` (the hub): the index and the
    stored states only.
    """
    specs = services.select(names)
    inventories: dict[str, list[RunSummary]] = {}
    if runs is not None:
        for run in runs:
            inventories.setdefault(run.endpoint, []).append(run)
    elif scan:
        inventories = {inv.endpoint.name: list(inv.runs) for inv in scan_endpoints(services, names)}
    else:
        inventories = {s.name: endpoint_runs(services, s.name) for s in specs}
    out: list[RunCost] = []
    for spec in specs:
        found = inventories.get(spec.name, [])
        selected = [r for r in found if dataset_glob is None or fnmatch.fnmatchcase(r.dataset, dataset_glob)]
        out.extend(endpoint_compute(services, spec, selected, parse=scan,
                                    prune=scan and len(selected) == len(found), target=target))
    return out

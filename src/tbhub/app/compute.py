"""The compute side of runs: busy time, GPU-hours and cost per run, from the stored scalar states.

Shared by ``tbhub usage`` / ``/usage`` and ``tbhub trends`` / ``/trends``. The CLI brings the states
up to date first (only the bytes appended since the last pass are read); the hub reads what the alert
engine stored. A target's first hit is read from the points of the runs that logged its tag, by both
(``tbhub.app.targets``: on the hub bounded per request and cached, so a request reads only bytes no
earlier one read).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tbhub.app.alerts.rules import rules_config
from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.scalars import run_root, state_from_json, update_scalar_states
from tbhub.app.services import Services
from tbhub.app.status import run_verdict
from tbhub.app.targets import TargetSearch
from tbhub.core.compare import matching_tags
from tbhub.core.cost import CostRule, RunCompute, run_compute, trainer_devices
from tbhub.core.frameworks import recognise
from tbhub.core.models import EndpointSpec, RunStatus, RunSummary
from tbhub.core.scalars import ScalarFileState, TagSummary, merge_tags, run_texts
from tbhub.core.status import StatusRule
from tbhub.errors import UsageError

__all__ = ["RunCost", "compute_runs", "plan_devices"]


@dataclass(frozen=True, slots=True)
class RunCost:
    """A run's compute with its tag summaries; ``target_tag``: the tag the target was looked up in
    (``None``: no target asked, or the run has no such tag); ``training``: the run is running (written
    within its ``stalled_after``, neither finished nor diverged), so its compute is what it spent so far."""

    compute: RunCompute
    tags: dict[str, TagSummary] = field(default_factory=dict)
    target_tag: str | None = None
    training: bool = False

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


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A run with what its stored scalar states give: activity, tags, texts, rules."""

    run: RunSummary
    states: list[ScalarFileState]
    tags: dict[str, TagSummary]
    root: str
    status_rule: StatusRule
    rule: CostRule

    def training(self, services: Services, now_ns: int) -> bool:
        """Whether the hub would call this run running; only a run written within its ``stalled_after``
        is judged (its marker files looked for), so a scan of many old runs costs nothing more."""
        if self.run.age_seconds(now_ns) > self.status_rule.stalled_after_s:
            return False
        verdict = run_verdict(services.store(self.run.endpoint), self.run, self.tags, self.states, self.status_rule,
                              now_ns=now_ns)
        return verdict.status == RunStatus.RUNNING


def _prepare(services: Services, spec: EndpointSpec, runs: Sequence[RunSummary], *, parse: bool,
             prune: bool) -> list[_Prepared]:
    """``runs`` (of endpoint ``spec``) with their stored scalar states. ``parse``: bring the states up
    to date first (the CLI); otherwise only what the state database holds (the hub)."""
    if parse:
        from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when parsing

        known = update_scalar_states(services, spec, runs, ProtobufDecoder(), prune=prune)
    else:
        known = services.state.load_scalar_states(spec.name)
    status_rules = rules_config(services).alerts.rules_for(spec.name)  # with the hub's overrides, as statuses
    cost_rules = services.config.cost.rules_for(spec.name)
    out = []
    for run in runs:
        states = [state_from_json(known[f.relpath][3]) for f in run.files if f.relpath in known]
        root = run_root(run)
        out.append(_Prepared(run, states, merge_tags(root, states), root,
                             status_rules.rule_for(run.dataset), cost_rules.rule_for(run.dataset)))
    return out


def _target_hits(services: Services, prepared: Sequence[_Prepared], target: TargetSearch) -> tuple[
        dict[tuple[str, str], float], dict[tuple[str, str], str]]:
    """(when the target first held, by run; the run-level tag it was looked up in, by run). A target
    whose tag no run has is a ``UsageError`` ("no run logged TAG")."""
    tags = {(p.run.endpoint, p.run.relpath): t for p in prepared
            if (t := matching_tags(p.tags, target.target.tag)) is not None}
    if prepared and not tags:
        raise UsageError(f"no run logged {target.target.tag}")
    plan = [(p.run, tags[p.run.endpoint, p.run.relpath]) for p in prepared if (p.run.endpoint, p.run.relpath) in tags]
    return target.first_hits(services, plan), tags


def compute_runs(
    services: Services,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    target: TargetSearch | None = None,
    scan: bool = True,
    runs: Sequence[RunSummary] | None = None,
) -> list[RunCost]:
    """The compute of every run of the selected endpoints (``names``) and datasets (``dataset_glob``).

    ``scan=True`` (the CLI): a fresh scan (or the given ``runs``, just scanned) and the scalar states
    brought up to date. ``scan=False`` (the hub): the index and the stored states only. Either way a
    ``target`` is looked up in the points of the selected runs that logged its tag (``TargetSearch``:
    bounded and cached on the hub); ``UsageError`` when none did.
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
    prepared: list[_Prepared] = []
    for spec in specs:
        found = inventories.get(spec.name, [])
        selected = [r for r in found if dataset_glob is None or fnmatch.fnmatchcase(r.dataset, dataset_glob)]
        prepared.extend(_prepare(services, spec, selected, parse=scan, prune=scan and len(selected) == len(found)))
    hits, tags = _target_hits(services, prepared, target) if target is not None else ({}, {})
    out: list[RunCost] = []
    now_ns = time.time_ns()
    for p in prepared:
        key = (p.run.endpoint, p.run.relpath)
        compute = run_compute(
            p.run,
            [(s.activity, s.activity_gap) for s in p.states],
            stalled_after=p.status_rule.stalled_after_s,
            rule=p.rule,
            plan_devices=plan_devices(p.tags, run_texts(p.root, p.states)),
            target_wall_time=hits.get(key),
        )
        out.append(RunCost(compute, p.tags, tags.get(key), p.training(services, now_ns)))
    return out

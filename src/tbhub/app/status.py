"""Each run's status (running, stalled, finished, diverged) under its endpoint's rules, with what its
logs show of the framework that wrote it (``tbhub.core.frameworks``): plan, progress, ETA, crash hint."""

from __future__ import annotations

from collections.abc import Sequence

from tbhub.app.scalars import run_root, run_scalars, state_from_json
from tbhub.app.services import Services
from tbhub.config import AlertsConfig
from tbhub.core.frameworks import FRAMEWORK_FILES, Recognition, Span, file_spans, recognise
from tbhub.core.inventory import EndpointInventory
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.ports import LogStore
from tbhub.core.scalars import EventDecoder, ScalarFileState, TagSummary, merge_tags, run_texts
from tbhub.core.status import StatusRule, StatusVerdict, run_status

__all__ = ["current_statuses", "framework_files", "recognition", "run_statuses", "run_verdict", "stored_statuses"]

_FILE_BYTES = 64 * 1024  # a framework file longer than this is read in part (hparams.yaml: a few hundred bytes)


def framework_files(store: LogStore, run: RunSummary) -> dict[str, str]:
    """The text of each framework file (``FRAMEWORK_FILES``: Lightning's ``hparams.yaml``) in the run
    folder or a folder of its event files. Read on local log roots only: on object storage each check
    would be a request per run and status pass."""
    folders = sorted({run.relpath} | {f.relpath.rpartition("/")[0] for f in run.files} - {""})
    out: dict[str, str] = {}
    for name in FRAMEWORK_FILES:
        for folder in folders:
            path = store.local_path(f"{folder}/{name}")
            if path is None:
                return out
            try:
                with open(path, "rb") as f:
                    out[name] = f.read(_FILE_BYTES).decode("utf-8", "replace")
                break
            except OSError:  # absent (the common case), unreadable, a folder
                continue
    return out


def recognition(store: LogStore, run: RunSummary, tags: dict[str, TagSummary], texts: dict[str, str]) -> Recognition:
    """What ``run``'s logs (its tags and texts, as ``run_scalars`` gives them) and framework files show
    of the framework that wrote it."""
    return recognise(tags, texts, framework_files(store, run))


def _markers(store: LogStore, run: RunSummary, rule: StatusRule) -> set[str]:
    """Which of ``rule``'s marker files the run folder holds."""
    return {m for m in rule.marker_files if store.exists(f"{run.relpath}/{m}")}


def run_verdict(store: LogStore, run: RunSummary, tags: dict[str, TagSummary], states: Sequence[ScalarFileState],
                rule: StatusRule, *, now_ns: int) -> StatusVerdict:
    """``run``'s status under ``rule`` from its tag summaries and stored file states (``run_scalars``
    gives both), its marker files and what its framework logged."""
    found = recognition(store, run, tags, run_texts(run_root(run), states))
    return run_status(run, tags, rule, now_ns=now_ns, markers=_markers(store, run, rule), recognition=found,
                      spans=file_spans(states, found))


def run_statuses(
    services: Services,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder | None,
    *,
    now_ns: int,
    alerts: AlertsConfig | None = None,
    parse: bool = True,
    prune: bool = True,
) -> tuple[dict[str, StatusVerdict], dict[str, dict[str, TagSummary]]]:
    """Each run's status (by relpath) under the endpoint's rules (those of ``alerts``, by default the
    config's), and the tag summaries behind it. ``parse``, ``prune`` and ``decoder`` as for
    ``run_scalars``."""
    rules = (alerts or services.config.alerts).rules_for(endpoint.name)
    states: dict[str, list[ScalarFileState]] = {}
    tags = run_scalars(services, endpoint, runs, decoder, parse=parse, prune=prune, states=states)
    store = services.store(endpoint.name)
    verdicts = {run.relpath: run_verdict(store, run, tags.get(run.relpath, {}), states.get(run.relpath, []),
                                         rules.rule_for(run.dataset), now_ns=now_ns) for run in runs}
    return verdicts, tags


def current_statuses(
    services: Services, inventories: Sequence[EndpointInventory], now_ns: int
) -> dict[tuple[str, str], StatusVerdict]:
    """Each run's status by (endpoint, relpath), under the rules the alert engine uses: the config's with
    the hub's overrides on top. Brings the scalar summaries up to date (parses only new bytes)."""
    from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when asked for
    from tbhub.app.alerts.rules import rules_config  # the alert engine imports this module

    decoder = ProtobufDecoder()
    alerts = rules_config(services).alerts
    out = {}
    for inv in inventories:
        verdicts, _ = run_statuses(services, inv.endpoint, inv.runs, decoder, now_ns=now_ns, alerts=alerts)
        out.update({(inv.endpoint.name, relpath): v for relpath, v in verdicts.items()})
    return out


def stored_statuses(services: Services, endpoint: EndpointSpec, runs: Sequence[RunSummary],
                    now_ns: int) -> dict[str, StatusVerdict]:
    """Each run's status (by relpath) with its framework, progress and ETA, from the scalar states the
    database holds, under the alert engine's rules: what the hub's API and pages show. Parses nothing
    and writes nothing (a file not parsed yet counts with the state it had, or none).

    Called on requests, so what a run's stored states give (tags, texts, framework) is kept in memory
    per run and state version (``_DECIDED``): an unchanged run costs one look-up, not a JSON decode
    and a merge (about 0.6 ms a run of the Trainer's)."""
    from tbhub.app.alerts.rules import rules_config  # the alert engine imports this module

    rules = rules_config(services).alerts.rules_for(endpoint.name)
    known = services.state.load_scalar_states(endpoint.name)
    store = services.store(endpoint.name)
    verdicts = {}
    for run in runs:
        version = tuple((f.relpath, *known[f.relpath][:3]) for f in run.files if f.relpath in known)
        key = (endpoint.name, endpoint.logdir, run.relpath, version)
        decided = _DECIDED.get(key)
        if decided is None:
            states = [state_from_json(known[f.relpath][3]) for f in run.files if f.relpath in known]
            root = run_root(run)
            tags = merge_tags(root, states)
            found = recognition(store, run, tags, run_texts(root, states))
            decided = (tags, found, file_spans(states, found))
            if len(_DECIDED) >= _DECIDED_MAX:
                _DECIDED.clear()
            _DECIDED[key] = decided
        rule = rules.rule_for(run.dataset)
        verdicts[run.relpath] = run_status(run, decided[0], rule, now_ns=now_ns, markers=_markers(store, run, rule),
                                           recognition=decided[1], spans=decided[2])
    return verdicts


#: (endpoint, log root, run relpath, its stored states' (relpath, inode, size, mtime)) -> (tags,
#: recognition, file spans). Bounded: cleared when full (a hub with more runs decodes the rest again).
_DECIDED: dict[tuple[str, str, str, tuple[tuple[str, int, int, int], ...]],
               tuple[dict[str, TagSummary], Recognition, list[Span]]] = {}
_DECIDED_MAX = 50_000

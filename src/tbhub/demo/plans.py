"""What each demo run is, independent of the disk: a pure function of (the run tables, now, seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "LIVE_KINDS",
    "LORA_HIST_EVERY",
    "LORA_HIST_TAG",
    "LoraParams",
    "RouterParams",
    "RunKind",
    "RunPlan",
    "Stream",
    "plan_runs",
]

# "diverging" and "finishing" are live when the demo starts and change while you watch: the first one's
# loss turns NaN within the first minute (then the job dies), the second reaches its last step and drops
# the DONE marker, so the hub's alert feed has news to show.
RunKind = Literal["finished", "old", "diverged", "stalled", "live", "diverging", "finishing"]
LIVE_KINDS: tuple[RunKind, ...] = ("live", "diverging", "finishing")

_DAY = 86400.0
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Stream:
    """One event file of a run: its folder relative to the run ("" = the run folder) and cadence."""

    subdir: str
    every: int


@dataclass(frozen=True, slots=True)
class LoraParams:
    rank: int
    lr: float
    loss_init: float
    loss_floor: float
    acc_init: float
    acc_max: float


@dataclass(frozen=True, slots=True)
class RouterParams:
    experts: int
    top_k: int
    loss_floor: float
    tokens_per_sec: float
    # Share of the initial expert imbalance that load balancing never removes (top-1 routing is worse).
    residual_imbalance: float


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything that determines a run's events; a pure function of (template, now, seed)."""

    index: int
    seed: int
    endpoint: str
    dataset: str
    run: str
    kind: RunKind
    steps_done: int
    total_steps: int
    sec_per_step: float
    end_time: float
    streams: tuple[Stream, ...]
    host: str
    params: LoraParams | RouterParams
    # Diverged runs only: loss starts to blow up at ``diverge_from`` and is NaN from ``nan_from`` on.
    diverge_from: int | None = None
    nan_from: int | None = None

    @property
    def last_live_step(self) -> int | None:
        """The step after which a live run's job ends (None: it trains for the whole demo).

        A finishing run logs up to its planned steps; a diverging one logs two steps of NaN, then dies.
        """
        if self.kind == "finishing":
            return self.total_steps
        if self.kind == "diverging" and self.nan_from is not None:
            return self.nan_from + 2 * self.log_every
        return None

    @property
    def start_time(self) -> float:
        return self.end_time - self.steps_done * self.sec_per_step

    @property
    def log_every(self) -> int:
        return min(s.every for s in self.streams)


@dataclass(frozen=True, slots=True)
class _Trainer:
    """What every run of one demo endpoint shares."""

    endpoint: str
    host: str
    sec_per_step: float
    streams: tuple[Stream, ...]


_LORA = _Trainer("lora", "gpu-node-07", 1.8, (Stream("train", 10), Stream("eval", 100)))
_ROUTER = _Trainer("router", "moe-node-02", 0.9, (Stream("", 10),))
LORA_HIST_EVERY = 50
LORA_HIST_TAG = "lora_A/weights"

# dataset: (loss_init, loss_floor, acc_init, acc_max): code is more predictable than open chat.
_LORA_DATASETS: dict[str, tuple[float, float, float, float]] = {
    "alpaca": (1.9, 1.05, 0.48, 0.64),
    "dolly": (2.1, 1.2, 0.45, 0.6),
    "code-instruct": (1.3, 0.62, 0.55, 0.74),
}

# (dataset, rank, lr, kind, days since the last write, steps written, steps planned)
_LORA_RUNS: tuple[tuple[str, int, str, RunKind, float, int, int], ...] = (
    ("alpaca", 8, "1e-4", "old", 34.0, 1200, 1200),
    ("alpaca", 16, "2e-4", "old", 27.5, 1500, 1500),
    ("alpaca", 16, "2e-4", "finished", 3.2, 1500, 1500),
    ("alpaca", 32, "2e-4", "live", 0.0, 600, 6000),
    ("dolly", 8, "3e-4", "old", 19.0, 800, 800),
    ("dolly", 16, "1e-3", "diverged", 2.4, 700, 1000),
    ("dolly", 16, "2e-4", "finished", 0.25, 800, 800),
    ("code-instruct", 64, "1e-4", "old", 12.0, 2000, 2000),
    ("code-instruct", 32, "2e-4", "stalled", 3 * _HOUR / _DAY, 900, 2000),
    ("dolly", 32, "6e-4", "diverging", 0.0, 300, 1000),
    # History for the trends and usage pages: older runs of each dataset, a few weeks back.
    ("code-instruct", 16, "2e-4", "old", 26.0, 1200, 1200),
    ("code-instruct", 32, "1e-4", "old", 19.5, 1500, 1500),
    ("dolly", 8, "2e-4", "old", 11.0, 800, 800),
)

# (dataset, experts, top_k, capacity factor, kind, days since the last write, steps written, planned)
_ROUTER_RUNS: tuple[tuple[str, int, int, str, RunKind, float, int, int], ...] = (
    ("moe-8x", 8, 2, "1.25", "old", 31.0, 2000, 2000),
    ("moe-8x", 8, 1, "1.0", "finished", 4.1, 1500, 1500),
    ("moe-8x", 8, 2, "1.5", "live", 0.0, 400, 20000),
    ("moe-4x", 4, 2, "1.25", "finished", 0.6, 1000, 1000),
    ("moe-4x", 4, 2, "1.5", "finishing", 0.0, 900, 1000),
    ("moe-4x", 4, 1, "1.0", "old", 24.0, 1000, 1000),
    ("moe-4x", 4, 2, "1.0", "old", 16.5, 1000, 1000),
)

# Live runs look like they were written a moment ago: one record interval before ``now``.
_LIVE_LAG = 3.0
# Older runs were slower (the input pipeline got faster over the weeks): seconds per step grow by this
# share per day of age, so the trends page has a throughput trend to show. Live runs (age 0) are exact.
_SLOWER_PER_DAY = 0.008


def _run_date(end_time: float, steps: int, sec_per_step: float) -> str:
    """The UTC start date that run names carry, as ML teams name runs."""
    return datetime.fromtimestamp(end_time - steps * sec_per_step, UTC).strftime("%Y%m%d")


def plan_runs(now: float, seed: int) -> list[RunPlan]:
    """Every demo run, LoRA runs first, each with its ``index`` in the list."""
    plans: list[RunPlan] = []

    def add(trainer: _Trainer, dataset: str, name: str, kind: RunKind, age_days: float, done: int, total: int,
            params: LoraParams | RouterParams, diverge: tuple[int | None, int | None] = (None, None)) -> None:
        end = now - max(age_days * _DAY, _LIVE_LAG)
        sec_per_step = trainer.sec_per_step * (1 + _SLOWER_PER_DAY * age_days)
        plans.append(
            RunPlan(
                index=len(plans),
                seed=seed,
                endpoint=trainer.endpoint,
                dataset=dataset,
                run=f"{name}-{_run_date(end, done, sec_per_step)}",
                kind=kind,
                steps_done=done,
                total_steps=total,
                sec_per_step=sec_per_step,
                end_time=end,
                streams=trainer.streams,
                host=trainer.host,
                params=params,
                diverge_from=diverge[0],
                nan_from=diverge[1],
            )
        )

    for dataset, rank, lr, kind, age_days, done, total in _LORA_RUNS:
        loss_init, loss_floor, acc_init, acc_max = _LORA_DATASETS[dataset]
        lora = LoraParams(
            rank=rank,
            lr=float(lr),
            # Higher rank fits a little better; the effect is small, as in practice.
            loss_init=loss_init,
            loss_floor=loss_floor - 0.02 * math.log2(rank / 8),
            acc_init=acc_init,
            acc_max=acc_max + 0.005 * math.log2(rank / 8),
        )
        # The blow-up builds over 16 logged points, then the last 5 logged losses are NaN. A diverging
        # run has started to climb when the demo starts; its loss is NaN 8 live steps later (~25 s).
        diverge: tuple[int | None, int | None] = (None, None)
        if kind == "diverged":
            diverge = (done - 200, done - 40)
        elif kind == "diverging":
            diverge = (done - 40, done + 80)
        add(_LORA, dataset, f"r{rank}-lr{lr}", kind, age_days, done, total, lora, diverge)
    for dataset, experts, top_k, capacity, kind, age_days, done, total in _ROUTER_RUNS:
        router = RouterParams(
            experts=experts,
            top_k=top_k,
            loss_floor=(2.6 if experts == 8 else 2.8) + (0.05 if top_k == 1 else 0.0),
            tokens_per_sec=(41000.0 if top_k == 2 else 52000.0) * (8 / experts) ** 0.3,
            residual_imbalance=0.25 if top_k == 1 else 0.05,
        )
        add(_ROUTER, dataset, f"top{top_k}-cap{capacity}", kind, age_days, done, total, router)
    keys = [(p.endpoint, p.dataset, p.run) for p in plans]
    assert len(set(keys)) == len(keys), "demo run names must be unique"
    return plans

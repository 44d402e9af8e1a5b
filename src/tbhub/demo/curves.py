"""The demo's training curves, in plain Python (``random`` and ``math``: the demo installs lean).

Each function takes the steps to log and a generator for the noise, so the initial write (all steps
at once) and a ``LiveWriter`` tick (one step) share the same model and the curves continue smoothly.
Every generator is seeded from a string (``noise``), which ``random`` hashes with SHA-512: the
values do not depend on ``PYTHONHASHSEED`` or the platform.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence

from tbhub.demo.plans import LoraParams, RouterParams, RunPlan, Stream

__all__ = ["HIST_BUCKETS", "lora_weights", "noise", "stream_scalars"]

# The histogram of a 4096-wide LoRA A matrix is summarised from a fixed sample: enough for smooth
# buckets, small enough that bucketing (a samples × buckets one-hot in histogram_pb) stays cheap.
_HIST_SAMPLE = 1024
HIST_BUCKETS = 30


def noise(plan: RunPlan, *keys: object) -> random.Random:
    """The generator of ``plan``'s run for ``keys`` (none: the whole initial write; a step: one tick)."""
    return random.Random(":".join(str(k) for k in ("tbhub.demo", plan.seed, plan.index, *keys)))


def _cosine_lr(s: int, peak: float, total: int) -> float:
    """Linear warmup over 5% of the planned steps, then cosine decay to 0 (clamped past the end)."""
    warmup = max(1, round(0.05 * total))
    if s < warmup:
        return peak * s / warmup
    progress = min(max((s - warmup) / max(1, total - warmup), 0.0), 1.0)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def _lora_tau(p: LoraParams) -> float:
    # Steps for the loss to fall by 1/e: larger learning rates converge faster.
    return 250.0 * math.sqrt(2e-4 / p.lr)


def _blowup(plan: RunPlan, s: int) -> tuple[float, bool]:
    """Multiplier on the loss (>= 1) at step ``s`` and whether it is NaN there; (1, False) unless diverging."""
    if plan.diverge_from is None or plan.nan_from is None:
        return 1.0, False
    over = max((s - plan.diverge_from) / (plan.nan_from - plan.diverge_from), 0.0)
    return math.exp(2.5 * over**2), s >= plan.nan_from


def _lora_train(plan: RunPlan, p: LoraParams, steps: Sequence[int], rng: random.Random) -> dict[str, list[float]]:
    tau = _lora_tau(p)
    loss, grad_norm = [], []
    for s in steps:
        clean = p.loss_floor + (p.loss_init - p.loss_floor) * math.exp(-s / tau)
        value = clean * math.exp(rng.gauss(0.0, 0.03))
        if rng.random() < 0.01:
            value += 0.25 * clean  # the odd hard batch
        norm = (0.3 + 1.6 * math.exp(-s / (0.5 * tau))) * math.exp(rng.gauss(0.0, 0.2))
        growth, nan = _blowup(plan, s)
        loss.append(math.nan if nan else value * growth)
        grad_norm.append(math.nan if nan else norm * growth**2)
    return {
        "train/loss": loss,
        "train/learning_rate": [_cosine_lr(s, p.lr, plan.total_steps) for s in steps],
        "train/grad_norm": grad_norm,
    }


def _lora_eval(plan: RunPlan, p: LoraParams, steps: Sequence[int], rng: random.Random) -> dict[str, list[float]]:
    tau = _lora_tau(p)
    loss, accuracy = [], []
    for s in steps:
        decay = math.exp(-s / tau)
        # The generalisation gap widens slowly as the adapter starts to memorise.
        gap = 0.04 + 0.03 * min(max(s / max(plan.total_steps, 1), 0.0), 1.0)
        value = p.loss_floor + (p.loss_init - p.loss_floor) * decay + gap + rng.gauss(0.0, 0.008)
        acc = p.acc_max - (p.acc_max - p.acc_init) * decay + rng.gauss(0.0, 0.004)
        growth, nan = _blowup(plan, s)
        loss.append(math.nan if nan else value * growth)
        # NaN logits argmax to token 0: near-zero, not NaN, accuracy.
        acc = 0.1 * p.acc_init if nan else acc / growth
        accuracy.append(min(max(acc, 0.0), 1.0))
    return {"eval/loss": loss, "eval/accuracy": accuracy}


@functools.lru_cache(maxsize=32)
def _lora_init(plan: RunPlan) -> tuple[float, ...]:
    """A run's lora_A sample at step 0 (Kaiming-uniform, fan-in 4096), from its own generator."""
    bound = 1.0 / math.sqrt(4096)
    rng = noise(plan, "lora_A")
    return tuple(rng.uniform(-bound, bound) for _ in range(_HIST_SAMPLE))


def lora_weights(plan: RunPlan, step: int, rng: random.Random) -> list[float]:
    """A sample of lora_A: its init plus a drift that grows as training moves it."""
    init = _lora_init(plan)
    assert isinstance(plan.params, LoraParams)
    spread = 0.012 * (1.0 - math.exp(-step / (2.0 * _lora_tau(plan.params))))
    return [w + rng.gauss(0.0, spread) for w in init] if spread > 0 else list(init)


def _router_scalars(
    plan: RunPlan, p: RouterParams, steps: Sequence[int], rng: random.Random
) -> dict[str, list[float]]:
    uniform = 1.0 / p.experts
    # The initial imbalance is fixed per run (drawn from its own generator) so live ticks agree:
    # a Dirichlet(2, ..., 2) draw, as normalised gamma variates.
    start_rng = noise(plan, "router_start")
    gammas = [start_rng.gammavariate(2.0, 1.0) for _ in range(p.experts)]
    start = [g / sum(gammas) for g in gammas]
    out: dict[str, list[float]] = {"loss": [], "aux_loss": [], "tokens_per_sec": []}
    loads: list[list[float]] = []
    for s in steps:
        loss = p.loss_floor + 8.1 * math.exp(-s / 90.0) + 0.9 * math.exp(-s / 900.0)
        out["loss"].append(loss * math.exp(rng.gauss(0.0, 0.012)))
        weight = math.exp(-s / 250.0)
        weight = weight + p.residual_imbalance * (1.0 - weight)
        load = [max(uniform + (x - uniform) * weight + rng.gauss(0.0, 0.004), 1e-4) for x in start]
        total = sum(load)
        load = [x / total for x in load]
        loads.append(load)
        # Switch-Transformer balancing loss, alpha * E * sum(f_i * P_i) with f ≈ P: 0.01 when uniform.
        aux = 0.01 * p.experts * sum(x * x for x in load) * math.exp(rng.gauss(0.0, 0.02))
        out["aux_loss"].append(aux)
        tps = p.tokens_per_sec * (1.0 - 0.5 * math.exp(-s / 15.0)) * (1.0 + rng.gauss(0.0, 0.015))
        if rng.random() < 0.02:
            tps *= 0.55  # checkpoint saves stall the input pipeline
        out["tokens_per_sec"].append(tps)
    for e in range(p.experts):
        out[f"expert_load/expert_{e}"] = [load[e] for load in loads]
    return out


def stream_scalars(
    plan: RunPlan, stream: Stream, steps: Sequence[int], rng: random.Random
) -> dict[str, list[float]]:
    """Tag → one value per step, for the event file of ``stream``."""
    p = plan.params
    if isinstance(p, RouterParams):
        return _router_scalars(plan, p, steps, rng)
    if stream.subdir == "eval":
        return _lora_eval(plan, p, steps, rng)
    return _lora_train(plan, p, steps, rng)

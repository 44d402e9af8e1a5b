"""What the common training frameworks leave in their logs, recognised with no configuration.

``recognise`` looks at a run's scalar tags, its text summaries and the framework files found in its
folder, and says which framework wrote it, what its **plan** is (steps or epochs), which tags mean
"finished" and which tags mean "diverged" when their last value is not finite. ``progress`` turns a
plan into a fraction done, a step rate and an ETA. docs/frameworks.md says, per framework, what is
read and what cannot be known.

* **Hugging Face Trainer** (``transformers``, ``report_to=["tensorboard"]``): the text summary
  ``args/text_summary`` holds the ``TrainingArguments`` as JSON. ``max_steps > 0`` plans in steps;
  otherwise ``num_train_epochs`` plans in epochs, counted by the scalar ``train/epoch`` (fractional:
  the Trainer logs ``epoch + step/steps_in_epoch``). A normal end logs ``train/train_runtime``,
  ``train/train_samples_per_second`` and ``train/total_flos``. With ``logging_nan_inf_filter`` (the
  default) a NaN training loss is logged as a running mean, so a divergence shows in
  ``train/grad_norm`` (and ``eval/loss``): its *last* value being NaN or Inf is a divergence (a
  single overflow, normal with fp16 loss scaling, is not).
* **PyTorch Lightning** (``TensorBoardLogger``): ``hparams.yaml`` in the run folder; when its top
  level holds ``max_epochs`` (or ``max_steps``) that is the plan. Lightning's ``epoch`` scalar is the
  0-based index of the epoch being trained, so it shows progress but never reaches ``max_epochs``.
* **Keras** (``TensorBoard`` callback): ``epoch_*`` tags in ``train/`` and ``validation/``, whose step
  is the 0-based index of the epoch that ended. The callback's other tags count optimizer steps
  (``evaluation_*_vs_iterations`` in ``validation/``, ``batch_*`` with ``update_freq`` a number), so a
  run's highest step is not its epochs: epochs done are the last step of ``epoch_loss`` + 1, paced by
  that tag's own wall times. No epoch count is written anywhere: a plan comes only from the
  configuration, whose ``max_steps`` counts epochs for a Keras run (``Recognition.configured_plan``).

Pure functions; the caller reads texts and files (``tbhub.app.status``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tbhub.core.models import EventFileScan, RunSummary
from tbhub.core.scalars import ScalarFileState, TagSummary

__all__ = [
    "FRAMEWORK_FILES",
    "HF_ARGS_TAG",
    "HF_FINAL_TAGS",
    "Plan",
    "Progress",
    "Recognition",
    "Span",
    "file_spans",
    "progress",
    "recognise",
    "step_rate",
]

HF_ARGS_TAG = "args/text_summary"
HF_FINAL_TAGS = ("train/train_runtime", "train/train_samples_per_second", "train/total_flos")
HF_EPOCH_TAG = "train/epoch"
HF_NONFINITE_TAGS = ("train/grad_norm",)
LIGHTNING_FILE = "hparams.yaml"
LIGHTNING_EPOCH_TAG = "epoch"
KERAS_EPOCH_TAG = "epoch_loss"
KERAS_PREFIX = "epoch_"

FRAMEWORK_FILES = (LIGHTNING_FILE,)
"""Files in a run folder that ``recognise`` reads (the caller passes the text of those that exist)."""

_HF_FACTS = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
             "learning_rate", "logging_steps", "eval_steps", "save_steps", "seed")


@dataclass(frozen=True, slots=True)
class Plan:
    """How long a run means to train: ``total`` steps or epochs (``unit``), read from ``source``."""

    unit: str  # "steps" | "epochs"
    total: float
    source: str

    def text(self) -> str:
        total = f"{self.total:,.0f}" if float(self.total).is_integer() else f"{self.total:,.2f}"
        return f"{total} {self.unit}"


@dataclass(frozen=True, slots=True)
class Recognition:
    """What a run's logs show of the framework that wrote them (nothing known: ``Recognition()``).

    ``facts``: JSON-able settings read with the plan (the Trainer's batch size, gradient accumulation
    ...). ``epoch_tag``: the scalar that counts epochs: epochs done as a fraction (the Trainer's), or
    with ``epoch_indexed`` the index of the epoch being trained (Lightning's). ``step_offset``: what
    to add to the last logged step to get the steps done (Lightning logs step ``global_step - 1``).
    ``epoch_stepped``: the epoch tag's *step* is the 0-based index of the epoch it closes (Keras'
    ``epoch_*``): progress counts epochs from it, and a configured ``max_steps`` counts epochs."""

    framework: str | None = None
    plan: Plan | None = None
    final_tags: tuple[str, ...] = ()
    nonfinite_tags: tuple[str, ...] = ()
    epoch_tag: str | None = None
    epoch_indexed: bool = False
    step_offset: int = 0
    facts: Mapping[str, Any] = field(default_factory=dict)
    epoch_stepped: bool = False

    def configured_plan(self, max_steps: int) -> Plan:
        """The plan of a configured ``max_steps``: epochs for a framework whose steps are epochs."""
        return Plan("epochs" if self.epoch_stepped else "steps", max_steps, "config")


def _find(tags: Mapping[str, Any], name: str) -> str | None:
    """The key of ``name`` among a run's tags: itself, or ``{subdir}/{name}`` (a file in a sub-folder)."""
    if name in tags:
        return name
    return next((t for t in sorted(tags) if t.endswith("/" + name)), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _transformers(tags: Mapping[str, TagSummary], texts: Mapping[str, str]) -> Recognition | None:
    key = _find(texts, HF_ARGS_TAG)
    args: dict[str, Any] = {}
    if key is not None:
        try:
            loaded = json.loads(texts[key])
        except ValueError:
            loaded = None
        if isinstance(loaded, dict) and ("max_steps" in loaded or "num_train_epochs" in loaded):
            args = loaded
    finals = tuple(t for t in (_find(tags, f) for f in HF_FINAL_TAGS) if t is not None)
    if not args and not finals:
        return None
    plan = None
    max_steps = _number(args.get("max_steps"))
    epochs = _number(args.get("num_train_epochs"))
    if max_steps is not None and max_steps > 0:
        plan = Plan("steps", max_steps, HF_ARGS_TAG)
    elif epochs is not None and epochs > 0:
        plan = Plan("epochs", epochs, HF_ARGS_TAG)
    final_keys = tuple(_find(tags, f) or f for f in HF_FINAL_TAGS)
    nonfinite = tuple(_find(tags, f) or f for f in HF_NONFINITE_TAGS)
    return Recognition("transformers", plan, final_keys, nonfinite, _find(tags, HF_EPOCH_TAG) or HF_EPOCH_TAG,
                       facts={k: args[k] for k in _HF_FACTS if k in args})


def _yaml_top_level(text: str) -> dict[str, str]:
    """``key: value`` pairs at the top level of a YAML document (nested blocks and lists skipped):
    enough for the numbers tbhub reads, without a YAML library in the core."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " \t#-" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        value = value.split(" #")[0].strip()
        if value:
            out[key.strip().strip("'\"")] = value.strip("'\"")
    return out


def _lightning(tags: Mapping[str, TagSummary], files: Mapping[str, str]) -> Recognition | None:
    text = files.get(LIGHTNING_FILE)
    if text is None:
        return None
    top = _yaml_top_level(text)
    plan = None
    for key, unit in (("max_steps", "steps"), ("max_epochs", "epochs")):
        try:
            value = float(top.get(key, ""))
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            plan = Plan(unit, value, LIGHTNING_FILE)
            break
    facts: dict[str, Any] = {k: top[k] for k in ("max_epochs", "max_steps") if k in top}
    return Recognition("lightning", plan, (), (), _find(tags, LIGHTNING_EPOCH_TAG) or LIGHTNING_EPOCH_TAG,
                       epoch_indexed=True, step_offset=1, facts=facts)


def recognise(tags: Mapping[str, TagSummary], texts: Mapping[str, str] | None = None,
              files: Mapping[str, str] | None = None) -> Recognition:
    """The framework behind a run, from its tags (as ``merge_tags`` keys them), its texts (as
    ``run_texts`` keys them) and the text of each ``FRAMEWORK_FILES`` file its folder holds."""
    found = _transformers(tags, texts or {}) or _lightning(tags, files or {})
    if found is not None:
        return found
    epochs = sorted(t for t in tags if t.rpartition("/")[2].startswith(KERAS_PREFIX))
    if epochs:  # train/epoch_loss before validation/epoch_loss; any epoch_* tag without a loss
        return Recognition("keras", epoch_tag=_find(tags, KERAS_EPOCH_TAG) or epochs[0], epoch_stepped=True)
    return Recognition()


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run is along its plan.

    ``done`` is in the plan's unit (steps, or epochs done); ``fraction`` is ``done / total`` capped at
    1; ``reached`` once the plan is. ``steps_per_s`` is the step rate of the run's current event file
    (``step_rate``); ``eta`` the wall time at which the plan should be reached at that rate (``None``
    when reached or unknown); ``total_steps`` the plan in steps (for an epoch plan: estimated from the
    steps the epochs done took). For Keras (``Recognition.epoch_stepped``) the steps are epochs."""

    plan: Plan
    done: float
    fraction: float
    reached: bool
    steps_per_s: float | None = None
    total_steps: float | None = None
    eta: float | None = None


Span = tuple[int, float, int, float]
"""What one event file shows of a run's pace: its first step and that step's wall time, its highest
step and its last wall time."""


def file_spans(states: Iterable[ScalarFileState], recognition: Recognition | None = None) -> list[Span]:
    """The span of each event file from its scalars (the steps training logged: a text or a file's
    first record at step 0 before training resumes from a checkpoint does not count). For a run whose
    epoch tag's steps are epochs (``Recognition.epoch_stepped``), from that tag alone: the span in epochs."""
    only = None
    if recognition is not None and recognition.epoch_stepped and recognition.epoch_tag:
        only = recognition.epoch_tag.rpartition("/")[2]
    spans = []
    for state in states:
        tags = [t for name, t in state.tags.items() if name == only] if only else list(state.tags.values())
        if tags:
            first = min(tags, key=lambda t: t.first_wall_time)
            spans.append((first.first_step, first.first_wall_time, max(t.last_step for t in tags),
                          max(t.last_wall_time for t in tags)))
    return spans


def _scan_spans(files: Sequence[EventFileScan]) -> list[Span]:
    return [(f.first_step, f.first_wall_time, f.last_step, f.last_wall_time) for f in files
            if f.first_step is not None and f.first_wall_time is not None and f.last_step is not None
            and f.last_wall_time is not None]


def step_rate(spans: Sequence[Span]) -> float | None:
    """Steps per second of the event file written last (a resumed job's new file: its current pace),
    from its first to its highest step over their wall times; ``None`` without two steps.

    A job resumed from a checkpoint goes on in a new file: its steps are counted from the highest step
    of the files that ended before it began (files written side by side, ``train/`` and ``eval/``, do
    not count), in case its first step is below that."""
    timed = sorted(spans, key=lambda s: s[3])
    for i in range(len(timed) - 1, -1, -1):
        first_step, first_wall, last_step, last_wall = timed[i]
        begin = max([first_step, *(g[2] for g in timed[:i] if g[3] <= first_wall)])
        steps, seconds = last_step - begin, last_wall - first_wall
        if steps > 0 and seconds > 0:
            return steps / seconds
    return None


_EPSILON = 1e-6


def progress(run: RunSummary, tags: Mapping[str, TagSummary], recognition: Recognition,
             plan: Plan | None, spans: Sequence[Span] | None = None) -> Progress | None:
    """Where ``run`` stands against ``plan`` (the configured one, else ``recognition.plan``); ``None``
    without a plan, or for an epoch plan before any epoch is logged. ``spans``: its files' spans
    (``file_spans``) for the step rate; by default the scanner's first and last records of each file."""
    if plan is None:
        return None
    if recognition.epoch_stepped:
        return _stepped_epochs(tags.get(recognition.epoch_tag or ""), plan, spans)
    last_step = (run.last_step or 0) + recognition.step_offset
    rate = step_rate(_scan_spans(run.files) if spans is None else spans)
    epoch = tags.get(recognition.epoch_tag) if recognition.epoch_tag else None
    if plan.unit == "steps":
        done = float(last_step)
        total_steps: float | None = plan.total
    elif epoch is None or epoch.max_value is None:
        return None
    elif recognition.epoch_indexed:
        done, total_steps = _indexed_epochs(epoch, last_step, plan.total)
    else:
        done = epoch.max_value
        # Steps per epoch so far, times the epochs planned (the Trainer's last partial epoch aside).
        total_steps = last_step * plan.total / done if done > 0 and last_step > 0 else None
    reached = done >= plan.total - _EPSILON
    fraction = min(1.0, max(0.0, done / plan.total))
    eta = None
    if not reached and rate and total_steps is not None and run.last_wall_time is not None:
        eta = run.last_wall_time + max(0.0, total_steps - last_step) / rate
    return Progress(plan, done, fraction, reached, rate, total_steps, eta)


def _stepped_epochs(epoch: TagSummary | None, plan: Plan, spans: Sequence[Span] | None) -> Progress | None:
    """Progress of a run whose epoch tag's step is the index of the epoch that ended (Keras): epochs
    done are its last step + 1. The pace is that tag's own, not the optimizer steps other tags count:
    from ``spans`` (``file_spans`` with the recognition: a resumed job's new file alone), else over
    the whole tag; from its first point (the end of the first epoch) on."""
    if epoch is None:
        return None
    done = float(epoch.last_step + 1)
    if spans is None:
        spans = [(epoch.first_step, epoch.first_wall_time, epoch.last_step, epoch.last_wall_time)]
    rate = step_rate(spans)
    reached = done >= plan.total - _EPSILON
    eta = epoch.last_wall_time + (plan.total - done) / rate if rate and not reached else None
    return Progress(plan, done, min(1.0, done / plan.total), reached, rate, plan.total, eta)


def _indexed_epochs(epoch: TagSummary, steps_done: int, planned: float) -> tuple[float, float | None]:
    """Epochs done and the plan in steps from an epoch *index* (Lightning's ``epoch``, 0-based).

    The step at which the index first took its highest value is where the current epoch began, so
    steps per epoch = that step / that index (known from the second epoch on). The logged steps lag
    the real ones by up to one logging interval (``log_every_n_steps``), estimated from the tag's
    spacing: a run whose last logged step is within one interval of the planned total reached it."""
    top, began = epoch.max_value, epoch.max_step
    if top is None or top < 1 or not began:
        return 0.0, None
    per_epoch = began / top
    interval = (epoch.last_step - epoch.first_step) / (epoch.count - 1) if epoch.count > 1 else 1.0
    done = min(planned, (steps_done + max(1.0, interval) - 1) / per_epoch)
    return done, per_epoch * planned

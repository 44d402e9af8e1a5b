"""Train tiny runs with the real Hugging Face Trainer (LoRA via peft) and its TensorBoard callback.

Run as a script, once per test session (importing torch and transformers takes seconds):

    python tests/hf_training.py ROOT SPEC [SPEC ...]

Each SPEC is ``name:key=value,key=value`` and trains one run into ``ROOT/name`` (the Trainer's log dir
comes from ``$TENSORBOARD_LOGGING_DIR``, as in transformers 5). Keys:

* ``steps`` (max_steps; 0 to plan in epochs with ``epochs``), ``epochs``, ``samples`` (dataset size);
* ``sleep``: seconds slept after each optimizer step (a deterministic step rate);
* ``pause_at``/``pause``: sleep ``pause`` seconds once after step ``pause_at`` (a stall that resumes);
* ``kill_at``: SIGKILL this process after step ``kill_at`` (a crash: no final tags, an unclosed file);
* ``nan_at``: fill the LoRA weights with NaN after step ``nan_at`` (a divergence);
* ``eval``: evaluate every this many steps;
* ``save``: save a checkpoint every this many steps; ``resume``: continue from the last checkpoint of a
  run of the same name (a job requeued after a crash: a new event file in the same folder).

With ``$HF_TEST_GO_FILE`` set, training starts once that file exists (after the imports, which take
seconds). A model of two layers and 16 dims, randomly initialised: nothing is downloaded. Each step is logged
(``logging_steps=1``). Specs run in order; a ``kill_at`` spec must be the last.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

VOCAB = 64
SEQ = 16


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Synthetic token sequences, built directly as tensors (no tokenizer)."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i], "attention_mask": torch.ones(SEQ, dtype=torch.long)}


class Script(TrainerCallback):  # type: ignore[misc]
    def __init__(self, spec: dict[str, float], model: Any) -> None:
        self.spec = spec
        self.model = model

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        spec, step = self.spec, state.global_step
        if spec.get("sleep"):
            time.sleep(spec["sleep"])
        if step == spec.get("nan_at"):
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    if "lora_" in name:
                        p.fill_(float("nan"))

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        # After the TensorBoard callback has written (and flushed) this step's logs.
        spec, step = self.spec, state.global_step
        if step == spec.get("pause_at") and "loss" in (logs or {}):
            time.sleep(spec["pause"])
        if step == spec.get("kill_at") and "loss" in (logs or {}):
            os.kill(os.getpid(), signal.SIGKILL)


def train(root: Path, name: str, spec: dict[str, float]) -> None:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=SEQ)
    model = get_peft_model(LlamaForCausalLM(config),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(root / name)
    steps = int(spec.get("steps", 20))
    evaluate = int(spec.get("eval", 0))
    args = TrainingArguments(
        output_dir=str(root.parent / f".out-{name}"),
        max_steps=steps if steps > 0 else -1,
        num_train_epochs=spec.get("epochs", 1),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=spec.get("lr", 1e-3),
        logging_steps=1,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=evaluate or None,
        save_strategy="steps" if spec.get("save") else "no",
        save_steps=int(spec.get("save", 0)) or 500,
        report_to=["tensorboard"],
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Tokens(int(spec.get("samples", 32)), 1),
        eval_dataset=Tokens(8, 2) if evaluate else None,
    )
    trainer.add_callback(Script(spec, model))
    trainer.train(resume_from_checkpoint=True if spec.get("resume") else None)


def parse(text: str) -> tuple[str, dict[str, float]]:
    name, _, rest = text.partition(":")
    spec = {k: float(v) for k, v in (item.split("=") for item in rest.split(",") if item)}
    return name, spec


if __name__ == "__main__":
    torch.set_num_threads(1)
    go = os.environ.get("HF_TEST_GO_FILE")
    while go and not os.path.exists(go):  # imports done: train when the test says so
        time.sleep(0.02)
    out = Path(sys.argv[1])
    for arg in sys.argv[2:]:
        run_name, run_spec = parse(arg)
        train(out, run_name, run_spec)
        print(f"trained {run_name}", flush=True)

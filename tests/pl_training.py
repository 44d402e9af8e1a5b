"""Train tiny runs with PyTorch Lightning and its TensorBoardLogger, for the tests (issue 18).

    python tests/pl_training.py ROOT SPEC [SPEC ...]

Each SPEC is ``name:key=value,...`` and trains one run into ``ROOT/lightning/name`` (the logger's
``save_dir=ROOT, name="lightning", version=name``), with ``max_epochs`` saved as a hyperparameter (so
it is in ``hparams.yaml``). Keys: ``epochs`` (max_epochs), ``log_every`` (log_every_n_steps),
``kill_at`` (SIGKILL this process once that global step is done, after the logger flushed: a crash;
must be the last spec). 32 samples in batches of 4: 8 steps an epoch.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger


class Tiny(L.LightningModule):
    def __init__(self, max_epochs: int, lr: float = 0.01) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Kill(Callback):  # type: ignore[misc]
    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step >= self.at:
            trainer.logger.experiment.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def train(root: str, name: str, spec: dict[str, float]) -> None:
    torch.manual_seed(0)
    epochs = int(spec.get("epochs", 3))
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=TensorBoardLogger(save_dir=root, name="lightning", version=name),
        log_every_n_steps=int(spec.get("log_every", 1)),
        callbacks=[Kill(int(spec["kill_at"]))] if "kill_at" in spec else [],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Tiny(max_epochs=epochs), torch.utils.data.DataLoader(data, batch_size=4))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arg in sys.argv[2:]:
        run_name, _, rest = arg.partition(":")
        train(sys.argv[1], run_name, {k: float(v) for k, v in (i.split("=") for i in rest.split(",") if i)})

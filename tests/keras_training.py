"""Train tiny Keras runs with its TensorBoard callback, for the tests (issue 18).

    python tests/keras_training.py ROOT SPEC [SPEC ...]

Each SPEC is ``relpath:key=value,...`` and trains one run into ``ROOT/relpath`` (the callback's
``log_dir``: it writes ``train/`` and ``validation/`` below). 48 samples, a quarter held out for
validation, batches of 12: 3 steps an epoch. Keys: ``epochs``; ``lr`` (SGD's learning rate: 1e6
diverges); ``update_freq`` (the callback's: batch_* scalars every that many steps; default
``epoch``); ``sleep`` (seconds slept at the start of every epoch: a steady pace); ``pause_at`` and
``pause`` (after that epoch index, sleep that long once); ``kill_at`` (SIGKILL this process after that
epoch index, with no chance to close its files: a crash; must be the last spec); ``initial`` (fit's
``initial_epoch``: a job requeued after a crash goes on from that epoch into the same folder, new
files beside the old; its weights start afresh, only the logs matter here). The callback's
writers reach the disk as each epoch ends, no flush needed.

With ``$KERAS_TEST_GO_FILE`` set, training waits until that file exists (imports done beforehand).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np


class Pace(keras.callbacks.Callback):  # type: ignore[misc]
    """Sleeps and kills as the spec says; listed after the TensorBoard callback."""

    def __init__(self, spec: dict[str, float]) -> None:
        super().__init__()
        self.spec = spec

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        time.sleep(self.spec.get("sleep", 0.0))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == self.spec.get("kill_at"):
            os.kill(os.getpid(), signal.SIGKILL)
        if epoch == self.spec.get("pause_at"):
            time.sleep(self.spec.get("pause", 0.0))


def train(root: str, relpath: str, spec: dict[str, float]) -> None:
    keras.utils.set_random_seed(0)
    x = np.random.randn(48, 4).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(spec.get("lr", 0.01)), loss="mse")
    freq = int(spec["update_freq"]) if "update_freq" in spec else "epoch"
    board = keras.callbacks.TensorBoard(log_dir=str(Path(root) / relpath), update_freq=freq)
    model.fit(x, y, batch_size=12, epochs=int(spec.get("epochs", 3)), validation_split=0.25, verbose=0,
              callbacks=[board, Pace(spec)], initial_epoch=int(spec.get("initial", 0)))


if __name__ == "__main__":
    go = os.environ.get("KERAS_TEST_GO_FILE")
    while go and not os.path.exists(go):
        time.sleep(0.05)
    for arg in sys.argv[2:]:
        name, _, rest = arg.partition(":")
        train(sys.argv[1], name, {k: float(v) for k, v in (i.split("=") for i in rest.split(",") if i)})

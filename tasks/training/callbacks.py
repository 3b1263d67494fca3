"""Keras callbacks: progress with rate and ETA, and the reference's relative early stopping.

The logic lives in plain mixins, so that a Keras 2 (tf_keras) trainer makes the same callbacks
from its own `Callback` base: `class ThroughputLogger(ThroughputLog, tf_keras.callbacks.Callback)`.
"""

from __future__ import annotations

import time

import keras

from tasks.progress import Progress


class ThroughputLog:
    """Prints progress (batches/s, ETA) during each epoch; adds `images_per_second` to logs:
    the training steps' own rate, from the first step's start to the last step's end, as the
    reference's speedometer measures it (the epoch's validation and checkpoints are not
    training images)."""

    def __init__(
        self, *, steps_per_epoch: int, batch_size: int, epochs: int, interval: float = 10.0
    ):
        super().__init__()
        self.steps_per_epoch, self.batch_size = steps_per_epoch, batch_size
        self.epochs, self.interval = epochs, interval

    def get_config(self) -> dict:
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "interval": self.interval,
        }

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._progress = Progress(
            self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="batches",
            interval=self.interval,
        )
        self._start = self._end = None
        self._seen = 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._start is None:
            self._start = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._progress.update()
        self._seen += self.batch_size
        self._end = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        elapsed = self._end - self._start if self._end is not None else 0.0
        images_per_second = self._seen / elapsed if elapsed > 0 else 0.0
        if logs is not None:
            logs["images_per_second"] = images_per_second
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
        print(f"epoch {epoch + 1}/{self.epochs}: {shown}", flush=True)


class RelativeEarlyStop:
    """Stops when `monitor` (higher is better: validation accuracy, mIoU) improves by less than
    `tolerance` (relative) for `patience` epochs, never before `min_epochs`, as the reference
    algorithms do."""

    def __init__(self, *, monitor: str, min_epochs: int, patience: int, tolerance: float):
        super().__init__()
        self.monitor, self.min_epochs = monitor, min_epochs
        self.patience, self.tolerance = patience, tolerance

    def get_config(self) -> dict:
        return {
            "monitor": self.monitor,
            "min_epochs": self.min_epochs,
            "patience": self.patience,
            "tolerance": self.tolerance,
        }

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.best: float | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        improved = self.best is None or value > self.best * (1 + self.tolerance)
        if improved:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if epoch + 1 >= self.min_epochs and self.wait >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True
            print(
                f"early stopping after epoch {epoch + 1}: {self.monitor} did not improve by "
                f"{self.tolerance:.2%} for {self.patience} epochs (best {self.best:.4f})",
                flush=True,
            )


class ThroughputLogger(ThroughputLog, keras.callbacks.Callback):
    """ThroughputLog as a Keras 3 callback."""


class RelativeEarlyStopping(RelativeEarlyStop, keras.callbacks.Callback):
    """RelativeEarlyStop as a Keras 3 callback."""

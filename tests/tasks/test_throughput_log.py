"""The throughput a training log reports is the steps' own rate, as the reference measures it."""

from __future__ import annotations

from tasks.training import callbacks
from tasks.training.callbacks import ThroughputLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_images_per_second_counts_training_steps_only(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(callbacks.time, "monotonic", clock)
    log = ThroughputLog(steps_per_epoch=4, batch_size=8, epochs=1, interval=3600)
    log.on_epoch_begin(0)
    clock.now += 5.0  # the epoch's setup (its data iterator made), before the first step
    for _ in range(4):
        log.on_train_batch_begin(0)
        clock.now += 0.5
        log.on_train_batch_end(0)
    clock.now += 30.0  # validation and checkpoints at the epoch's end
    logs: dict = {}
    log.on_epoch_end(0, logs)
    assert logs["images_per_second"] == 32 / 2.0


def test_an_epoch_without_steps_reports_zero() -> None:
    log = ThroughputLog(steps_per_epoch=0, batch_size=8, epochs=1, interval=3600)
    log.on_epoch_begin(0)
    logs: dict = {}
    log.on_epoch_end(0, logs)
    assert logs["images_per_second"] == 0.0

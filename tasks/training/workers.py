"""Training on several workers, for any Keras model (Keras 3, or tf_keras for Keras 2): each
worker's share of the data, the same number of steps everywhere, the chief's state at the start,
averaged batch-norm statistics and a fingerprint of the weights at the end."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from tasks.training import cluster
from tasks.training.cluster import Workers
from tasks.training.strategy import averaged, from_chief

log = logging.getLogger("vision_pipelines")


def steps_per_epoch(samples: int, batch_size: int) -> int:
    """Optimizer steps in one pass over `samples` items, `batch_size` per worker on each step."""
    return math.ceil(samples / (batch_size * cluster.current().count))


class InStep:
    """Callback logic that keeps the workers' networks identical: all start from the chief's
    weights and optimizer state (which the chief may just have restored from its checkpoint;
    the others keep none), and the state gradients do not reach (batch-norm moving statistics,
    computed on each worker's own batches) is averaged before each validation and at the end.
    Mixed into each Keras generation's Callback: `class C(InStep, keras.callbacks.Callback)`."""

    def __init__(self, strategy: tf.distribute.Strategy):
        super().__init__()
        self.strategy = strategy

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._assign([*self.model.weights, *self.model.optimizer.variables], from_chief)

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._assign(self.model.non_trainable_weights, averaged)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._assign(self.model.non_trainable_weights, averaged)

    def _assign(self, variables: list, reduce: Callable) -> None:
        if not variables:
            return
        values = reduce(self.strategy, [tf.convert_to_tensor(v) for v in variables])
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)


@dataclass
class Fitting:
    """What model.fit gets on these workers."""

    train_data: Any
    validation_data: Any
    initial_epoch: int
    steps_per_epoch: int | None
    """Set on several workers (their data repeats)."""


def prepare(
    strategy: tf.distribute.Strategy,
    workers: Workers,
    model: Any,
    *,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    resumed: int,
    steps: int,
    part: range,
    batch_size: int,
) -> Fitting:
    """One machine: the data as it is. Several: the optimizer's state made on every worker
    (creating variables is a collective), the chief's resume point, this worker's share
    repeated so that every worker takes `steps` steps (each one is an all-reduce; a share one
    item short of the others' wraps around), and the whole validation set on each (the same
    numbers everywhere, for early stopping)."""
    if workers.count == 1:
        # Keras 3 makes the optimizer's, the loss's and the metrics' variables before tracing
        # only under a distribution strategy; on the default one it makes them inside the first
        # traced step, and TensorFlow then traces that step a second time (ResNet-50 with Adam
        # on 2 CPU cores: 34 s to the end of the first epoch, 17 s with the state made first).
        # tf_keras models (TF Hub's) are not Keras 3 models and have no such step.
        if isinstance(model, keras.Model):
            model._symbolic_build(data_batch=train_data.element_spec)
        return Fitting(train_data, validation_data, resumed, None)
    log.info(
        "worker %d of %d: training on items %d..%d, global batch %d",
        workers.index,
        workers.count,
        part.start,
        part.stop - 1,
        batch_size * workers.count,
    )
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    (resumed_by_chief,) = from_chief(strategy, [tf.constant(resumed, tf.int64)])
    shard = train_data.repeat()
    return Fitting(
        strategy.distribute_datasets_from_function(lambda _: shard),
        strategy.distribute_datasets_from_function(lambda _: validation_data),
        int(resumed_by_chief),
        steps,
    )


def log_fingerprint(workers: Workers, weights: list) -> None:
    """The same fingerprint on every worker shows they ended in step."""
    if workers.count > 1:
        digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()[:16]
        log.info("worker %d: weights fingerprint %s", workers.index, digest)

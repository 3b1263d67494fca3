"""The one training skeleton every Keras 3 algorithm plugs into: strategy, precision, callbacks
(progress, relative early stopping, checkpoints and resume), fitting, and the outputs (model.tar.gz
with its manifest, metrics.json, learning curves). An algorithm supplies a `TrainingPlan`: its
data, network, loss, metrics and how to serve the result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tasks.artifact import ModelManifest
from tasks.contract import MLRoot
from tasks.training import cluster
from tasks.training.callbacks import RelativeEarlyStopping, ThroughputLogger
from tasks.training.checkpoints import BestWeightsCallback, Checkpoints, kept_numbers
from tasks.training.outputs import frameworks, now, write_keras_outputs
from tasks.training.strategy import distribution_strategy, has_gpu, set_precision
from tasks.training.workers import InStep, log_fingerprint, prepare, steps_per_epoch

log = logging.getLogger("vision_pipelines")


@dataclass(frozen=True)
class EarlyStopping:
    """The reference's relative early stopping (early_stopping_* hyperparameters)."""

    min_epochs: int
    patience: int
    tolerance: float


def early_stopping_of(hp: Any) -> EarlyStopping | None:
    """The early_stopping_* hyperparameters (tasks.hyperparameters.early_stopping_params)."""
    if not hp.early_stopping:
        return None
    return EarlyStopping(
        hp.early_stopping_min_epochs, hp.early_stopping_patience, hp.early_stopping_tolerance
    )


@dataclass(frozen=True)
class Compiled:
    """What the network is compiled with (built inside the distribution strategy's scope)."""

    optimizer: Any
    loss: Any
    metrics: Sequence[Any]


@dataclass
class TrainingPlan:
    """What an algorithm hands the skeleton."""

    architecture: Mapping[str, Any]
    """The network-defining hyperparameters: a checkpoint of another network is not resumed."""
    build_model: Callable[[], keras.Model]
    """The network to train (initial weights included), called in the strategy's scope."""
    compile: Callable[[], Compiled]
    """Optimizer, loss and metrics, called in the strategy's scope after build_model."""
    train_data: Callable[[range], tf.data.Dataset]
    """The training data of these items (indices into the training set), shuffled and batched
    by `batch_size`: all of them on one machine, each worker's own share on several."""
    train_samples: int
    validation_data: tf.data.Dataset
    """Evaluated whole by every worker (the same numbers on all, for early stopping)."""
    batch_size: int
    """Per machine (the reference's mini_batch_size): the global batch is batch_size x workers."""
    epochs: int
    monitor: str = "accuracy"
    """The validation metric early stopping watches (higher is better)."""
    early_stopping: EarlyStopping | None = None
    restore_best_weights: bool = False
    """End on the epoch with the best validation `monitor` instead of the last one."""
    precision: str = "float32"
    """float16: mixed precision where there is a GPU."""
    checkpoint_every: int = 1
    callbacks: Sequence[keras.callbacks.Callback] = field(default_factory=list)
    """The algorithm's own callbacks (per-class metrics, ...)."""
    fresh_start: Callable[[], None] = lambda: None
    """Called when nothing is resumed (to drop what an earlier attempt logged)."""


@dataclass
class Trained:
    model: keras.Model
    epochs: list[dict]
    """Per-epoch metrics (checkpoints.history, across restarts)."""
    seconds: float
    resumed_after_epoch: int
    kept_epoch: int | None = None
    """The epoch whose weights the model holds (restore_best_weights), None: the last."""

    @property
    def final(self) -> dict:
        """The numbers of the epoch whose weights the model holds."""
        return kept_numbers(self.epochs, self.kept_epoch)


class _InStep(InStep, keras.callbacks.Callback):
    pass


def fit(ml: MLRoot, plan: TrainingPlan) -> Trained:
    """Build, compile and fit the plan's network, resuming an interrupted attempt; on several
    workers (TF_CONFIG), synchronously, each on its share of the training data."""
    workers = cluster.current()
    set_precision(plan.precision)
    strategy = distribution_strategy(workers)
    with strategy.scope():
        model = plan.build_model()
        compiled = plan.compile()
        model.compile(
            optimizer=compiled.optimizer,
            loss=compiled.loss,
            metrics=list(compiled.metrics),
            jit_compile=has_gpu(),
        )
    batches_per_epoch = steps_per_epoch(plan.train_samples, plan.batch_size)
    checkpoints = Checkpoints(ml.checkpoints_dir, keep=ml.checkpoints_kept)
    part = workers.part(plan.train_samples)
    fitting = prepare(
        strategy,
        workers,
        model,
        train_data=plan.train_data(part),
        validation_data=plan.validation_data,
        resumed=checkpoints.resume_point(plan.architecture),
        steps=batches_per_epoch,
        part=part,
        batch_size=plan.batch_size,
    )
    resumed = fitting.initial_epoch
    if not resumed:
        plan.fresh_start()
    callbacks: list[keras.callbacks.Callback] = [
        ThroughputLogger(
            steps_per_epoch=batches_per_epoch,
            batch_size=plan.batch_size * workers.count,
            epochs=plan.epochs,
        ),
        *plan.callbacks,
        *checkpoints.callbacks(
            batches_per_epoch=batches_per_epoch, every_epochs=plan.checkpoint_every
        ),
        *([_InStep(strategy)] if workers.count > 1 else []),
    ]
    if plan.early_stopping is not None:
        stop = plan.early_stopping
        callbacks.append(
            RelativeEarlyStopping(
                monitor=f"val_{plan.monitor}",
                min_epochs=stop.min_epochs,
                patience=stop.patience,
                tolerance=stop.tolerance,
            )
        )
    best = BestWeightsCallback(monitor=f"val_{plan.monitor}", folder=ml.checkpoints_dir)
    if plan.restore_best_weights:
        callbacks.append(best)  # last: it sets the weights after the workers' averaging
    started = time.monotonic()
    model.fit(
        fitting.train_data,
        validation_data=fitting.validation_data,
        epochs=plan.epochs,
        initial_epoch=resumed,
        steps_per_epoch=fitting.steps_per_epoch,
        callbacks=callbacks,
        verbose=0,
        shuffle=False,  # the tf.data pipeline shuffles
    )
    log_fingerprint(workers, model.get_weights())
    kept = best.kept["epoch"] if plan.restore_best_weights and best.kept else None
    return Trained(
        model, checkpoints.history(), round(time.monotonic() - started, 1), resumed, kept
    )


def save(
    ml: MLRoot,
    trained: Trained,
    manifest: ModelManifest,
    result: dict,
    export: Callable[[keras.Model, Path], None],
    *,
    curve_metric: str = "accuracy",
) -> dict:
    """model.tar.gz (the Keras model and the serving SavedModel `export` writes), metrics.json
    (`result` with the epochs, timing and resume point) and the learning curves; returns the
    metrics."""
    metrics = {
        "algorithm": manifest.algorithm,
        **result,
        "final": trained.final,
        "kept_epoch": trained.kept_epoch or trained.epochs[-1]["epoch"],
        "epochs": trained.epochs,
        "training_seconds": trained.seconds,
        "resumed_after_epoch": trained.resumed_after_epoch,
    }
    write_keras_outputs(ml, trained.model, manifest, metrics, export, curve_metric=curve_metric)
    return metrics


def manifest_of(
    algorithm: str,
    *,
    trained: Trained,
    architecture: Mapping[str, Any],
    hyperparameters: Mapping[str, str],
    class_names: list[str],
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    multi_label: bool = False,
) -> ModelManifest:
    """The model's manifest, with this environment's frameworks and the final metrics."""
    return ModelManifest(
        algorithm=algorithm,
        architecture=dict(architecture),
        multi_label=multi_label,
        hyperparameters=dict(hyperparameters),
        class_names=class_names,
        input=dict(input),
        output=dict(output),
        frameworks=frameworks(),
        metrics=trained.final,
        created=now(),
    )

"""Fine-tune a pre-trained TF Hub model on the container contract's class-folder channels."""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from tasks.algorithms.image_classification_tf.data import (
    augmentation,
    batches,
    common_size,
    image_dataset,
)
from tasks.algorithms.image_classification_tf.hub.mirror import fetch_module, stage_user_module
from tasks.algorithms.image_classification_tf.hub.trust import (
    GRANT_HYPERPARAMETER,
    TrustedModule,
    from_trusted_source,
    trust_for_archive,
)
from tasks.algorithms.image_classification_tf.hyperparameters import (
    ALGORITHM,
    TransferHyperparameters,
)
from tasks.algorithms.image_classification_tf.network import (
    HEAD_WEIGHTS,
    Network,
    build_network,
    in_replica,
    load_head,
    save_parts,
)
from tasks.algorithms.image_classification_tf.serving import export_saved_model
from tasks.artifact import (
    MANIFEST,
    SAVED_MODEL,
    ExtractedModel,
    ModelManifest,
    archive_names,
    extract_artifact,
)
from tasks.contract import MLRoot, read_hyperparameters
from tasks.data.class_folders import (
    ClassFolderError,
    ClassFolders,
    check_class_folders,
    stratified_split,
)
from tasks.errors import InputError
from tasks.progress import Progress
from tasks.training import cluster
from tasks.training.callbacks import ThroughputLog
from tasks.training.checkpoints import BestWeights, Checkpoints, kept_numbers
from tasks.training.outputs import frameworks, now, write_outputs
from tasks.training.strategy import distribution_strategy
from tasks.training.workers import InStep, log_fingerprint, prepare, steps_per_epoch

log = logging.getLogger("vision_pipelines")
BACKBONE = "backbone"
CLASS_INDEX = "class_label_to_prediction_index.json"


class ThroughputLogger(ThroughputLog, tf_keras.callbacks.Callback):
    """ThroughputLog as a Keras 2 callback."""


class BestWeightsCallback(BestWeights, tf_keras.callbacks.Callback):
    """BestWeights as a Keras 2 callback."""


class WorkersInStep(InStep, tf_keras.callbacks.Callback):
    """InStep as a Keras 2 callback."""


@dataclass(frozen=True)
class Data:
    train: ClassFolders
    train_root: Path
    validation: ClassFolders
    validation_root: Path


def load_data(ml: MLRoot, hp: TransferHyperparameters) -> Data:
    """The training class folders (every image checked) and the validation channel's, or a
    stratified split of training."""
    training = ml.channel("training")
    if not training.exists():
        raise InputError(f"channel 'training': {training} does not exist; it needs class folders")
    train = check_class_folders(training)
    validation_root = ml.channel("validation")
    if not validation_root.exists():
        train, validation = stratified_split(train, hp.validation_split_ratio)
        validation_root = training
    else:
        checked = check_class_folders(validation_root, min_classes=1)
        unknown = sorted(set(checked.classes) - set(train.classes))
        if unknown:
            raise ClassFolderError(
                f"{validation_root}: class folder(s) {', '.join(unknown)} are not classes of "
                f"training ({', '.join(train.classes)})"
            )
        index = {name: i for i, name in enumerate(train.classes)}
        validation = ClassFolders(
            checked.source,
            train.classes,
            [(rel, index[checked.classes[label]]) for rel, label in checked.images],
        )
    if hp.num_classes is not None and hp.num_classes != len(train.classes):
        raise InputError(
            f"hyperparameter 'num_classes' is {hp.num_classes} but {training} holds "
            f"{len(train.classes)} class folders ({', '.join(train.classes)})"
        )
    return Data(train, training, validation, validation_root)


def pretrained_module(
    ml: MLRoot, hp: TransferHyperparameters, work: Path, grant: str | None = None
) -> tuple[TrustedModule, ExtractedModel | None]:
    """(the trusted module to start from, our previous model when the model channel holds one
    of this pipeline's model.tar.gz: incremental training)."""
    channel = ml.channel("model")
    if not channel.exists():
        return fetch_module(hp.model_id, "feature_vector", work / "hub"), None
    archives = sorted(channel.rglob("*.tar.gz"))
    if not archives:
        return stage_user_module(channel, work / "hub", str(channel)), None
    if len(archives) > 1:
        raise InputError(
            f"channel 'model': expected one hub model (a SavedModel folder or .tar.gz) or one "
            f"model.tar.gz in {channel}, found {len(archives)} archives"
        )
    source = str(archives[0])
    # Every check below and the loader read this private copy, never the channel again.
    archive = work / "model-channel.tar.gz"
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archives[0], archive)
    names = archive_names(archive, f"channel 'model': {source}")
    ours = any(name.lstrip("./") == MANIFEST for name in names)
    if not ours:
        trust = trust_for_archive(archive, grant, hp.model_id)
        return stage_user_module(archive, work / "hub", source, trust=trust), None
    previous = extract_artifact(archive, work / "previous")
    if not (previous.root / BACKBONE).is_dir():
        raise InputError(
            f"channel 'model': {source} is a pre-trained classifier packaged as is; fine-tune "
            "from its model_id instead (incremental training needs a model trained here)"
        )
    previous.manifest.check_compatible(
        algorithm=ALGORITHM, architecture=hp.architecture(), source=source
    )
    return from_trusted_source(previous.root / BACKBONE, source), previous


def build_optimizer(hp: TransferHyperparameters) -> Any:
    """The reference's six optimizers with their parameters."""
    o, lr = tf_keras.optimizers, hp.learning_rate
    if hp.optimizer in ("sgd", "nesterov"):
        return o.SGD(lr, momentum=hp.momentum, nesterov=hp.optimizer == "nesterov")
    if hp.optimizer == "rmsprop":
        return o.RMSprop(lr, rho=hp.rho, momentum=hp.momentum, epsilon=hp.epsilon)
    if hp.optimizer == "adagrad":
        return o.Adagrad(
            lr, initial_accumulator_value=hp.initial_accumulator_value, epsilon=hp.epsilon
        )
    if hp.optimizer == "adadelta":
        return o.Adadelta(lr, rho=hp.rho, epsilon=hp.epsilon)
    return o.Adam(lr, beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.epsilon)


def _metrics(num_classes: int) -> list:
    metrics: list = [tf_keras.metrics.CategoricalAccuracy(name="accuracy")]
    if num_classes > 5:
        metrics.append(tf_keras.metrics.TopKCategoricalAccuracy(k=5, name="top_5_accuracy"))
    return metrics


def _features(network: Network, ds: tf.data.Dataset, count: int, batch_size: int, what: str):
    """(features, one-hot labels) of every image: the frozen backbone run once per image."""
    progress = Progress(count, desc=f"features of {what}", unit="images")
    features, labels = [], []
    for x, y in ds.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        features.append(in_replica(network.backbone, x, training=False).numpy())
        labels.append(y.numpy())
        progress.update(len(x))
    progress.close()
    return tf.data.Dataset.from_tensor_slices((np.concatenate(features), np.concatenate(labels)))


def train(ml: MLRoot) -> dict:
    """Validate everything, fine-tune, write model.tar.gz and metrics.json; return the metrics."""
    raw = read_hyperparameters(ml)
    hp = TransferHyperparameters.from_strings(raw, source=str(ml.hyperparameters_path))
    data = load_data(ml, hp)
    classes = data.train.classes
    hp = hp.with_classes(len(classes))
    log.info(
        "training: %d images, validation: %d images, %d classes (%s)",
        len(data.train.images),
        len(data.validation.images),
        len(classes),
        ", ".join(classes),
    )
    with TemporaryDirectory() as tmp:
        module, previous = pretrained_module(ml, hp, Path(tmp), raw.get(GRANT_HYPERPARAMETER))
        source = module.source
        if previous is not None and previous.manifest.class_names != classes:
            raise InputError(
                f"{source}: incremental training needs the same classes; the model has "
                f"{', '.join(previous.manifest.class_names)}, the data {', '.join(classes)}"
            )
        strategy = distribution_strategy(cluster.current())
        with strategy.scope():
            network = build_network(hp, module, _trained_size(module, previous, data))
            log.info("input size %dx%d", *network.input_size)
            if previous is not None and hp.reinitialize_top_layer != "True":
                log.info("incremental training: the top layer continues from %s", source)
                load_head(network, previous.root / HEAD_WEIGHTS)
            return _fit_and_save(ml, hp, data, network, source, strategy)


def _trained_size(
    module: TrustedModule, previous: ExtractedModel | None, data: Data
) -> tuple[int, int] | None:
    """The size a module that fixes none was trained at, where the registry does not say it:
    our earlier model's input size (incremental training), else, for a run's own module, the
    training images' own size when they all share one (what the plain recipe, feeding its
    images to hub.KerasLayer as they are, would use)."""
    trained = previous.manifest.input.get("size") if previous is not None else None
    if trained:
        return int(trained[0]), int(trained[1])
    if module.input_size is None:
        return common_size(data.train, data.train_root)
    return None


def _fit_and_save(
    ml: MLRoot,
    hp: TransferHyperparameters,
    data: Data,
    network: Network,
    source: str,
    strategy: tf.distribute.Strategy,
) -> dict:
    workers = cluster.current()
    part = workers.part(len(data.train.images))
    fit_model, train_ds, val_ds, augment, frozen = _fit_inputs(hp, data, network, part)
    fit_model.compile(
        optimizer=build_optimizer(hp),
        loss=tf_keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=hp.label_smoothing
        ),
        metrics=_metrics(hp.num_classes or 0),
    )
    steps = steps_per_epoch(len(data.train.images), hp.batch_size)
    checkpoints = Checkpoints(ml.checkpoints_dir, keep=ml.checkpoints_kept)
    fitting = prepare(
        strategy,
        workers,
        fit_model,
        train_data=batches(train_ds, hp.batch_size, shuffle=len(part), augment=augment),
        validation_data=batches(val_ds, hp.batch_size),
        resumed=checkpoints.resume_point(
            {**hp.architecture(), "source": source, "frozen_features": frozen}
        ),
        steps=steps,
        part=part,
        batch_size=hp.batch_size,
    )
    callbacks = _callbacks(hp, checkpoints, steps, workers.count)
    if workers.count > 1:
        callbacks.append(WorkersInStep(strategy))
    best = BestWeightsCallback(monitor="val_accuracy", folder=ml.checkpoints_dir)
    if hp.restore_best_weights:
        callbacks.append(best)  # last: it sets the weights after the workers' averaging
    started = time.monotonic()
    fit_model.fit(
        fitting.train_data,
        validation_data=fitting.validation_data,
        epochs=hp.epochs,
        initial_epoch=fitting.initial_epoch,
        steps_per_epoch=fitting.steps_per_epoch,
        # Keras 2 cannot count a distributed dataset's batches.
        validation_steps=(
            math.ceil(len(data.validation.images) / hp.batch_size) if workers.count > 1 else None
        ),
        callbacks=callbacks,
        verbose=0,
    )
    log_fingerprint(workers, fit_model.get_weights())
    resumed = fitting.initial_epoch
    epochs = checkpoints.history()
    kept = best.kept["epoch"] if hp.restore_best_weights and best.kept else None
    result = {
        "algorithm": ALGORITHM,
        "model_id": hp.model_id,
        "pretrained": source,
        "final": kept_numbers(epochs, kept),
        "kept_epoch": kept or epochs[-1]["epoch"],
        "epochs": epochs,
        "training_seconds": round(time.monotonic() - started, 1),
        "resumed_after_epoch": resumed,
        "frozen_features": frozen,
        "train_samples": len(data.train.images),
        "validation_samples": len(data.validation.images),
    }
    _save(ml, hp, data.train.classes, network, result)
    return result


def _fit_inputs(hp: TransferHyperparameters, data: Data, network: Network, part: range) -> tuple:
    """(the model to fit, training data of the `part` of the images this worker trains on,
    validation data, augmentation, frozen features?): with a frozen backbone and no
    augmentation only the head trains, on features computed once."""
    size, method = network.input_size, hp.image_resize_interpolation
    train = replace(data.train, images=data.train.images[part.start : part.stop])
    train_ds = image_dataset(train, data.train_root, size=size, method=method)
    val_ds = image_dataset(data.validation, data.validation_root, size=size, method=method)
    augment = augmentation(hp)
    frozen = hp.train_only_top_layer and augment is None
    if not frozen:
        return network.model, train_ds, val_ds, augment, False
    log.info("frozen pre-trained model, no augmentation: its features computed once")
    train_ds = _features(network, train_ds, len(train.images), hp.batch_size, "training")
    val_ds = _features(network, val_ds, len(data.validation.images), hp.batch_size, "validation")
    return network.head, train_ds, val_ds, augment, True


def _callbacks(
    hp: TransferHyperparameters, checkpoints: Checkpoints, steps: int, workers: int
) -> list:
    """Progress and checkpoints; early stopping on the validation loss with the reference's
    early_stopping_min_delta and _patience (this algorithm's own semantics, not the relative
    early stopping of the MXNet algorithms)."""
    callbacks: list = [
        ThroughputLogger(
            steps_per_epoch=steps, batch_size=hp.batch_size * workers, epochs=hp.epochs
        ),
        *checkpoints.callbacks(batches_per_epoch=steps, keras_module=tf_keras),
    ]
    if hp.early_stopping:
        callbacks.append(
            tf_keras.callbacks.EarlyStopping(
                monitor="val_loss",
                min_delta=hp.early_stopping_min_delta,
                patience=hp.early_stopping_patience,
                verbose=1,
            )
        )
    return callbacks


def _save(
    ml: MLRoot, hp: TransferHyperparameters, classes: list[str], network: Network, result: dict
) -> None:
    size, method = network.input_size, hp.image_resize_interpolation
    manifest = ModelManifest(
        algorithm=ALGORITHM,
        architecture=hp.architecture(),
        class_names=classes,
        hyperparameters=hp.to_strings(),
        input={
            "size": list(size),
            "pixel_range": [0, 1],
            "interpolation": method,
            "preprocess": "decode, resize to size (aspect not kept), scale to [0, 1]",
        },
        output={"activation": "softmax", "key": "probabilities"},
        frameworks={
            **frameworks(),
            "tf_keras": tf_keras.__version__,
            "tensorflow_hub": hub.__version__,
        },
        metrics=result["final"],
        created=now(),
    )

    def save(work: Path) -> dict[str, Path]:
        export_saved_model(network.model, work / SAVED_MODEL, size=size, method=method)
        save_parts(network, work / BACKBONE, work / HEAD_WEIGHTS)
        index = work / CLASS_INDEX
        index.write_text(json.dumps({name: i for i, name in enumerate(classes)}, indent=2))
        return {
            SAVED_MODEL: work / SAVED_MODEL,
            BACKBONE: work / BACKBONE,
            HEAD_WEIGHTS: work / HEAD_WEIGHTS,
            CLASS_INDEX: index,
        }

    write_outputs(ml, manifest, result, save)

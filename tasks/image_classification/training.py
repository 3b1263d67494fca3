"""Train the image-classification ResNet from the container contract's channels."""

from __future__ import annotations

import json
import logging
import math
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

from tasks import plots
from tasks.artifact import KERAS_MODEL, SAVED_MODEL, write_artifact
from tasks.contract import MLRoot, atomic_write_text, read_hyperparameters
from tasks.errors import InputError
from tasks.image_classification.callbacks import RelativeEarlyStopping, ThroughputLogger
from tasks.image_classification.data import (
    RecordSet,
    evaluation_dataset,
    find_recordio,
    training_dataset,
)
from tasks.image_classification.hyperparameters import ImageClassificationHyperparameters
from tasks.image_classification.resnet import RGB_MEAN, RGB_STD, build_resnet
from tasks.image_classification.serving import export_saved_model

ALGORITHM = "image-classification"
log = logging.getLogger("vision_pipelines")


def build_optimizer(hp: ImageClassificationHyperparameters, steps_per_epoch: int):
    """The reference's optimizers; lr_scheduler_step (epochs) becomes a step-wise schedule."""
    lr: float | keras.optimizers.schedules.LearningRateSchedule = hp.learning_rate
    if hp.lr_scheduler_step:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[e * steps_per_epoch for e in hp.lr_scheduler_step],
            values=[
                hp.learning_rate * hp.lr_scheduler_factor**i
                for i in range(len(hp.lr_scheduler_step) + 1)
            ],
        )
    if hp.optimizer in ("sgd", "nag"):
        return keras.optimizers.SGD(
            learning_rate=lr,
            momentum=hp.momentum,
            nesterov=hp.optimizer == "nag",
            weight_decay=hp.weight_decay or None,
        )
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=lr, beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.eps
        )
    return keras.optimizers.RMSprop(learning_rate=lr, rho=hp.gamma, epsilon=hp.eps)


def _distribution() -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _per_epoch(history: keras.callbacks.History) -> list[dict]:
    """Keras' history as one row per epoch: `val_x` -> `validation_x`, `x` -> `train_x`."""
    rows = []
    for i in range(len(history.epoch)):
        row: dict[str, float | int] = {"epoch": i + 1}
        for key, values in history.history.items():
            if key.startswith("val_"):
                name = "validation_" + key[4:]
            elif key in ("images_per_second", "learning_rate"):
                name = key
            else:
                name = "train_" + key
            row[name] = float(values[i])
        rows.append(row)
    return rows


def train(ml: MLRoot) -> dict:
    """Validate everything, train, write model.tar.gz and metrics.json; return the metrics."""
    hp = ImageClassificationHyperparameters.from_strings(
        read_hyperparameters(ml), source=str(ml.hyperparameters_path)
    )
    if ml.channel("model").exists():
        raise InputError(
            "channel 'model': incremental training is not available in this version; "
            "remove the model channel"
        )
    train_set = RecordSet.open(
        *find_recordio(ml.channel("train"), "train"), num_classes=hp.num_classes
    )
    val_set = RecordSet.open(
        *find_recordio(ml.channel("validation"), "validation"), num_classes=hp.num_classes
    )
    if hp.resize:
        log.info(
            "resize=%d applies to the image (.lst) format only; RecordIO is used as packed",
            hp.resize,
        )
    if len(train_set) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d records; the learning "
            "rate schedule follows num_training_samples",
            hp.num_training_samples,
            len(train_set),
        )
    log.info(
        "train: %d records, validation: %d records, %d classes",
        len(train_set),
        len(val_set),
        hp.num_classes,
    )

    if hp.precision_dtype == "float16" and tf.config.list_physical_devices("GPU"):
        keras.mixed_precision.set_global_policy("mixed_float16")
    steps_per_epoch = math.ceil(hp.num_training_samples / hp.mini_batch_size)
    with _distribution().scope():
        model = build_resnet(hp.num_layers, image_shape=hp.image_shape, num_classes=hp.num_classes)
        metrics: list = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if hp.top_k:
            metrics.append(
                keras.metrics.SparseTopKCategoricalAccuracy(
                    k=hp.top_k, name=f"top_{hp.top_k}_accuracy"
                )
            )
        model.compile(
            optimizer=build_optimizer(hp, steps_per_epoch),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=metrics,
        )
    callbacks: list[keras.callbacks.Callback] = [
        ThroughputLogger(
            steps_per_epoch=math.ceil(len(train_set) / hp.mini_batch_size),
            batch_size=hp.mini_batch_size,
            epochs=hp.epochs,
        ),
        keras.callbacks.BackupAndRestore(
            str(ml.checkpoints_dir),
            save_freq=hp.checkpoint_frequency * math.ceil(len(train_set) / hp.mini_batch_size)
            if hp.checkpoint_frequency > 1
            else "epoch",
            delete_checkpoint=True,
        ),
    ]
    if hp.early_stopping:
        callbacks.append(
            RelativeEarlyStopping(
                min_epochs=hp.early_stopping_min_epochs,
                patience=hp.early_stopping_patience,
                tolerance=hp.early_stopping_tolerance,
            )
        )
    started = time.monotonic()
    history = model.fit(
        training_dataset(
            train_set,
            image_shape=hp.image_shape,
            batch_size=hp.mini_batch_size,
            augmentation=hp.augmentation_type,
        ),
        validation_data=evaluation_dataset(
            val_set, image_shape=hp.image_shape, batch_size=hp.mini_batch_size
        ),
        epochs=hp.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    epochs = _per_epoch(history)
    result = {
        "algorithm": ALGORITHM,
        "final": {k: v for k, v in epochs[-1].items() if k != "epoch"},
        "epochs": epochs,
        "training_seconds": round(time.monotonic() - started, 1),
        "train_samples": len(train_set),
        "validation_samples": len(val_set),
    }
    _write_outputs(ml, model, hp, result)
    return result


def _write_outputs(
    ml: MLRoot, model: keras.Model, hp: ImageClassificationHyperparameters, metrics: dict
) -> None:
    ml.output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ml.model_dir.parent) as tmp:
        work = Path(tmp)
        keras_path = work / KERAS_MODEL
        model.save(keras_path)
        export_saved_model(model, work / SAVED_MODEL, image_shape=hp.image_shape)
        class_names = _class_names(ml, hp.num_classes)
        manifest = {
            "algorithm": ALGORITHM,
            "architecture": {
                k: list(v) if isinstance(v, tuple) else v for k, v in hp.architecture().items()
            },
            "hyperparameters": hp.to_strings(),
            "class_names": class_names,
            "input": {
                "image_shape": list(hp.image_shape),
                "layout": "CHW",
                "pixel_range": [0, 255],
                "mean_rgb": list(RGB_MEAN),
                "std_rgb": list(RGB_STD),
                "resize": "cover then centre crop",
            },
            "output": {"activation": "softmax", "key": "probabilities"},
            "frameworks": {
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "python": platform.python_version(),
            },
            "metrics": metrics["final"],
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_artifact(ml.model_dir / "model.tar.gz", manifest, work / SAVED_MODEL, keras_path)
    atomic_write_text(ml.metrics_path, json.dumps(metrics, indent=2) + "\n")
    plots.learning_curves(metrics["epochs"], ml.output_dir / "learning_curves.png")


def _class_names(ml: MLRoot, num_classes: int) -> list[str]:
    """Class names from a `classes.json` list in the train channel, else the indices as text."""
    path = ml.channel("train") / "classes.json"
    if path.is_file():
        names = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(names, list) and len(names) == num_classes:
            return [str(n) for n in names]
        log.warning("%s does not list %d class names; using indices", path, num_classes)
    return [str(i) for i in range(num_classes)]

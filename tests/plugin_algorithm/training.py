"""The tiny classifier's trainer: its data, network, loss and metrics; the shared skeleton does
the rest (strategy, callbacks, checkpoints, model.tar.gz, metrics.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tasks.classification.serving import OUTPUT_KEY
from tasks.contract import MLRoot, read_hyperparameters
from tasks.data.class_folders import ClassFolders, check_class_folders
from tasks.errors import InputError
from tasks.hyperparameters import parse_hyperparameters
from tasks.training.skeleton import Compiled, TrainingPlan, fit, manifest_of, save
from tests.plugin_algorithm.spec import ALGORITHM, TABLE


def parse(raw: dict[str, str], *, source: str = "hyperparameters") -> dict[str, Any]:
    return parse_hyperparameters(raw, TABLE, source=source)


def build_model(hp: dict[str, Any]) -> keras.Model:
    size = hp["image_size"]
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(hp["num_classes"], name="logits")(x))


def _pixels(image_bytes: tf.Tensor, size: int) -> tf.Tensor:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    return tf.image.resize(tf.cast(image, tf.float32), (size, size))


def _dataset(
    folders: ClassFolders, root: Path, size: int, batch: int, items: range | None = None
) -> tf.data.Dataset:
    images = folders.images if items is None else folders.images[items.start : items.stop]
    paths = [str(root / rel) for rel, _ in images]
    labels = [label for _, label in images]
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    return ds.map(lambda p, y: (_pixels(tf.io.read_file(p), size), y)).batch(batch)


class _Serving(tf.Module):
    def __init__(self, model: keras.Model, size: int):
        super().__init__()
        self.model, self.size = model, size

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve(self, images):
        pixels = tf.map_fn(
            lambda b: _pixels(b, self.size),
            images,
            fn_output_signature=tf.TensorSpec([self.size, self.size, 3], tf.float32),
        )
        return {OUTPUT_KEY: tf.nn.softmax(self.model(pixels, training=False))}


def _export(model: keras.Model, path: Path, size: int) -> None:
    serving = _Serving(model, size)
    tf.saved_model.save(serving, str(path), signatures={"serving_default": serving.serve})


def train(ml: MLRoot) -> dict:
    hp = parse(read_hyperparameters(ml), source=str(ml.hyperparameters_path))
    if ml.channel("model").exists():
        raise InputError("channel 'model': the tiny classifier does not train incrementally")
    training = check_class_folders(ml.channel("training"))
    validation = check_class_folders(ml.channel("validation"), min_classes=1)
    if hp["num_classes"] != len(training.classes):
        raise InputError(f"num_classes is {hp['num_classes']}, the data has {training.classes}")
    size, batch = hp["image_size"], hp["batch_size"]
    architecture = {"num_classes": hp["num_classes"], "image_size": size}
    trained = fit(
        ml,
        TrainingPlan(
            architecture=architecture,
            build_model=lambda: build_model(hp),
            compile=lambda: Compiled(
                keras.optimizers.Adam(hp["learning_rate"]),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            ),
            train_data=lambda items: _dataset(
                training, ml.channel("training"), size, batch, items
            ).shuffle(64),
            train_samples=len(training.images),
            validation_data=_dataset(validation, ml.channel("validation"), size, batch),
            batch_size=batch,
            epochs=hp["epochs"],
        ),
    )
    manifest = manifest_of(
        ALGORITHM,
        trained=trained,
        architecture=architecture,
        hyperparameters={k: str(v) for k, v in hp.items()},
        class_names=training.classes,
        input={"size": [size, size], "pixel_range": [0, 255]},
        output={"activation": "softmax", "key": OUTPUT_KEY},
    )
    return save(
        ml,
        trained,
        manifest,
        {"train_samples": len(training.images), "validation_samples": len(validation.images)},
        lambda model, path: _export(model, path, size),
    )

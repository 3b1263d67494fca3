"""Image classification learns at least as well as the plain Keras recipe it replaces: ResNet-20
v1 as Keras' CIFAR-10 example writes it (3x3 stem, three stages of three basic blocks of 16, 32
and 64 filters, 1x1 projection shortcuts, global average pooling, Dense), trained with
`fit` on `image_dataset_from_directory`, against our trainer on RecordIO channels packed from
the same images: same classes, images, optimizer (SGD 0.05, momentum 0.9, weight decay 1e-4),
batch, epochs and seed, no augmentation on either side; accuracy on the same held-out images.

Margins (ours - recipe, accuracy of 375 test images, `parity` with seeds 0-4): +0.005,
+0.019, -0.037, +0.024, +0.091 (mean +0.020; ours 0.89-0.99, the recipe 0.90-0.97). The
tolerance, 0.08, is twice the widest shortfall seen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.backbones.resnet import BN_EPSILON, BN_MOMENTUM
from tasks.contract import MLRoot
from tasks.data.lst import list_class_folders, split_entries
from tasks.data.pack import pack_lst
from tasks.data.synthetic import TEN_CLASSES, make_shapes_dataset
from tasks.steps.scoring import evaluate
from tests.conftest import run_cli

EPOCHS, BATCH, LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 12, 32, 0.05, 0.9, 0.0001
STEPS_DOWN, FACTOR = (8, 10), 0.1
"""The learning rate falls tenfold after epochs 8 and 10 (lr_scheduler_step on our side)."""
TOLERANCE = 0.08


def split_folders(images: Path, root: Path, seed: int) -> dict:
    """Train / validation / test lists of `images`, and each as class folders (links)."""
    listing = list_class_folders(images)
    split = split_entries(listing.entries, train_ratio=0.6, test_ratio=0.25, seed=seed)
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    folders = {}
    for name, entries in parts.items():
        for entry in entries:
            link = root / name / entry.path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(images / entry.path)
        folders[name] = root / name
    return {"entries": parts, "folders": folders}


def ours(images: Path, data: dict, root: Path, seed: int) -> float:
    ml = MLRoot(root / "ml")
    for name in ("train", "validation"):
        channel = ml.channel(name)
        channel.mkdir(parents=True)
        pack_lst(data["entries"][name], images, channel / f"{name}.rec", channel / f"{name}.idx")
    ml.config_dir.mkdir(parents=True)
    ml.hyperparameters_path.write_text(
        json.dumps(
            {
                "num_layers": "20",
                "image_shape": "3,32,32",
                "num_classes": "10",
                "num_training_samples": str(len(data["entries"]["train"])),
                "epochs": str(EPOCHS),
                "mini_batch_size": str(BATCH),
                "optimizer": "sgd",
                "learning_rate": str(LEARNING_RATE),
                "momentum": str(MOMENTUM),
                "weight_decay": str(WEIGHT_DECAY),
                "lr_scheduler_step": ",".join(map(str, STEPS_DOWN)),
                "lr_scheduler_factor": str(FACTOR),
            }
        )
    )
    # A process of its own: a seeded run turns on TensorFlow's op determinism for good.
    done = run_cli(
        "tasks.train", "--algorithm", "image-classification", "--ml-root", str(ml.root),
        env={"VISION_PIPELINES_SEED": str(seed)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    test_rec = root / "test.rec"
    pack_lst(data["entries"]["test"], images, test_rec, root / "test.idx")
    metrics = evaluate(ml.model_dir / "model.tar.gz", test_rec, root / "test.json")
    return float(metrics["accuracy"])


def _layer(x, filters: int, kernel: int = 3, strides: int = 1, activation: bool = True, bn=True):
    """Keras' CIFAR-10 example's resnet_layer: conv, batch norm, ReLU (L2 left to the SGD's
    weight decay, as our trainer does)."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                            kernel_initializer="he_normal")(x)  # fmt: skip
    if bn:  # batch-norm statistics as our (MXNet's) ResNet keeps them: the same settings
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)(x)
    return keras.layers.Activation("relu")(x) if activation else x


def plain_resnet20(classes: int) -> keras.Model:
    """ResNet-20 v1 as Keras' CIFAR-10 example builds it (resnet_v1, depth 20)."""
    inputs = keras.Input((32, 32, 3))
    x = _layer(keras.layers.Rescaling(1 / 255.0)(inputs), 16)
    filters = 16
    for stage in range(3):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = _layer(x, filters, strides=strides)
            y = _layer(y, filters, activation=False)
            if stage > 0 and block == 0:
                x = _layer(x, filters, kernel=1, strides=strides, activation=False, bn=False)
            x = keras.layers.Activation("relu")(keras.layers.add([x, y]))
        filters *= 2
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes)(x))


def recipe(data: dict, seed: int) -> float:
    keras.utils.set_random_seed(seed)

    def images(name: str, shuffle: bool) -> tf.data.Dataset:
        return keras.utils.image_dataset_from_directory(
            data["folders"][name], image_size=(32, 32), batch_size=BATCH, shuffle=shuffle,
            seed=seed,
        )  # fmt: skip

    model = plain_resnet20(10)
    train = images("train", True)
    steps = int(train.cardinality())
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [e * steps for e in STEPS_DOWN], [LEARNING_RATE * FACTOR**i for i in range(3)]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(train, validation_data=images("validation", False), epochs=EPOCHS, verbose=0)
    return float(model.evaluate(images("test", False), verbose=0)[1])


def parity(root: Path, seed: int) -> dict[str, float]:
    images = make_shapes_dataset(root / "images", per_class=150, classes=TEN_CLASSES, seed=seed)
    data = split_folders(images, root / "split", seed)
    return {"ours": ours(images, data, root, seed), "recipe": recipe(data, seed)}


def test_resnet20_learns_at_least_as_well_as_the_plain_keras_recipe(tmp_path):
    found = parity(tmp_path, int(os.environ.get("PARITY_SEED", "0")))
    print(json.dumps(found))
    assert found["ours"] >= found["recipe"] - TOLERANCE, found
    assert found["recipe"] > 0.5, found  # the recipe learns: the comparison has teeth
    assert np.isfinite(found["ours"])

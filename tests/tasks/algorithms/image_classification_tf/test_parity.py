"""Transfer learning is at least as good as the plain recipe it replaces: TF Hub's retraining
tutorial (`hub.KerasLayer` -> Dropout(0.2) -> Dense with L2 1e-4, label smoothing 0.1, `fit` on
`image_dataset_from_directory`), on the same module, data, optimizer and epochs; top-only and
full fine-tuning. The module is made here: a small CNN pre-trained on some generated shapes,
which, as TF Hub's image modules do, takes images of any size (it was trained at 32x32).

Before the fix our trainer fed such a module the default model id's registry size (224x224)
instead of the size it was trained at: this test on that code (53547d0~1), seed 0, top-only
0.31 against the recipe's 0.81, full fine-tuning 0.25 against 0.95 (on handwritten digits,
top-only: 0.34 against 0.87).

Margins (ours - recipe, test accuracy of 160 images, `parity` with seeds 0-4, each seeded on
both sides, 100 training images per class): top-only +0.019, +0.013, -0.013, -0.006, -0.013
(mean 0.000); full fine-tuning +0.019, -0.025, 0.000, -0.075, +0.038 (mean -0.009). The
tolerance, 0.10, is 1.3 times the widest shortfall seen (0.075); a module fed at the wrong size
falls 0.36 short. With 40 training images per class (as first written), 15 epochs of full
fine-tuning were chaotic on both sides (test accuracy 0.53 to 0.94 over seeds 0-4 for the same
recipe, margins from -0.14 to +0.24), and seed 0, which passed when the test was written,
failed in CI after unrelated changes: the check measured chance, not the trainer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.artifact import extract_artifact
from tasks.data.synthetic import make_shapes_dataset
from tests.tasks.algorithms.image_classification_tf.conftest import train_on_pinned_module
from tests.tasks.algorithms.image_classification_tf.hub_modules import save_feature_vector

SEEN = ("circle", "square", "cross", "triangle")
UNSEEN = ("star", "star_outline", "circle_outline", "cross_outline")
EPOCHS, BATCH, LEARNING_RATE = 15, 32, 0.01
TOLERANCE = 0.10


def make_data(root: Path, seed: int) -> dict[str, Path]:
    return {
        "pretrain": make_shapes_dataset(
            root / "pretrain", per_class=80, size=32, classes=SEEN, seed=seed
        ),
        "train": make_shapes_dataset(
            root / "train", per_class=100, size=32, classes=UNSEEN, seed=seed + 100
        ),
        "validation": make_shapes_dataset(
            root / "validation", per_class=20, size=32, classes=UNSEEN, seed=seed + 200
        ),
        "test": make_shapes_dataset(
            root / "test", per_class=40, size=32, classes=UNSEEN, seed=seed + 300
        ),
    }


def ours(data: dict, module: Path, work: Path, top_only: bool) -> float:
    """Test accuracy of our trainer's model.tar.gz (its served signature), seeded."""
    hp = {
        "model_id": DEFAULT_MODEL_ID,
        "train_only_top_layer": str(top_only),
        "epochs": str(EPOCHS),
        "batch_size": str(BATCH),
        "learning_rate": str(LEARNING_RATE),
        "optimizer": "adam",
        "early_stopping": "False",
    }  # dropout 0.2, L2 1e-4 and label smoothing 0.1: the algorithm's defaults, the tutorial's
    ml = train_on_pinned_module(work, data, hp, module)
    model = extract_artifact(ml.model_archive, work.with_name(f"{work.name}-extracted"))
    serve = tf.saved_model.load(str(model.root / "saved_model")).signatures["serving_default"]
    files = sorted(data["test"].rglob("*.jpg"))
    classes = sorted(p.name for p in data["test"].iterdir())
    truth = np.array([classes.index(p.parent.name) for p in files])
    probabilities = serve(images=tf.constant([p.read_bytes() for p in files]))["probabilities"]
    return float(np.mean(np.argmax(probabilities, axis=1) == truth))


def recipe(data: dict, module: Path, top_only: bool) -> float:
    """TF Hub's retraining tutorial, as it is written, on the same data and budget."""
    tf_keras.utils.set_random_seed(1)

    def images(folder: Path, shuffle: bool) -> tf.data.Dataset:
        ds = tf_keras.utils.image_dataset_from_directory(
            folder, label_mode="categorical", image_size=(32, 32), batch_size=BATCH,
            shuffle=shuffle, seed=1,
        )  # fmt: skip
        return ds.map(lambda x, y: (x / 255.0, y))

    model = tf_keras.Sequential(
        [
            tf_keras.Input((32, 32, 3)),
            hub.KerasLayer(str(module), trainable=not top_only),
            tf_keras.layers.Dropout(rate=0.2),
            tf_keras.layers.Dense(len(UNSEEN), kernel_regularizer=tf_keras.regularizers.l2(0.0001)),
        ]
    )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(LEARNING_RATE),
        loss=tf_keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        metrics=["accuracy"],
    )
    model.fit(
        images(data["train"], True),
        validation_data=images(data["validation"], False),
        epochs=EPOCHS,
        verbose=0,
    )
    return float(model.evaluate(images(data["test"], False), verbose=0)[1])


def parity(root: Path, seed: int) -> dict[str, float]:
    """Test accuracies of ours and of the recipe, top-only and full fine-tuning."""
    data = make_data(root, seed)
    module = save_feature_vector(root / "module", pretrain_on=data["pretrain"], seed=seed)
    return {
        "ours top-only": ours(data, module, root / "top", True),
        "recipe top-only": recipe(data, module, True),
        "ours full": ours(data, module, root / "full", False),
        "recipe full": recipe(data, module, False),
    }


def test_transfer_learning_is_at_least_as_good_as_the_tutorial_recipe(tmp_path):
    found = parity(tmp_path, int(os.environ.get("PARITY_SEED", "0")))
    print(json.dumps(found))
    assert found["ours top-only"] >= found["recipe top-only"] - TOLERANCE, found
    assert found["ours full"] >= found["recipe full"] - TOLERANCE, found
    assert found["recipe top-only"] > 0.45, found  # the module transfers: the check has teeth

"""Transfer learning learns: features pre-trained (by the test) on some shapes make a frozen
top layer classify shapes the extractor never saw, clearly better than the same network with
random weights. Both trainings are seeded, so they repeat exactly on the same hardware."""

from __future__ import annotations

import json

import pytest

from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.data.synthetic import make_shapes_dataset
from tests.tasks.algorithms.image_classification_tf.conftest import train_on_pinned_module
from tests.tasks.algorithms.image_classification_tf.hub_modules import save_feature_vector

SEEN = ("circle", "square", "cross", "triangle")
UNSEEN = ("star", "star_outline", "circle_outline", "cross_outline")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    return {
        "pretrain": make_shapes_dataset(root / "pretrain", per_class=80, size=32, classes=SEEN),
        "train": make_shapes_dataset(root / "train", per_class=30, size=32, classes=UNSEEN),
        "validation": make_shapes_dataset(
            root / "validation", per_class=15, size=32, classes=UNSEEN, seed=7
        ),
        "root": root,
    }


def validation_accuracy(data, module, name) -> float:
    """Fine-tunes on `module`, seeded: the asserted figures repeat exactly."""
    ml = train_on_pinned_module(
        data["root"] / name,
        data,
        {
            "model_id": DEFAULT_MODEL_ID,
            "train_only_top_layer": "True",
            "epochs": "40",
            "batch_size": "16",
            "learning_rate": "0.05",
            "label_smoothing": "0",
        },
        module,
    )
    return json.loads(ml.metrics_path.read_text())["final"]["validation_accuracy"]


def test_pretrained_features_transfer_to_unseen_classes(data):
    pretrained = save_feature_vector(
        data["root"] / "pretrained", pretrain_on=data["pretrain"], fixed_size=True
    )
    scratch = save_feature_vector(data["root"] / "random", fixed_size=True)
    transferred = validation_accuracy(data, pretrained, "with-pretrained")
    random_weights = validation_accuracy(data, scratch, "with-random")
    print(f"validation accuracy: pre-trained {transferred:.3f}, random {random_weights:.3f}")
    assert transferred >= 0.6  # chance: 0.25
    assert transferred >= random_weights + 0.2

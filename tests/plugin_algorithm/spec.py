"""A fourth algorithm that lives only in the tests: a tiny convolutional classifier on class
folders. It proves the plug-in house: the registry, the DAG builder, the runners and the reports
take it as they are (VISION_PIPELINES_ALGORITHM_PACKAGES=tests.plugin_algorithm)."""

from __future__ import annotations

from tasks.algorithms.spec import TRAINER, AlgorithmSpec, Channels
from tasks.classification.declarations import SERVING_CHANNELS, SERVING_ENTRY_POINTS
from tasks.contract import Step
from tasks.hyperparameters import Hyperparameter, integer, number

ALGORITHM = "tiny-classifier"
TABLE = (
    Hyperparameter("num_classes", integer(2), "an integer of at least 2", required=True),
    Hyperparameter("image_size", integer(8, 64), "an integer from 8 to 64", "16"),
    Hyperparameter("epochs", integer(1, 100), "an integer from 1 to 100", "3"),
    Hyperparameter("batch_size", integer(1, 256), "an integer from 1 to 256", "8"),
    Hyperparameter("learning_rate", number(0, 1, low_open=True), "a number in (0, 1]", "0.01"),
)

SPEC = AlgorithmSpec(
    id=ALGORITHM,
    package=__package__,
    channels={
        Step.TRAIN: Channels(required=("training", "validation"), optional=("model",)),
        **SERVING_CHANNELS,
    },
    hyperparameters=TABLE,
    architecture=("num_classes", "image_size"),
    primary_metric="accuracy",
    higher_is_better=True,
    per_class_metric="recall",
    environment=TRAINER,
    entry_points={
        "train": "training:train",
        **SERVING_ENTRY_POINTS,
        "build_model": "training:build_model",
        "parse": "training:parse",
    },
    smallest={"num_classes": "2", "epochs": "1"},
    laptop={"epochs": "3"},
)

"""What image-classification-tf is, as plain data for the registry (no TensorFlow)."""

from __future__ import annotations

from tasks.algorithms.image_classification_tf import hyperparameters as hp
from tasks.algorithms.spec import TRAINER, AlgorithmSpec, Channels
from tasks.classification.declarations import SERVING_CHANNELS, SERVING_ENTRY_POINTS
from tasks.contract import Step

SPEC = AlgorithmSpec(
    id=hp.ALGORITHM,
    package=__package__,
    channels={
        Step.TRAIN: Channels(required=("training",), optional=("validation", "model")),
        **SERVING_CHANNELS,
    },
    hyperparameters=hp.TABLE,
    architecture=hp.ARCHITECTURE_KEYS,
    primary_metric="accuracy",
    higher_is_better=True,
    tuning_ranges={
        "learning_rate": {"type": "continuous", "min": 1e-6, "max": 0.5, "scale": "log"},
        "batch_size": {"type": "integer", "min": 4, "max": 128, "scale": "log"},
        "optimizer": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
        "dropout_rate": {"type": "continuous", "min": 0.0, "max": 0.9},
        "regularizers_l2": {"type": "continuous", "min": 1e-6, "max": 0.1, "scale": "log"},
    },
    per_class_metric="recall",
    environment=TRAINER,
    entry_points={
        "train": "training:train",
        **SERVING_ENTRY_POINTS,
        "build_model": "network:build_model",
        "parse": "hyperparameters:TransferHyperparameters.from_strings",
    },
    smallest={
        "model_id": hp.DEFAULT_MODEL_ID,
        "num_classes": "2",
        "epochs": "1",
        "batch_size": "4",
    },
    laptop={
        "epochs": "5",
        "batch_size": "16",
        "train_only_top_layer": "True",
        "learning_rate": "0.01",
    },
)

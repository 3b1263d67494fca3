"""What image-classification is, as plain data for the registry (no TensorFlow)."""

from __future__ import annotations

from tasks.algorithms.image_classification import hyperparameters as hp
from tasks.algorithms.spec import TRAINER, AlgorithmSpec, Channels
from tasks.classification.declarations import SERVING_CHANNELS, SERVING_ENTRY_POINTS
from tasks.contract import Step

SPEC = AlgorithmSpec(
    id=hp.ALGORITHM,
    package=__package__,
    channels={
        Step.TRAIN: Channels(
            required=("train", "validation"),
            optional=("train_lst", "validation_lst", "model"),
        ),
        **SERVING_CHANNELS,
    },
    hyperparameters=hp.TABLE,
    architecture=hp.ARCHITECTURE_KEYS,
    primary_metric="accuracy",
    higher_is_better=True,
    tuning_ranges={
        "learning_rate": {"type": "continuous", "min": 1e-6, "max": 0.5, "scale": "log"},
        "mini_batch_size": {"type": "integer", "min": 8, "max": 512, "scale": "log"},
        "momentum": {"type": "continuous", "min": 0.0, "max": 0.999},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam", "rmsprop", "nag"]},
        "weight_decay": {"type": "continuous", "min": 0.0, "max": 0.999},
    },
    per_class_metric="recall",
    environment=TRAINER,
    streamed_channels=("train", "validation"),
    entry_points={
        "train": "training:train",
        **SERVING_ENTRY_POINTS,
        "build_model": "network:build_model",
        "parse": "hyperparameters:ImageClassificationHyperparameters.from_strings",
    },
    smallest={
        "num_classes": "2",
        "num_training_samples": "8",
        "num_layers": "20",
        "image_shape": "3,16,16",
        "epochs": "1",
        "mini_batch_size": "4",
    },
    laptop={
        "num_layers": "20",
        "image_shape": "3,32,32",
        "epochs": "10",
        "mini_batch_size": "32",
        "learning_rate": "0.1",
    },
)

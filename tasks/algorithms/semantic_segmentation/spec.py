"""What semantic-segmentation is, as plain data for the registry (no TensorFlow)."""

from __future__ import annotations

from tasks.algorithms.semantic_segmentation import hyperparameters as hp
from tasks.algorithms.spec import TRAINER, AlgorithmSpec, Channels
from tasks.contract import Step

SPEC = AlgorithmSpec(
    id=hp.ALGORITHM,
    package=__package__,
    channels={
        # The annotation channels go with images in folders; augmented manifests in train/ and
        # validation/ name their annotations themselves (the reference's Pipe layout). The
        # trainer refuses a folder layout without them ("folder train_annotation/ is missing").
        Step.TRAIN: Channels(
            required=("train", "validation"),
            optional=("train_annotation", "validation_annotation", "label_map", "model"),
        ),
        Step.EVALUATE: Channels(
            required=("model", "validation"), optional=("validation_annotation", "champion")
        ),
        Step.TRANSFORM: Channels(required=("model", "data")),
    },
    hyperparameters=hp.TABLE,
    architecture=hp.ARCHITECTURE_KEYS,
    primary_metric="mIoU",
    higher_is_better=True,
    metrics=("pixel_accuracy",),
    tuning_ranges={
        "learning_rate": {"type": "continuous", "min": 1e-4, "max": 0.1, "scale": "log"},
        "mini_batch_size": {"type": "integer", "min": 1, "max": 128, "scale": "log"},
        "momentum": {"type": "continuous", "min": 0.9, "max": 0.999},
        # the reference's third, adadelta, is not one of this trainer's optimizers
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
        "weight_decay": {"type": "continuous", "min": 1e-5, "max": 1e-3, "scale": "log"},
    },
    per_class_metric="iou",
    environment=TRAINER,
    evaluation_data="a folder with validation/ and validation_annotation/, a folder of images "
    "beside its <folder>_annotation/, or a segmentation manifest",
    streamed_channels=("train", "validation", "train_annotation", "validation_annotation"),
    entry_points={
        "train": "training:train",
        "evaluate": "evaluation:evaluate",
        "predict": "prediction:predict",
        "load_predictor": "serving:load_predictor",
        "responses": "responses:RESPONSES",
        "build_model": "network:build_model",
        "parse": "hyperparameters:SegmentationHyperparameters.from_strings",
    },
    smallest={
        "backbone": "resnet-50",
        "use_pretrained_model": "False",
        "num_classes": "3",
        "num_training_samples": "4",
        "base_size": "32",
        "crop_size": "24",
        "epochs": "1",
        "mini_batch_size": "2",
        "validation_mini_batch_size": "2",
    },
    laptop={
        "use_pretrained_model": "False",
        "base_size": "64",
        "crop_size": "64",
        "epochs": "5",
        "mini_batch_size": "8",
        "optimizer": "adam",
    },
)

"""The algorithm registry: what each algorithm is, as plain data (importable without TensorFlow).

Every place that depends on the algorithm (the trainer and job CLIs, evaluate, transform, the
container-step operator, the DAG Params) looks it up here. Adding an algorithm means a package
under `tasks/`, one `AlgorithmSpec` below and one DAG file (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tasks.contract import Step
from tasks.errors import InputError
from tasks.hyperparameters import Param
from tasks.image_classification import hyperparameters as image_classification_hp
from tasks.image_classification_tf import hyperparameters as transfer_hp
from tasks.semantic_segmentation import hyperparameters as segmentation_hp


class UnknownAlgorithmError(InputError):
    """An algorithm id that is not in the registry."""


@dataclass(frozen=True)
class Channels:
    """The channels one step reads: those it needs and those it may be given."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return self.required + self.optional


@dataclass(frozen=True)
class Environment:
    """Where an algorithm's container steps run: a local virtual environment or an image."""

    venv: str
    """Folder of the virtual environment in the project (runner=local)."""
    image: str
    """Default container image (runner=kubernetes)."""
    requirements: str
    """The requirement file both are made from."""


TRAINER = Environment(
    venv=".venv-trainer",
    image="vision-pipelines-trainer:latest",
    requirements="docker/trainer/requirements.txt",
)


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm: its code, channels, hyperparameters, primary metric and environment."""

    id: str
    package: str
    """The package under tasks/ that implements it."""
    channels: Mapping[Step, Channels]
    hyperparameters: Sequence[Param]
    architecture: tuple[str, ...]
    """Hyperparameters that define the network: they must match for incremental training."""
    primary_metric: str
    """The evaluation metric that ranks models (training reports it as `validation_<name>`)."""
    higher_is_better: bool
    per_class_metric: str
    """The per-class evaluation metric the gate watches (no class may drop much)."""
    environment: Environment
    entry_points: Mapping[str, str]
    """Role -> "module:function" in `package` (or a whole `tasks.` module path, to share
    another algorithm's): train(ml), evaluate(model, input, output, *,
    image_root), predict(model, images, *, total, output) -> rows,
    load_predictor(saved_model_dir), build_model(hp), parse(raw) -> validated hyperparameters."""
    smallest: Mapping[str, str] = field(default_factory=dict)
    """Hyperparameters of the smallest network that trains (tests)."""
    laptop: Mapping[str, str] = field(default_factory=dict)
    """A recipe that trains in minutes on a laptop CPU: the form's defaults where the
    deployment runs steps locally (the table's defaults are the reference's, for GPUs)."""

    def __post_init__(self) -> None:
        names = [p.name for p in self.hyperparameters]
        unknown = set(self.architecture) - set(names)
        if unknown:
            raise ValueError(
                f"{self.id}: architecture names {sorted(unknown)} are not in its table"
            )
        missing = set(Step) - set(self.channels)
        if missing:
            raise ValueError(f"{self.id}: no channels for steps {sorted(missing)}")
        missing_roles = set(ROLES) - set(self.entry_points)
        if missing_roles:
            raise ValueError(f"{self.id}: no entry points for {sorted(missing_roles)}")

    def entry_point(self, role: str) -> Callable[..., Any]:
        """The function for `role`, imported only now (most of them pull in TensorFlow)."""
        module, _, name = self.entry_points[role].partition(":")
        if not module.startswith("tasks."):
            module = f"{self.package}.{module}"
        found: Any = importlib.import_module(module)
        for attribute in name.split("."):
            found = getattr(found, attribute)
        return found

    def check_channels(
        self, step: Step | str, names: Iterable[str], *, complete: bool = True
    ) -> None:
        """Refuse a channel the step does not read and, when the set is `complete`, a missing
        required one."""
        step = Step(step)
        channels, names = self.channels[step], set(names)
        for name in channels.required if complete else ():
            if name not in names:
                raise InputError(
                    f"step {step.value!r} of {self.id} needs the {name!r} channel "
                    f"(--channel {name}=URI)"
                )
        unknown = sorted(names - set(channels.allowed))
        if unknown:
            raise InputError(
                f"step {step.value!r} of {self.id} does not read a channel {unknown[0]!r}; "
                f"allowed: {', '.join(channels.allowed)}"
            )

    def param(self, name: str) -> Param:
        for p in self.hyperparameters:
            if p.name == name:
                return p
        raise KeyError(f"{self.id} has no hyperparameter {name!r}")


ROLES = ("train", "evaluate", "predict", "load_predictor", "build_model", "parse")

_ALGORITHMS = (
    AlgorithmSpec(
        id=image_classification_hp.ALGORITHM,
        package="tasks.image_classification",
        channels={
            Step.TRAIN: Channels(
                required=("train", "validation"),
                optional=("train_lst", "validation_lst", "model"),
            ),
            Step.EVALUATE: Channels(required=("model", "validation"), optional=("champion",)),
            Step.TRANSFORM: Channels(required=("model", "data")),
        },
        hyperparameters=image_classification_hp.TABLE,
        architecture=image_classification_hp.ARCHITECTURE_KEYS,
        primary_metric="accuracy",
        higher_is_better=True,
        per_class_metric="recall",
        environment=TRAINER,
        entry_points={
            "train": "training:train",
            "evaluate": "evaluation:evaluate",
            "predict": "prediction:predict",
            "load_predictor": "serving:load_predictor",
            "build_model": "resnet:build_model",
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
    ),
    AlgorithmSpec(
        id=transfer_hp.ALGORITHM,
        package="tasks.image_classification_tf",
        channels={
            Step.TRAIN: Channels(required=("training",), optional=("validation", "model")),
            Step.EVALUATE: Channels(required=("model", "validation"), optional=("champion",)),
            Step.TRANSFORM: Channels(required=("model", "data")),
        },
        hyperparameters=transfer_hp.TABLE,
        architecture=transfer_hp.ARCHITECTURE_KEYS,
        primary_metric="accuracy",
        higher_is_better=True,
        per_class_metric="recall",
        environment=TRAINER,
        entry_points={
            "train": "training:train",
            "evaluate": "tasks.image_classification.evaluation:evaluate",
            "predict": "tasks.image_classification.prediction:predict",
            "load_predictor": "tasks.image_classification.serving:load_predictor",
            "build_model": "network:build_model",
            "parse": "hyperparameters:TransferHyperparameters.from_strings",
        },
        smallest={
            "model_id": transfer_hp.DEFAULT_MODEL_ID,
            "num_classes": "2",
            "epochs": "1",
            "batch_size": "4",
        },
        laptop={"epochs": "5", "batch_size": "16", "train_only_top_layer": "True"},
    ),
    AlgorithmSpec(
        id=segmentation_hp.ALGORITHM,
        package="tasks.semantic_segmentation",
        channels={
            Step.TRAIN: Channels(
                required=("train", "validation", "train_annotation", "validation_annotation"),
                optional=("label_map", "model"),
            ),
            Step.EVALUATE: Channels(
                required=("model", "validation"), optional=("validation_annotation", "champion")
            ),
            Step.TRANSFORM: Channels(required=("model", "data")),
        },
        hyperparameters=segmentation_hp.TABLE,
        architecture=segmentation_hp.ARCHITECTURE_KEYS,
        primary_metric="mIoU",
        higher_is_better=True,
        per_class_metric="iou",
        environment=TRAINER,
        entry_points={
            "train": "training:train",
            "evaluate": "evaluation:evaluate",
            "predict": "prediction:predict",
            "load_predictor": "serving:load_predictor",
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
    ),
)

ALGORITHMS: Mapping[str, AlgorithmSpec] = MappingProxyType({a.id: a for a in _ALGORITHMS})


def get_algorithm(algorithm: str) -> AlgorithmSpec:
    """The spec of `algorithm`; an unknown id names every known one."""
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        raise UnknownAlgorithmError(
            f"unknown algorithm {algorithm!r}; known algorithms: {', '.join(ALGORITHMS)}"
        ) from None

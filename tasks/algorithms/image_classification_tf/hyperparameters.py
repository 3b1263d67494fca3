"""image-classification-tf hyperparameters: names, ranges and defaults of the reference algorithm
(defaults of the chosen model_id's registry entry apply before the table's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from tasks.algorithms.image_classification_tf.hub.registry import (
    HubModel,
    UnknownModelError,
    get_model,
    registry,
)
from tasks.hyperparameters import (
    LEARNING_RATE,
    LEARNING_RATE_ALLOWED,
    UNIT,
    Hyperparameter,
    HyperparameterError,
    boolean,
    choice,
    epochs_hyperparameter,
    integer,
    number,
    parse_hyperparameters,
    restore_best_weights_param,
    to_strings,
)
from tasks.limits import MAX_BATCH_SIZE

ALGORITHM = "image-classification-tf"
ARCHITECTURE_KEYS = ("model_id", "num_classes")
DEFAULT_MODEL_ID = "tensorflow-ic-imagenet-mobilenet-v2-100-224-classification-4"
OPTIMIZERS = ("adam", "sgd", "nesterov", "rmsprop", "adagrad", "adadelta")
FLIPS = ("horizontal_and_vertical", "horizontal", "vertical", "None")
INTERPOLATIONS = (
    "bilinear",
    "nearest",
    "bicubic",
    "area",
    "lanczos3",
    "lanczos5",
    "gaussian",
    "mitchellcubic",
)


class ModelId:
    """A model id of the registry (read when used: a deployment may add its own); an unknown
    one is refused with the list of known ids."""

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(sorted(registry()))

    def __call__(self, text: str) -> str:
        return get_model(text).model_id

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


TABLE = (
    Hyperparameter(
        "model_id",
        ModelId(),
        "a model id of the registry (python -m tasks.hub list)",
        DEFAULT_MODEL_ID,
        description="The pre-trained TF Hub model to fine-tune.",
    ),
    Hyperparameter(
        "num_classes",
        integer(2),
        "an integer of at least 2",
        description="Classes; derived from the class folders (given, it must match them).",
    ),
    epochs_hyperparameter("3"),
    Hyperparameter(
        "batch_size",
        integer(1, MAX_BATCH_SIZE),
        f"an integer from 1 to {MAX_BATCH_SIZE}",
        "32",
        description="Batch size per machine, split across its GPUs (global: x machines).",
    ),
    Hyperparameter(
        "learning_rate",
        LEARNING_RATE,
        LEARNING_RATE_ALLOWED,
        "0.001",
        description="Learning rate.",
    ),
    Hyperparameter(
        "optimizer",
        choice(*OPTIMIZERS),
        "one of " + ", ".join(OPTIMIZERS),
        "adam",
        description="Optimizer (nesterov: SGD with Nesterov momentum).",
    ),
    Hyperparameter("beta_1", number(0, 1), UNIT, "0.9", description="Adam's first-moment decay."),
    Hyperparameter(
        "beta_2", number(0, 1), UNIT, "0.999", description="Adam's second-moment decay."
    ),
    Hyperparameter(
        "epsilon",
        number(0, 1),
        UNIT,
        "1e-7",
        description="Epsilon of adam, rmsprop, adadelta and adagrad.",
    ),
    Hyperparameter(
        "momentum", number(0, 1), UNIT, "0.9", description="Momentum of sgd, nesterov and rmsprop."
    ),
    Hyperparameter("rho", number(0, 1), UNIT, "0.95", description="Decay of adadelta and rmsprop."),
    Hyperparameter(
        "initial_accumulator_value",
        number(0, 1),
        UNIT,
        "0.0001",
        description="Starting accumulator of adagrad.",
    ),
    Hyperparameter(
        "dropout_rate", number(0, 1), UNIT, "0.2", description="Dropout before the top layer."
    ),
    Hyperparameter(
        "regularizers_l2",
        number(0, 1),
        UNIT,
        "0.0001",
        description="L2 regularization of the top layer's weights.",
    ),
    Hyperparameter("label_smoothing", number(0, 1), UNIT, "0.1", description="Label smoothing."),
    Hyperparameter(
        "train_only_top_layer",
        boolean,
        "True or False",
        "False",
        description="True: the pre-trained model stays frozen; only the top layer learns.",
    ),
    Hyperparameter(
        "reinitialize_top_layer",
        choice("Auto", "True", "False", case_sensitive=False),
        "Auto, True or False",
        "Auto",
        description="Auto: a fresh top layer when fine-tuning, kept on incremental training.",
    ),
    Hyperparameter(
        "augmentation",
        boolean,
        "True or False",
        "False",
        description="Random flip, rotation and zoom of training images.",
    ),
    Hyperparameter(
        "augmentation_random_flip",
        choice(*FLIPS),
        "one of " + ", ".join(FLIPS),
        "horizontal_and_vertical",
        description="Flip mode of the augmentation (as Keras' RandomFlip; None: no flip).",
    ),
    Hyperparameter(
        "augmentation_random_rotation",
        number(-1, 1),
        "a number in [-1, 1] (fraction of 2 pi)",
        "0.2",
        description="Rotation range of the augmentation, a fraction of a full turn.",
    ),
    Hyperparameter(
        "augmentation_random_zoom",
        number(-1, 1),
        "a number in [-1, 1]",
        "0.1",
        description="Zoom range of the augmentation.",
    ),
    Hyperparameter(
        "image_resize_interpolation",
        choice(*INTERPOLATIONS),
        "one of " + ", ".join(INTERPOLATIONS),
        "bilinear",
        description="How images are resized to the model's input size.",
    ),
    Hyperparameter(
        "early_stopping",
        boolean,
        "True or False",
        "False",
        description="Stop when the validation loss stops improving.",
    ),
    Hyperparameter(
        "early_stopping_min_delta",
        number(0, 1),
        UNIT,
        "0.0",
        description="A smaller change of the validation loss counts as no improvement.",
    ),
    Hyperparameter(
        "early_stopping_patience",
        integer(1),
        "a positive integer",
        "5",
        description="Epochs without improvement before stopping.",
    ),
    restore_best_weights_param("accuracy"),
    Hyperparameter(
        "validation_split_ratio",
        number(0, 1, low_open=True),
        "a number in (0, 1)",
        "0.2",
        description="Fraction of training held out (stratified) when no validation channel.",
    ),
)


@dataclass(frozen=True)
class TransferHyperparameters:
    """Validated hyperparameters; build with `from_strings`."""

    model_id: str
    num_classes: int | None
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    beta_1: float
    beta_2: float
    epsilon: float
    momentum: float
    rho: float
    initial_accumulator_value: float
    dropout_rate: float
    regularizers_l2: float
    label_smoothing: float
    train_only_top_layer: bool
    reinitialize_top_layer: str
    augmentation: bool
    augmentation_random_flip: str
    augmentation_random_rotation: float
    augmentation_random_zoom: float
    image_resize_interpolation: str
    early_stopping: bool
    early_stopping_min_delta: float
    early_stopping_patience: int
    restore_best_weights: bool
    validation_split_ratio: float

    def __post_init__(self) -> None:
        if self.validation_split_ratio >= 1:
            raise HyperparameterError(
                f"hyperparameter 'validation_split_ratio' got {self.validation_split_ratio}; "
                "allowed: a number in (0, 1)"
            )

    @classmethod
    def from_strings(
        cls, raw: Mapping[str, str], *, source: str = "hyperparameters"
    ) -> TransferHyperparameters:
        """Parse `raw`; the model's own defaults (registry) come before the table's."""
        model_id = str(raw.get("model_id", DEFAULT_MODEL_ID)).strip()
        try:
            defaults = get_model(model_id).defaults
        except UnknownModelError as e:
            raise UnknownModelError(f"{source}: hyperparameter 'model_id': {e}") from None
        return cls(**parse_hyperparameters({**defaults, **raw}, TABLE, source=source))

    @property
    def model(self) -> HubModel:
        return get_model(self.model_id)

    def with_classes(self, num_classes: int) -> TransferHyperparameters:
        return replace(self, num_classes=num_classes)

    def architecture(self) -> dict[str, object]:
        """The values that define the network (must match for incremental training)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}

    def to_strings(self) -> dict[str, str]:
        return to_strings(self)

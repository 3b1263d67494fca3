"""image-classification hyperparameters: names, ranges and defaults of the reference algorithm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tasks.backbones.resnet_depths import CIFAR_DEPTHS, IMAGENET_DEPTHS
from tasks.hyperparameters import (
    LEARNING_RATE,
    LEARNING_RATE_ALLOWED,
    UNIT,
    Hyperparameter,
    HyperparameterError,
    Parts,
    choice,
    early_stopping_params,
    epochs_hyperparameter,
    int_list,
    integer,
    integer_choice,
    number,
    parse_hyperparameters,
    restore_best_weights_param,
    to_strings,
)
from tasks.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIDE

DEPTHS = IMAGENET_DEPTHS + CIFAR_DEPTHS
OPTIMIZERS = ("sgd", "adam", "rmsprop", "nag")
AUGMENTATIONS = ("crop", "crop_color", "crop_color_transform")
ALGORITHM = "image-classification"
ARCHITECTURE_KEYS = ("num_layers", "image_shape", "num_classes")


_SIDE = f"an integer from 8 to {MAX_IMAGE_SIDE} (VISION_PIPELINES_MAX_IMAGE_SIDE)"
image_shape = Parts(
    (
        Hyperparameter(
            "image_channels",
            integer_choice(1, 3),
            "1 or 3",
            description="Channels of the network input: 1 (grey) or 3 (colour).",
        ),
        Hyperparameter(
            "image_height",
            integer(8, MAX_IMAGE_SIDE),
            _SIDE,
            description="Height of the network input, in pixels.",
        ),
        Hyperparameter(
            "image_width",
            integer(8, MAX_IMAGE_SIDE),
            _SIDE,
            description="Width of the network input, in pixels.",
        ),
    )
)
""" "channels,height,width" with 1 or 3 channels and sides of 8 to MAX_IMAGE_SIDE pixels."""


TABLE = (
    Hyperparameter(
        "num_classes",
        integer(1),
        "a positive integer",
        required=True,
        description="Number of output classes.",
    ),
    Hyperparameter(
        "num_training_samples",
        integer(1),
        "a positive integer",
        required=True,
        description="Images in the training set; drives the learning-rate schedule.",
    ),
    Hyperparameter(
        "use_pretrained_model",
        integer(0, 1),
        "0 or 1",
        "0",
        description="1: start from ImageNet weights; only the top layer starts fresh.",
    ),
    Hyperparameter(
        "num_layers",
        integer_choice(*DEPTHS),
        "one of " + ", ".join(str(d) for d in DEPTHS),
        "152",
        description="ResNet depth; 20-110 are the small-image (CIFAR) networks.",
    ),
    Hyperparameter(
        "image_shape",
        image_shape,
        f'"channels,height,width", 1 or 3 channels, sides 8 to {MAX_IMAGE_SIDE}, e.g. "3,224,224"',
        "3,224,224",
        description="channels,height,width of the network input (1 or 3 channels).",
    ),
    Hyperparameter(
        "resize",
        integer(1),
        "a positive integer (shorter side in pixels)",
        description="Resize the shorter side to this many pixels first (image input only).",
    ),
    epochs_hyperparameter("30"),
    Hyperparameter(
        "learning_rate",
        LEARNING_RATE,
        LEARNING_RATE_ALLOWED,
        "0.1",
        description="Initial learning rate.",
    ),
    Hyperparameter(
        "lr_scheduler_factor",
        number(0, 1),
        UNIT,
        "0.1",
        description="The learning rate is multiplied by this at each lr_scheduler_step.",
    ),
    Hyperparameter(
        "lr_scheduler_step",
        int_list,
        'comma-separated positive epochs, e.g. "10,20"',
        description="Epochs at which the learning rate drops, e.g. 10,20.",
    ),
    Hyperparameter(
        "optimizer",
        choice(*OPTIMIZERS),
        "one of " + ", ".join(OPTIMIZERS),
        "sgd",
        description="Optimizer (nag: SGD with Nesterov momentum).",
    ),
    Hyperparameter("momentum", number(0, 1), UNIT, "0", description="Momentum of sgd and nag."),
    Hyperparameter(
        "weight_decay", number(0, 1), UNIT, "0.0001", description="Weight decay of sgd and nag."
    ),
    Hyperparameter("beta_1", number(0, 1), UNIT, "0.9", description="Adam's first-moment decay."),
    Hyperparameter(
        "beta_2", number(0, 1), UNIT, "0.999", description="Adam's second-moment decay."
    ),
    Hyperparameter("eps", number(0, 1), UNIT, "1e-8", description="Epsilon of adam and rmsprop."),
    Hyperparameter("gamma", number(0, 1), UNIT, "0.9", description="Decay factor of rmsprop."),
    Hyperparameter(
        "mini_batch_size",
        integer(1, MAX_BATCH_SIZE),
        f"an integer from 1 to {MAX_BATCH_SIZE}",
        "32",
        description="Batch size per machine, split across its GPUs (global: x machines).",
    ),
    Hyperparameter(
        "augmentation_type",
        choice(*AUGMENTATIONS),
        "one of " + ", ".join(AUGMENTATIONS),
        description="crop, crop_color (+ hue/saturation/lightness) or crop_color_transform "
        "(+ rotation, shear, aspect ratio).",
    ),
    Hyperparameter(
        "top_k",
        integer(2),
        "an integer greater than 1",
        description="Also report top-k accuracy.",
    ),
    Hyperparameter(
        "checkpoint_frequency",
        integer(1),
        "a positive integer (epochs)",
        "1",
        description="Epochs between checkpoints (at most epochs).",
    ),
    *early_stopping_params("accuracy", min_epochs="10", patience="5"),
    restore_best_weights_param("accuracy"),
    Hyperparameter(
        "multi_label",
        integer(0, 1),
        "0 or 1",
        "0",
        description="1: several labels per image (set by multi-label manifests).",
    ),
    Hyperparameter(
        "precision_dtype",
        choice("float32", "float16"),
        "float32 or float16",
        "float32",
        description="float16: mixed precision on GPUs.",
    ),
    Hyperparameter(
        "kv_store",
        choice("dist_sync", "dist_async"),
        "dist_sync or dist_async",
        description="dist_sync: synchronous training over several machines.",
    ),
)


# Reference values this engine cannot honour: refused up front, never silently ignored.
_REFUSED = {
    ("kv_store", "dist_async"): "asynchronous parameter updates are not supported; use dist_sync "
    "(synchronous data parallelism over all workers)",
}


@dataclass(frozen=True)
class ImageClassificationHyperparameters:
    """Validated hyperparameters; build with `from_strings`."""

    num_classes: int
    num_training_samples: int
    use_pretrained_model: int
    num_layers: int
    image_shape: tuple[int, int, int]
    resize: int | None
    epochs: int
    learning_rate: float
    lr_scheduler_factor: float
    lr_scheduler_step: tuple[int, ...] | None
    optimizer: str
    momentum: float
    weight_decay: float
    beta_1: float
    beta_2: float
    eps: float
    gamma: float
    mini_batch_size: int
    augmentation_type: str | None
    top_k: int | None
    checkpoint_frequency: int
    early_stopping: bool
    early_stopping_min_epochs: int
    early_stopping_patience: int
    early_stopping_tolerance: float
    restore_best_weights: bool
    multi_label: int
    precision_dtype: str
    kv_store: str | None

    def __post_init__(self) -> None:
        for (name, value), fix in _REFUSED.items():
            if getattr(self, name) == value:
                raise HyperparameterError(f"hyperparameter {name!r}={value!r}: {fix}")
        if self.checkpoint_frequency > self.epochs:
            raise HyperparameterError(
                f"hyperparameter 'checkpoint_frequency' got {self.checkpoint_frequency}; allowed: "
                f"at most epochs ({self.epochs})"
            )
        if self.lr_scheduler_step and list(self.lr_scheduler_step) != sorted(
            set(self.lr_scheduler_step)
        ):
            raise HyperparameterError(
                f"hyperparameter 'lr_scheduler_step' got {self.lr_scheduler_step}; allowed: "
                "strictly increasing epochs"
            )

    @classmethod
    def from_strings(
        cls, raw: Mapping[str, str], *, source: str = "hyperparameters"
    ) -> ImageClassificationHyperparameters:
        return cls(**parse_hyperparameters(raw, TABLE, source=source))

    def architecture(self) -> dict[str, object]:
        """The values that define the network (must match for incremental training)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}

    def to_strings(self) -> dict[str, str]:
        """Back to the managed service's string form (for manifests and reruns)."""
        return to_strings(self)

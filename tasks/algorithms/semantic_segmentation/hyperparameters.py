"""semantic-segmentation hyperparameters: names, ranges and defaults of the reference algorithm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tasks.hyperparameters import (
    LEARNING_RATE,
    LEARNING_RATE_ALLOWED,
    UNIT,
    Hyperparameter,
    HyperparameterError,
    boolean,
    choice,
    early_stopping_params,
    epochs_hyperparameter,
    int_list,
    integer,
    number,
    parse_hyperparameters,
    restore_best_weights_param,
    to_strings,
)
from tasks.limits import MAX_BATCH_SIZE, MAX_IMAGE_SIDE

ALGORITHM = "semantic-segmentation"
ARCHITECTURE_KEYS = ("backbone", "algorithm", "crop_size", "num_classes")
BACKBONES = {"resnet-50": 50, "resnet-101": 101}
HEADS = ("fcn", "psp", "deeplab")
OPTIMIZERS = ("sgd", "adam", "adagrad", "nag", "rmsprop")
SCHEDULERS = ("poly", "cosine", "step")
SIDE = f"an integer from 17 to {MAX_IMAGE_SIDE}"


TABLE = (
    Hyperparameter(
        "backbone",
        choice(*BACKBONES),
        "one of " + ", ".join(BACKBONES),
        "resnet-50",
        description="Encoder: dilated ResNet (output stride 8).",
    ),
    Hyperparameter(
        "use_pretrained_model",
        boolean,
        "True or False",
        "True",
        description="Start the encoder from ImageNet weights (decoders always start fresh).",
    ),
    Hyperparameter(
        "algorithm",
        choice(*HEADS),
        "one of " + ", ".join(HEADS),
        "fcn",
        description="Decoder head: fcn, psp (pyramid pooling) or deeplab (DeepLabV3, ASPP).",
    ),
    Hyperparameter(
        "num_classes",
        integer(2, 254),
        "an integer from 2 to 254",
        required=True,
        description="Classes (annotation value 255 is ignored).",
    ),
    Hyperparameter(
        "num_training_samples",
        integer(1),
        "a positive integer",
        required=True,
        description="Images in the training set; drives the learning-rate schedule.",
    ),
    Hyperparameter(
        "base_size",
        integer(17, MAX_IMAGE_SIDE),
        SIDE,
        "520",
        description="The long side is rescaled to base_size x U(0.5, 2.0) before cropping.",
    ),
    Hyperparameter(
        "crop_size",
        integer(17, MAX_IMAGE_SIDE),
        SIDE + " (rounded up to a multiple of 8)",
        "480",
        description="Side of the random square training crop.",
    ),
    epochs_hyperparameter("30"),
    Hyperparameter(
        "learning_rate",
        LEARNING_RATE,
        LEARNING_RATE_ALLOWED,
        "0.001",
        description="Initial learning rate.",
    ),
    Hyperparameter(
        "lr_scheduler",
        choice(*SCHEDULERS),
        "one of " + ", ".join(SCHEDULERS),
        "poly",
        description="poly (power 0.9), cosine, or step (lr_scheduler_step).",
    ),
    Hyperparameter(
        "lr_scheduler_factor",
        number(0, 1, low_open=True),
        "a number in (0, 1]",
        "0.1",
        description="step: the learning rate is multiplied by this at each step.",
    ),
    Hyperparameter(
        "lr_scheduler_step",
        int_list,
        'comma-separated increasing epochs, e.g. "10,20"',
        description="step: the epochs at which the learning rate drops.",
    ),
    Hyperparameter(
        "optimizer",
        choice(*OPTIMIZERS),
        "one of " + ", ".join(OPTIMIZERS),
        "sgd",
        description="nag: SGD with Nesterov momentum.",
    ),
    Hyperparameter(
        "momentum",
        number(0, 1, low_open=True),
        "a number in (0, 1]",
        "0.9",
        description="Momentum of sgd and nag.",
    ),
    Hyperparameter(
        "weight_decay",
        number(0, 1, low_open=True),
        "a number in (0, 1)",
        "0.0001",
        description="Weight decay of sgd and nag.",
    ),
    Hyperparameter(
        "gamma1", number(0, 1), UNIT, "0.9", description="rmsprop: squared-gradient decay."
    ),
    Hyperparameter("gamma2", number(0, 1), UNIT, "0.9", description="rmsprop: momentum."),
    Hyperparameter(
        "mini_batch_size",
        integer(1, MAX_BATCH_SIZE),
        f"an integer from 1 to {MAX_BATCH_SIZE}",
        "4",
        description="Training batch size per machine, split across its GPUs (global: x machines).",
    ),
    Hyperparameter(
        "validation_mini_batch_size",
        integer(1, MAX_BATCH_SIZE),
        f"an integer from 1 to {MAX_BATCH_SIZE}",
        "4",
        description="Validation batch size (whole images, padded to the batch's largest).",
    ),
    Hyperparameter(
        "syncbn",
        boolean,
        "True or False",
        "False",
        description="Batch-norm statistics across GPUs.",
    ),
    *early_stopping_params("mIoU", min_epochs="5", patience="4"),
    restore_best_weights_param("mIoU"),
)


@dataclass(frozen=True)
class SegmentationHyperparameters:
    """Validated hyperparameters; build with `from_strings`."""

    backbone: str
    use_pretrained_model: bool
    algorithm: str
    num_classes: int
    num_training_samples: int
    base_size: int
    crop_size: int
    epochs: int
    learning_rate: float
    lr_scheduler: str
    lr_scheduler_factor: float
    lr_scheduler_step: tuple[int, ...] | None
    optimizer: str
    momentum: float
    weight_decay: float
    gamma1: float
    gamma2: float
    mini_batch_size: int
    validation_mini_batch_size: int
    syncbn: bool
    early_stopping: bool
    early_stopping_min_epochs: int
    early_stopping_patience: int
    early_stopping_tolerance: float
    restore_best_weights: bool

    def __post_init__(self) -> None:
        # As the reference: the crop side is rounded up to the encoder's stride.
        object.__setattr__(self, "crop_size", -(-self.crop_size // 8) * 8)
        if self.weight_decay >= 1:
            raise HyperparameterError(
                f"hyperparameter 'weight_decay' got {self.weight_decay}; allowed: a number in "
                "(0, 1)"
            )
        if self.crop_size > MAX_IMAGE_SIDE:
            raise HyperparameterError(
                f"hyperparameter 'crop_size' got {self.crop_size} (rounded up to a multiple of "
                f"8); allowed: {SIDE}"
            )
        steps = self.lr_scheduler_step
        if steps and list(steps) != sorted(set(steps)):
            raise HyperparameterError(
                f"hyperparameter 'lr_scheduler_step' got {','.join(map(str, steps))}; allowed: "
                "strictly increasing epochs"
            )
        if self.lr_scheduler == "step" and not steps:
            raise HyperparameterError(
                "hyperparameter 'lr_scheduler_step' is required when lr_scheduler=step "
                '(comma-separated epochs, e.g. "10,20")'
            )

    @classmethod
    def from_strings(
        cls, raw: Mapping[str, str], *, source: str = "hyperparameters"
    ) -> SegmentationHyperparameters:
        return cls(**parse_hyperparameters(raw, TABLE, source=source))

    @property
    def depth(self) -> int:
        return BACKBONES[self.backbone]

    def architecture(self) -> dict[str, object]:
        """The values that define the network (must match for incremental training)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}

    def to_strings(self) -> dict[str, str]:
        return to_strings(self)

"""image-classification hyperparameters: names, ranges and defaults of the reference algorithm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from tasks.hyperparameters import (
    HyperparameterError,
    Param,
    boolean,
    choice,
    int_list,
    integer,
    number,
    parse_hyperparameters,
)

IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "nag")
AUGMENTATIONS = ("crop", "crop_color", "crop_color_transform")
ARCHITECTURE_KEYS = ("num_layers", "image_shape", "num_classes")


def image_shape(text: str) -> tuple[int, int, int]:
    """ "channels,height,width" with 1 or 3 channels and sides of at least 8 pixels."""
    c, h, w = (int(v) for v in text.split(","))
    if c not in (1, 3) or h < 8 or w < 8:
        raise ValueError
    return c, h, w


TABLE = (
    Param("num_classes", integer(1), "a positive integer", required=True),
    Param("num_training_samples", integer(1), "a positive integer", required=True),
    Param("use_pretrained_model", integer(0, 1), "0 or 1", "0"),
    Param(
        "num_layers",
        choice(*(str(d) for d in IMAGENET_DEPTHS + CIFAR_DEPTHS)),
        "one of " + ", ".join(str(d) for d in IMAGENET_DEPTHS + CIFAR_DEPTHS),
        "152",
    ),
    Param("image_shape", image_shape, '"channels,height,width", e.g. "3,224,224"', "3,224,224"),
    Param("resize", integer(1), "a positive integer (shorter side in pixels)"),
    Param("epochs", integer(1), "a positive integer", "30"),
    Param("learning_rate", number(0, 1), "a number in [0, 1]", "0.1"),
    Param("lr_scheduler_factor", number(0, 1), "a number in [0, 1]", "0.1"),
    Param("lr_scheduler_step", int_list, 'comma-separated positive epochs, e.g. "10,20"'),
    Param("optimizer", choice(*OPTIMIZERS), "one of " + ", ".join(OPTIMIZERS), "sgd"),
    Param("momentum", number(0, 1), "a number in [0, 1]", "0"),
    Param("weight_decay", number(0, 1), "a number in [0, 1]", "0.0001"),
    Param("beta_1", number(0, 1), "a number in [0, 1]", "0.9"),
    Param("beta_2", number(0, 1), "a number in [0, 1]", "0.999"),
    Param("eps", number(0, 1), "a number in [0, 1]", "1e-8"),
    Param("gamma", number(0, 1), "a number in [0, 1]", "0.9"),
    Param("mini_batch_size", integer(1), "a positive integer", "32"),
    Param("augmentation_type", choice(*AUGMENTATIONS), "one of " + ", ".join(AUGMENTATIONS)),
    Param("top_k", integer(2), "an integer greater than 1"),
    Param("checkpoint_frequency", integer(1), "a positive integer (epochs)", "1"),
    Param("early_stopping", boolean, "True or False", "False"),
    Param("early_stopping_min_epochs", integer(1), "a positive integer", "10"),
    Param("early_stopping_patience", integer(1), "a positive integer", "5"),
    Param("early_stopping_tolerance", number(0, 1), "a number in [0, 1]", "0.0"),
    Param("multi_label", integer(0, 1), "0 or 1", "0"),
    Param("precision_dtype", choice("float32", "float16"), "float32 or float16", "float32"),
    Param("kv_store", choice("dist_sync", "dist_async"), "dist_sync or dist_async"),
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
        values = parse_hyperparameters(raw, TABLE, source=source)
        values["num_layers"] = int(values["num_layers"])
        return cls(**values)

    def architecture(self) -> dict[str, object]:
        """The values that define the network (must match for incremental training)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_KEYS}

    def to_strings(self) -> dict[str, str]:
        """Back to the managed service's string form (for manifests and reruns)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            out[f.name] = str(value)
        return out

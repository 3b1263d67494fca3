"""Train FCN / PSP / DeepLabV3 from the container contract's channels."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import numpy as np

from tasks.algorithms.semantic_segmentation.dataset import Split, load_splits
from tasks.algorithms.semantic_segmentation.hyperparameters import (
    ALGORITHM,
    SegmentationHyperparameters,
)
from tasks.algorithms.semantic_segmentation.metrics import ConfusionMetric
from tasks.algorithms.semantic_segmentation.network import (
    SegmentationLoss,
    build_training_network,
    encoder_layers,
    use_synchronized_batch_norm,
)
from tasks.algorithms.semantic_segmentation.pipeline import training_dataset, validation_dataset
from tasks.algorithms.semantic_segmentation.serving import export_saved_model
from tasks.backbones.resnet import RGB_MEAN, RGB_STD
from tasks.backbones.weights import copy_layers, imagenet_resnet, restore_model
from tasks.contract import MLRoot, class_names, read_hyperparameters, read_input_data_config
from tasks.training.skeleton import (
    Compiled,
    TrainingPlan,
    early_stopping_of,
    fit,
    manifest_of,
    save,
    steps_per_epoch,
)

log = logging.getLogger("vision_pipelines")
PER_CLASS_LOG = "per_class_iou.jsonl"
POLY_POWER = 0.9


def learning_rate(hp: SegmentationHyperparameters, steps_per_epoch: int):
    """The reference's schedules over the whole run: poly (power 0.9), cosine, or step."""
    total = max(1, hp.epochs * steps_per_epoch)
    schedules = keras.optimizers.schedules
    if hp.lr_scheduler == "poly":
        return schedules.PolynomialDecay(hp.learning_rate, total, 0.0, power=POLY_POWER)
    if hp.lr_scheduler == "cosine":
        return schedules.CosineDecay(hp.learning_rate, total)
    steps = hp.lr_scheduler_step or ()
    return schedules.PiecewiseConstantDecay(
        [e * steps_per_epoch for e in steps],
        [hp.learning_rate * hp.lr_scheduler_factor**i for i in range(len(steps) + 1)],
    )


def build_optimizer(hp: SegmentationHyperparameters, steps_per_epoch: int):
    lr = learning_rate(hp, steps_per_epoch)
    if hp.optimizer in ("sgd", "nag"):
        return keras.optimizers.SGD(
            learning_rate=lr,
            momentum=hp.momentum,
            nesterov=hp.optimizer == "nag",
            weight_decay=hp.weight_decay,
        )
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if hp.optimizer == "adagrad":
        return keras.optimizers.Adagrad(learning_rate=lr)
    return keras.optimizers.RMSprop(learning_rate=lr, rho=hp.gamma1, momentum=hp.gamma2)


class PerClassIoU(keras.callbacks.Callback):
    """Appends each epoch's validation IoU per class to a JSON Lines file (kept on resume)."""

    def __init__(self, metric: ConfusionMetric, class_names: list[str], path):
        super().__init__()
        self.metric, self.class_names, self.path = metric, class_names, path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        iou = self.metric.per_class()
        row = {
            "epoch": epoch + 1,
            "iou": {
                n: None if np.isnan(v) else round(float(v), 6)
                for n, v in zip(self.class_names, iou, strict=True)
            },
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def per_class_history(path) -> dict[int, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            rows[row["epoch"]] = row["iou"]
    return rows


def initial_model(ml: MLRoot, hp: SegmentationHyperparameters) -> keras.Model:
    """From the model channel (incremental), else with an ImageNet encoder, else from scratch."""
    if ml.channel("model").exists():
        log.info("incremental training from the model channel")
        return restore_model(
            ml.channel("model"),
            algorithm=ALGORITHM,
            architecture=hp.architecture(),
            build=lambda: build_training_network(hp),
            network=f"{hp.algorithm} {hp.backbone}",
        )
    model = build_training_network(hp)
    if hp.use_pretrained_model:
        log.info("ImageNet weights for the %s encoder; the decoders start fresh", hp.backbone)
        copy_layers(imagenet_resnet(hp.depth), model, [x.name for x in encoder_layers(model)])
    return model


def _warn_sample_count(hp: SegmentationHyperparameters, train: Split) -> None:
    if len(train) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d images; the learning "
            "rate schedule follows num_training_samples",
            hp.num_training_samples,
            len(train),
        )


def train(ml: MLRoot) -> dict:
    """Validate everything, train, write model.tar.gz and metrics.json; return the metrics."""
    hp = SegmentationHyperparameters.from_strings(
        read_hyperparameters(ml), source=str(ml.hyperparameters_path)
    )
    train_split, val_split = load_splits(
        ml.channel("train").parent, num_classes=hp.num_classes, configs=read_input_data_config(ml)
    )
    _warn_sample_count(hp, train_split)
    names = class_names(ml, hp.num_classes)
    log.info(
        "train: %d pairs, validation: %d pairs, %d classes; %s on %s",
        len(train_split),
        len(val_split),
        hp.num_classes,
        hp.algorithm,
        hp.backbone,
    )
    per_class_path = ml.checkpoints_dir / PER_CLASS_LOG
    trained = fit(ml, _plan(ml, hp, train_split, val_split, names, per_class_path))
    per_class = per_class_history(per_class_path)
    trained.epochs = [
        {**row, "validation_per_class_iou": per_class.get(row["epoch"], {})}
        for row in trained.epochs
    ]
    manifest = manifest_of(
        ALGORITHM,
        trained=trained,
        architecture=hp.architecture(),
        hyperparameters=hp.to_strings(),
        class_names=names,
        input={
            "pixel_range": [0, 255],
            "mean_rgb": list(RGB_MEAN),
            "std_rgb": list(RGB_STD),
            "base_size": hp.base_size,
            "preprocess": "long side resized to base_size (bilinear)",
            "label_map": train_split.label_map.to_json(),
        },
        output={
            "logits": "float32 [height, width, classes] at the working size",
            "size": "int32 [height, width] of the input",
            "ignore_label": 255,
        },
    )
    return save(
        ml,
        trained,
        manifest,
        {"train_samples": len(train_split), "validation_samples": len(val_split)},
        lambda m, path: export_saved_model(m, path, base_size=hp.base_size),
        curve_metric="mIoU",
    )


def _plan(
    ml: MLRoot,
    hp: SegmentationHyperparameters,
    train_split: Split,
    val_split: Split,
    names: list[str],
    per_class_path: Path,
) -> TrainingPlan:
    steps = steps_per_epoch(hp.num_training_samples, hp.mini_batch_size)
    miou = ConfusionMetric(hp.num_classes, "mIoU")

    def build() -> keras.Model:
        model = initial_model(ml, hp)
        if hp.syncbn:
            use_synchronized_batch_norm(model)
        return model

    return TrainingPlan(
        architecture=hp.architecture(),
        build_model=build,
        compile=lambda: Compiled(
            build_optimizer(hp, steps),
            SegmentationLoss(hp.num_classes),
            [miou, ConfusionMetric(hp.num_classes, "pixel_accuracy")],
        ),
        train_data=lambda items: training_dataset(
            train_split.subset(items),
            base_size=hp.base_size,
            crop_size=hp.crop_size,
            batch_size=hp.mini_batch_size,
        ),
        validation_data=validation_dataset(
            val_split, base_size=hp.base_size, batch_size=hp.validation_mini_batch_size
        ),
        train_samples=len(train_split),
        batch_size=hp.mini_batch_size,
        epochs=hp.epochs,
        monitor="mIoU",
        early_stopping=early_stopping_of(hp),
        restore_best_weights=hp.restore_best_weights,
        # No precision_dtype in the reference's table: mixed precision wherever there is a GPU.
        precision="float16",
        callbacks=[PerClassIoU(miou, names, per_class_path)],
        fresh_start=lambda: per_class_path.unlink(missing_ok=True),
    )

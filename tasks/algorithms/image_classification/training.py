"""Train the image-classification ResNet from the container contract's channels."""

from __future__ import annotations

import logging

import keras

from tasks.algorithms.image_classification.data import evaluation_dataset, training_dataset
from tasks.algorithms.image_classification.hyperparameters import (
    ALGORITHM,
    ImageClassificationHyperparameters,
)
from tasks.algorithms.image_classification.initial_weights import pretrained_model, previous_model
from tasks.algorithms.image_classification.network import build_model
from tasks.algorithms.image_classification.serving import export_saved_model
from tasks.backbones.resnet import RGB_MEAN, RGB_STD
from tasks.classification.channels import LabelledImages, load_channel
from tasks.contract import MLRoot, class_names, read_hyperparameters, read_input_data_config
from tasks.data.augmented_manifest import label_format_of
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


def build_optimizer(hp: ImageClassificationHyperparameters, steps_per_epoch: int):
    """The reference's optimizers; lr_scheduler_step (epochs) becomes a step-wise schedule."""
    lr: float | keras.optimizers.schedules.LearningRateSchedule = hp.learning_rate
    if hp.lr_scheduler_step:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[e * steps_per_epoch for e in hp.lr_scheduler_step],
            values=[
                hp.learning_rate * hp.lr_scheduler_factor**i
                for i in range(len(hp.lr_scheduler_step) + 1)
            ],
        )
    if hp.optimizer in ("sgd", "nag"):
        return keras.optimizers.SGD(
            learning_rate=lr,
            momentum=hp.momentum,
            nesterov=hp.optimizer == "nag",
            weight_decay=hp.weight_decay or None,
        )
    if hp.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=lr, beta_1=hp.beta_1, beta_2=hp.beta_2, epsilon=hp.eps
        )
    return keras.optimizers.RMSprop(learning_rate=lr, rho=hp.gamma, epsilon=hp.eps)


def _loss_and_metrics(hp: ImageClassificationHyperparameters, multi_label: bool):
    if multi_label:
        return keras.losses.BinaryCrossentropy(from_logits=True), [
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
            keras.metrics.AUC(curve="PR", multi_label=True, from_logits=True, name="pr_auc"),
        ]
    metrics: list = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if hp.top_k:
        metrics.append(
            keras.metrics.SparseTopKCategoricalAccuracy(k=hp.top_k, name=f"top_{hp.top_k}_accuracy")
        )
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics


def _initial_model(ml: MLRoot, hp: ImageClassificationHyperparameters) -> keras.Model:
    if ml.channel("model").exists():
        log.info("incremental training from the model channel")
        return previous_model(ml.channel("model"), hp)
    if hp.use_pretrained_model:
        log.info("ImageNet weights for resnet%d; the top layer starts fresh", hp.num_layers)
        return pretrained_model(hp)
    return build_model(hp)


def load_channels(
    ml: MLRoot, hp: ImageClassificationHyperparameters
) -> tuple[LabelledImages, LabelledImages, bool]:
    """Train and validation images, labels checked; multi-label per hyperparameter or manifest."""
    config = read_input_data_config(ml)
    content_type = str(config.get("train", {}).get("ContentType", ""))
    multi_label = bool(hp.multi_label) or label_format_of(content_type) is not None
    sets = [
        load_channel(
            ml.channel(name),
            name,
            config=config.get(name, {}),
            num_classes=hp.num_classes,
            multi_label=multi_label,
            lst_dir=ml.channel(f"{name}_lst"),
        )
        for name in ("train", "validation")
    ]
    return sets[0], sets[1], multi_label


def train(ml: MLRoot) -> dict:
    """Validate everything, train, write model.tar.gz and metrics.json; return the metrics."""
    hp = ImageClassificationHyperparameters.from_strings(
        read_hyperparameters(ml), source=str(ml.hyperparameters_path)
    )
    train_set, val_set, multi_label = load_channels(ml, hp)
    if len(train_set) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d images; the learning "
            "rate schedule follows num_training_samples",
            hp.num_training_samples,
            len(train_set),
        )
    log.info(
        "train: %d images, validation: %d images, %d classes%s",
        len(train_set),
        len(val_set),
        hp.num_classes,
        " (multi-label)" if multi_label else "",
    )
    trained = fit(ml, _plan(ml, hp, train_set, val_set, multi_label))
    activation = "sigmoid" if multi_label else "softmax"
    manifest = manifest_of(
        ALGORITHM,
        trained=trained,
        architecture=hp.architecture(),
        multi_label=multi_label,
        hyperparameters=hp.to_strings(),
        class_names=class_names(ml, hp.num_classes),
        input={
            "image_shape": list(hp.image_shape),
            "layout": "CHW",
            "pixel_range": [0, 255],
            "mean_rgb": list(RGB_MEAN),
            "std_rgb": list(RGB_STD),
            "resize": hp.resize,
            "preprocess": "shorter side to resize (if set), scale to cover, centre crop",
        },
        output={"activation": activation, "key": "probabilities"},
    )
    return save(
        ml,
        trained,
        manifest,
        {
            "multi_label": multi_label,
            "train_samples": len(train_set),
            "validation_samples": len(val_set),
        },
        lambda m, path: export_saved_model(
            m, path, image_shape=hp.image_shape, resize=hp.resize, activation=activation
        ),
    )


def _plan(
    ml: MLRoot,
    hp: ImageClassificationHyperparameters,
    train_set: LabelledImages,
    val_set: LabelledImages,
    multi_label: bool,
) -> TrainingPlan:
    steps = steps_per_epoch(hp.num_training_samples, hp.mini_batch_size)

    def compiled() -> Compiled:
        loss, metrics = _loss_and_metrics(hp, multi_label)
        return Compiled(build_optimizer(hp, steps), loss, metrics)

    return TrainingPlan(
        architecture=hp.architecture(),
        build_model=lambda: _initial_model(ml, hp),
        compile=compiled,
        train_data=lambda items: training_dataset(
            train_set.subset(items),
            image_shape=hp.image_shape,
            batch_size=hp.mini_batch_size,
            augmentation=hp.augmentation_type,
            resize=hp.resize,
        ),
        train_samples=len(train_set),
        validation_data=evaluation_dataset(
            val_set, image_shape=hp.image_shape, batch_size=hp.mini_batch_size, resize=hp.resize
        ),
        batch_size=hp.mini_batch_size,
        epochs=hp.epochs,
        monitor="accuracy",
        early_stopping=early_stopping_of(hp),
        restore_best_weights=hp.restore_best_weights,
        precision=hp.precision_dtype,
        checkpoint_every=hp.checkpoint_frequency,
    )

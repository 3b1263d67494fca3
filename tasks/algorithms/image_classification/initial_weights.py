"""Where a model's first weights come from: ImageNet (use_pretrained_model=1) or a previous
model.tar.gz (incremental training, the `model` channel)."""

from __future__ import annotations

from pathlib import Path

import keras

from tasks.algorithms.image_classification.hyperparameters import (
    ALGORITHM,
    ImageClassificationHyperparameters,
)
from tasks.algorithms.image_classification.network import build_model
from tasks.backbones.resnet import build_resnet
from tasks.backbones.weights import copy_layers, imagenet_resnet, restore_model


def pretrained_model(hp: ImageClassificationHyperparameters) -> keras.Model:
    """The ResNet with ImageNet weights everywhere but a freshly initialized top layer `fc`."""
    source = imagenet_resnet(hp.num_layers, hp.image_shape)
    model = build_resnet(hp.num_layers, image_shape=hp.image_shape, num_classes=hp.num_classes)
    copy_layers(
        source,
        model,
        [layer.name for layer in model.layers if layer.name != "fc" and layer.weights],
    )
    return model


def previous_model(model_dir: Path, hp: ImageClassificationHyperparameters) -> keras.Model:
    """The declared ResNet of `hp` with the weights of the `model` channel (restore_model)."""
    return restore_model(
        model_dir,
        algorithm=ALGORITHM,
        architecture=hp.architecture(),
        build=lambda: build_model(hp),
        network=f"resnet{hp.num_layers}",
        multi_label=bool(hp.multi_label),
    )

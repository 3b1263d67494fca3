"""The image-classification network: a ResNet v1 classifier (tasks.backbones.resnet)."""

from __future__ import annotations

import keras

from tasks.backbones.resnet import build_resnet


def build_model(hp) -> keras.Model:
    """The network of validated image-classification hyperparameters (num_layers, image_shape,
    num_classes)."""
    return build_resnet(hp.num_layers, image_shape=hp.image_shape, num_classes=hp.num_classes)

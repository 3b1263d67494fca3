from __future__ import annotations

import numpy as np
import pytest

from tasks.image_classification.hyperparameters import CIFAR_DEPTHS, IMAGENET_DEPTHS
from tasks.image_classification.resnet import RESNETS, build_resnet


def test_every_depth_the_hyperparameters_allow_is_registered():
    assert set(RESNETS) == set(IMAGENET_DEPTHS + CIFAR_DEPTHS)


@pytest.mark.parametrize("depth", sorted(RESNETS))
def test_every_registered_depth_builds_and_predicts(depth):
    model = build_resnet(depth, image_shape=(3, 32, 32), num_classes=5)
    logits = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert logits.shape == (2, 5)
    convs = [
        layer
        for layer in model.layers
        if layer.name.endswith(("_conv", "conv1", "conv2", "conv3")) and "down" not in layer.name
    ]
    # depth = weighted layers on the main path: the convolutions plus the final dense layer.
    assert len(convs) + 1 == depth


@pytest.mark.parametrize(("depth", "params"), [(18, 11_689_512), (50, 25_557_032)])
def test_imagenet_depths_match_the_reference_parameter_counts(depth, params):
    model = build_resnet(depth, image_shape=(3, 224, 224), num_classes=1000)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == params


def test_batch_norm_follows_gluon_defaults():
    model = build_resnet(20, image_shape=(3, 32, 32), num_classes=2)
    bn = model.get_layer("stem_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)


def test_grey_input_and_unknown_depth():
    assert build_resnet(20, image_shape=(1, 24, 24), num_classes=3).input_shape == (None, 24, 24, 1)
    with pytest.raises(ValueError, match="num_layers must be one of"):
        build_resnet(19, image_shape=(3, 32, 32), num_classes=3)

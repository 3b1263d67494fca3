from __future__ import annotations

import numpy as np
import pytest

from tasks.algorithms.image_classification.hyperparameters import CIFAR_DEPTHS, IMAGENET_DEPTHS
from tasks.backbones.resnet import RESNETS, build_resnet


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


@pytest.mark.parametrize(("output_stride", "sides"), [(None, [16, 8, 4, 2]), (8, [16, 8, 8, 8])])
def test_encoder_returns_every_stage_at_its_output_stride(output_stride, sides):
    from tasks.backbones.resnet import build_encoder

    encoder = build_encoder(50, image_shape=(3, 64, 64), output_stride=output_stride)
    stages = encoder.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0)
    assert [s.shape[1] for s in stages] == sides
    assert [s.shape[-1] for s in stages] == [256, 512, 1024, 2048]


def test_dilated_encoder_keeps_the_classifier_weights_and_dilates_as_gluoncv():
    from tasks.backbones.resnet import build_encoder

    classifier = build_resnet(50, image_shape=(3, 64, 64), num_classes=10)
    encoder = build_encoder(50, image_shape=(3, 64, 64), output_stride=8)
    assert encoder.count_params() == classifier.count_params() - (2048 * 10 + 10)
    rates = {
        name: encoder.get_layer(name).dilation_rate
        for name in ("stage3_block1_conv2", "stage3_block2_conv2", "stage4_block1_conv2")
    }
    assert rates == {
        "stage3_block1_conv2": (1, 1),
        "stage3_block2_conv2": (2, 2),
        "stage4_block1_conv2": (2, 2),
    }
    assert encoder.get_layer("stage4_block3_conv2").dilation_rate == (4, 4)
    assert encoder.get_layer("stage3_block1_conv1").strides == (1, 1)
    encoder.set_weights(classifier.get_weights()[:-2])  # same layers, same shapes, same order


def test_an_unsupported_output_stride_is_named():
    with pytest.raises(ValueError, match="output_stride must be one of"):
        build_resnet(20, image_shape=(3, 32, 32), num_classes=2, output_stride=4)


@pytest.mark.parametrize(
    ("kernel", "rates"), [((3, 3), (2, 2)), ((3, 3), (4, 1)), ((5, 3), (3, 6))]
)
def test_shifted_taps_equal_a_dilated_convolution_and_its_gradients(kernel, rates):
    import tensorflow as tf

    from tasks.backbones.resnet import _shifted_taps_conv

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 7, 3)), tf.float32)
    k = tf.Variable(rng.normal(size=(*kernel, 3, 4)), dtype=tf.float32)
    weights = tf.constant(rng.normal(size=(2, 9, 7, 4)), tf.float32)
    outputs, gradients = [], []
    for conv in (
        lambda: tf.nn.convolution(x, k, padding="SAME", dilations=rates),  # Keras' own op
        lambda: _shifted_taps_conv(x, k, rates),
    ):
        with tf.GradientTape() as tape:
            y = conv()
            loss = tf.reduce_sum(y * weights)
        outputs.append(y.numpy())
        gradients.append(tape.gradient(loss, k).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-4, atol=1e-3)

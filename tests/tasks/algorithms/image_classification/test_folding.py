from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from tasks.backbones.folding import fold_batch_norms
from tasks.backbones.resnet import build_encoder, build_resnet


def _with_statistics(model: keras.Model, seed: int = 0) -> keras.Model:
    """`model` with normalizations that do something (fresh ones are nearly the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.5, shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, shape))
    return model


def _outputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    out = model(x, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]


def _norms(model: keras.Model) -> int:
    return sum(isinstance(layer, layers.BatchNormalization) for layer in model.layers)


@pytest.mark.parametrize(
    "model",
    [
        lambda: build_resnet(20, image_shape=(3, 32, 32), num_classes=4),
        lambda: build_resnet(50, image_shape=(3, 64, 64), num_classes=4),
        lambda: build_encoder(18, image_shape=(3, 64, 64), output_stride=8),
    ],
    ids=["resnet20", "resnet50", "dilated-encoder"],
)
def test_a_folded_network_gives_the_same_outputs_without_its_normalizations(model):
    model = _with_statistics(model())
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    x = x[:, : model.input_shape[1], : model.input_shape[2]]
    folded = fold_batch_norms(model)
    assert _norms(model) > 0 and _norms(folded) == 0
    for ours, theirs in zip(_outputs(folded, x), _outputs(model, x), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())
    # The training network is left as it was.
    assert _norms(model) > 0 and not model.get_layer("stem_conv").use_bias


def test_only_a_normalization_that_alone_reads_a_plain_convolution_is_folded():
    inputs = keras.Input((8, 8, 3))
    shared = layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    twice = layers.Add()([layers.BatchNormalization(name="bn_shared")(shared), shared])
    activated = layers.Conv2D(4, 3, padding="same", activation="relu", name="relu_conv")(inputs)
    after_activation = layers.BatchNormalization(name="bn_relu")(activated)
    biased = layers.Conv2D(4, 1, name="biased")(inputs)
    plain = layers.BatchNormalization(center=False, scale=False, name="bn_plain")(biased)
    model = _with_statistics(keras.Model(inputs, [twice, after_activation, plain]))
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            layer.bias.assign(np.random.default_rng(2).normal(0, 1, layer.bias.shape))
    folded = fold_batch_norms(model)
    names = {layer.name for layer in folded.layers}
    assert {"bn_shared", "bn_relu"} <= names and "bn_plain" not in names
    x = np.random.default_rng(3).normal(0, 1, (2, 8, 8, 3)).astype(np.float32)
    for ours, theirs in zip(_outputs(folded, x), _outputs(model, x), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_network_without_foldable_normalizations_is_returned_as_it_is():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    assert fold_batch_norms(model) is model

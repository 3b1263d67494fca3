"""Keras' ImageNet ResNet weights become ours and compute the same predictions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tasks.backbones.convert_weights import convert, main
from tasks.backbones.resnet import build_resnet


def randomized(model: keras.Model, seed: int = 0) -> keras.Model:
    """Random weights everywhere, BatchNorm statistics too (positive variances)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for w in layer.get_weights():
            v = rng.normal(0, 0.05, size=w.shape).astype("float32")
            if isinstance(layer, keras.layers.BatchNormalization) and len(values) >= 2:
                v = np.abs(v) + (0.5 if len(values) == 3 else 0.0)
            values.append(v)
        layer.set_weights(values)
    return model


def test_converted_resnet50_predicts_what_keras_predicts(tmp_path):
    source = randomized(keras.applications.ResNet50(weights=None))
    rgb = np.random.default_rng(1).uniform(0, 255, size=(2, 224, 224, 3)).astype("float32")
    expected = source.predict(keras.applications.resnet.preprocess_input(rgb.copy()), verbose=0)
    ours = convert(source, 50)
    logits = ours.predict(rgb, verbose=0)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-3, atol=1e-5)


def test_command_line_writes_weights_our_model_loads(tmp_path):
    source = keras.applications.ResNet50(weights=None)
    source.save_weights(tmp_path / "keras.weights.h5")
    out = tmp_path / "resnet50_v1_imagenet.weights.h5"
    assert (
        main([str(tmp_path / "keras.weights.h5"), "--num-layers", "50", "--output", str(out)]) == 0
    )
    build_resnet(50, image_shape=(3, 224, 224), num_classes=1000).load_weights(out)


def test_wrong_weights_are_named(tmp_path, capsys):
    build_resnet(18, image_shape=(3, 32, 32), num_classes=10).save_weights(
        tmp_path / "x.weights.h5"
    )
    assert (
        main(
            [
                str(tmp_path / "x.weights.h5"),
                "--num-layers",
                "50",
                "--output",
                str(tmp_path / "o.weights.h5"),
            ]
        )
        == 2
    )
    assert "x.weights.h5: not the weights of keras.applications.ResNet50" in capsys.readouterr().err


@pytest.mark.parametrize("depth", [101, 152])
def test_deeper_keras_resnets_map_layer_for_layer(depth):
    from tasks.backbones.convert_weights import _layer_pairs

    names = {
        layer.name for layer in build_resnet(depth, image_shape=(3, 64, 64), num_classes=10).layers
    }
    pairs = _layer_pairs(depth)
    assert all(conv in names and bn in names for conv, bn, _ in pairs)
    assert len(pairs) == depth - 1 + 4  # every main-path convolution and the 4 shortcuts

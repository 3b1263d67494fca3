"""The networks: every head builds and trains a step, encoder sizes equal our ResNets', adaptive
pooling and strip-wise upsampling agree with their references, scores from a confusion matrix."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tasks.algorithms.semantic_segmentation import masks
from tasks.algorithms.semantic_segmentation.metrics import ConfusionMetric
from tasks.algorithms.semantic_segmentation.network import (
    AdaptiveAveragePooling2D,
    SegmentationLoss,
    build_network,
    encoder_layers,
    inference_network,
)
from tasks.algorithms.semantic_segmentation.scores import confusion, summarize
from tasks.backbones.resnet import build_resnet


@pytest.mark.parametrize("head", ["fcn", "psp", "deeplab"])
def test_each_head_trains_a_step_and_serves_any_size(head):
    keras.utils.set_random_seed(0)
    model = build_network(head, 50, 4)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=SegmentationLoss(4),
        metrics=[ConfusionMetric(4)],
    )
    images = np.random.default_rng(0).uniform(0, 255, (2, 24, 24, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 4, (2, 24, 24))
    labels[:, :3] = 255
    before = [w.numpy().copy() for w in model.trainable_weights[-2:]]
    history = model.fit(images, labels, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.allclose(b, w.numpy())
        for b, w in zip(before, model.trainable_weights[-2:], strict=True)
    )
    logits = inference_network(model)(np.zeros((1, 97, 131, 3), "float32"), training=False)
    assert tuple(logits.shape) == (1, 97, 131, 4)
    assert model.output_shape[-1] == 8  # main and auxiliary logits


@pytest.mark.parametrize("depth", [50, 101])
def test_encoder_parameters_equal_our_resnet_without_its_top(depth):
    resnet = build_resnet(depth, image_shape=(3, 64, 64), num_classes=10)
    expected = resnet.count_params() - resnet.get_layer("fc").count_params()
    network = build_network("fcn", depth, 5)
    assert sum(layer.count_params() for layer in encoder_layers(network)) == expected


def test_the_encoder_has_output_stride_8():
    network = build_network("fcn", 50, 3)
    stage4 = keras.Model(network.inputs, network.get_layer("stage4_block3_out").output)
    assert tuple(stage4(np.zeros((1, 64, 48, 3), "float32")).shape) == (1, 8, 6, 2048)


def test_adaptive_pooling_averages_overlapping_bins():
    x = np.random.default_rng(0).normal(size=(2, 7, 5, 3)).astype("float32")
    pooled = AdaptiveAveragePooling2D(3)(x).numpy()
    for i in range(3):
        top, bottom = (i * 7) // 3, -(-(i + 1) * 7 // 3)
        for j in range(3):
            left, right = (j * 5) // 3, -(-(j + 1) * 5 // 3)
            expected = x[:, top:bottom, left:right].mean(axis=(1, 2))
            assert np.allclose(pooled[:, i, j], expected, atol=1e-6)


def test_strip_upsampling_equals_tensorflows_bilinear_resize(monkeypatch):
    monkeypatch.setattr(masks, "STRIP_BYTES", 4 * 3 * 131 * 7)  # strips of 7 rows
    logits = np.random.default_rng(0).normal(size=(13, 17, 3)).astype("float32")
    expected = tf.image.resize(logits, (97, 131), method="bilinear").numpy()
    rows = np.concatenate([strip for _, strip in masks.strips(logits, (97, 131))])
    assert np.allclose(rows, expected, atol=1e-5)
    assert (masks.upsample(logits, (97, 131)) == expected.argmax(-1)).all()


def test_scores_ignore_unlabelled_pixels_and_absent_classes():
    truth = np.array([[0, 0, 1, 255], [1, 1, 0, 255]])
    predicted = np.array([[0, 1, 1, 2], [1, 1, 0, 0]])
    matrix = confusion(truth, predicted, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 3, 0], [0, 0, 0]]
    scores = summarize(matrix, ["a", "b", "c"])
    assert scores["pixel_accuracy"] == pytest.approx(5 / 6)
    assert scores["per_class"]["c"]["iou"] is None
    assert scores["mIoU"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    metric = ConfusionMetric(3)
    metric.update_state(truth[None], np.eye(3)[predicted][None])
    assert float(metric.result()) == pytest.approx(scores["mIoU"])

"""Keras metrics of the training network: mIoU and pixel accuracy over labelled pixels."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tasks.algorithms.semantic_segmentation.scores import per_class_iou


@keras.saving.register_keras_serializable("vision_pipelines")
class ConfusionMetric(keras.metrics.Metric):
    """Accumulates the confusion matrix of the main logits (the first `num_classes` channels);
    reports `kind`: "mIoU" or "pixel_accuracy"."""

    def __init__(self, num_classes: int, kind: str = "mIoU", **kwargs):
        super().__init__(name=kwargs.pop("name", kind), **kwargs)
        self.num_classes, self.kind = num_classes, kind
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", name="matrix"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.num_classes
        truth = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        predicted = ops.reshape(ops.argmax(y_pred[..., :n], axis=-1), (-1,))
        labelled = ops.logical_and(truth >= 0, truth < n)
        index = ops.where(labelled, truth * n + ops.cast(predicted, "int32"), 0)
        counts = ops.bincount(index, weights=ops.cast(labelled, "float32"), minlength=n * n)
        self.matrix.assign_add(ops.reshape(counts[: n * n], (n, n)))

    def result(self):
        m = self.matrix
        diagonal = ops.diagonal(m)
        if self.kind == "pixel_accuracy":
            return ops.divide_no_nan(ops.sum(diagonal), ops.sum(m))
        union = ops.sum(m, axis=0) + ops.sum(m, axis=1) - diagonal
        present = ops.cast(union > 0, "float32")
        iou = ops.divide_no_nan(diagonal, union)
        return ops.divide_no_nan(ops.sum(iou * present), ops.sum(present))

    def per_class(self) -> np.ndarray:
        """IoU per class of what was accumulated (NaN for a class not seen)."""
        return per_class_iou(ops.convert_to_numpy(self.matrix))

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self) -> dict:
        return {"num_classes": self.num_classes, "kind": self.kind, "name": self.name}

"""Segmentation scores from a confusion matrix (rows: truth, columns: prediction).

mIoU averages the IoU of the classes that occur in the truth or the prediction (a class absent
from both has no IoU); pixel accuracy is the share of labelled pixels predicted right. Pixels
labelled 255 (ignore) are in neither.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """The num_classes x num_classes counts of (truth, prediction) over labelled pixels."""
    keep = truth < num_classes
    index = truth[keep].astype(np.int64) * num_classes + predicted[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_iou(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN for a class neither labelled nor predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    intersection = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


def summarize(matrix: np.ndarray, class_names: list[str]) -> dict:
    """mIoU, pixel accuracy and per-class IoU (JSON-ready: a missing IoU is null)."""
    matrix = np.asarray(matrix)
    iou = per_class_iou(matrix)
    total = matrix.sum()
    return {
        "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "pixel_accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "per_class": {
            name: {
                "iou": None if np.isnan(v) else float(v),
                "pixels": int(matrix[i].sum()),
            }
            for i, (name, v) in enumerate(zip(class_names, iou, strict=True))
        },
    }

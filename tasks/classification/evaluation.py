"""Evaluation of an image classifier: accuracy (top-5 too, beyond 5 classes) and loss, per-class
precision, recall and F1 (multi-label: average precision and mAP), and a confusion-matrix PNG
(single-label)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tasks.atomic import atomic_write_text
from tasks.classification.channels import (
    LabelledImages,
    check_labels,
    from_lst,
    from_manifest,
    from_recordio,
)
from tasks.data.augmented_manifest import MANIFEST_SUFFIXES
from tasks.errors import InputError
from tasks.inference import LoadedModel, find_images, predict_images

TOP_K = 5


def class_folders(root: Path, class_names: list[str]) -> LabelledImages:
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels = [], []
    for path in find_images(root):
        folder = path.parent.relative_to(root).as_posix()
        if folder not in index:
            raise InputError(
                f"{path}: folder {folder!r} is not a class of this model; allowed: "
                + ", ".join(class_names)
            )
        paths.append(str(path))
        labels.append((float(index[folder]),))
    return LabelledImages(
        str(root),
        [Path(p).relative_to(root).as_posix() for p in paths],
        check_labels(labels, paths, num_classes=len(class_names), multi_label=False),
        paths=paths,
    )


def labelled_images(
    path: Path, *, class_names: list[str], multi_label: bool, image_root: Path | None = None
) -> LabelledImages:
    """Labelled images from any of the supported inputs, labels checked against the model."""
    options = {"num_classes": len(class_names), "multi_label": multi_label}
    if path.is_dir():
        recs = sorted(path.glob("*.rec"))
        if len(recs) == 1:
            path = recs[0]
    if not path.exists():
        raise InputError(f"{path}: evaluation input not found")
    if path.suffix == ".rec":
        idx = path.with_suffix(".idx")
        return from_recordio(path, idx if idx.is_file() else None, **options)
    if path.suffix == ".lst":
        return from_lst(path, image_root or path.parent, **options)
    if path.suffix in MANIFEST_SUFFIXES:
        return from_manifest(path, label_format="multi-hot" if multi_label else None, **options)
    if multi_label:
        raise InputError(
            f"{path}: a multi-label model is evaluated on a .rec, .lst or manifest "
            "with multi-hot labels, not on class folders"
        )
    return class_folders(path, class_names)


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn computes it)."""
    if not positives.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positives[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def _per_class(true_positive, predicted, actual, names) -> dict:
    precision = np.divide(true_positive, predicted, out=np.zeros(len(names)), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros(len(names)), where=actual > 0)
    f1 = np.divide(
        2 * precision * recall,
        precision + recall,
        out=np.zeros(len(names)),
        where=(precision + recall) > 0,
    )
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i, name in enumerate(names)
    }


def single_label_metrics(probabilities: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    n = len(names)
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (y, predicted), 1)
    picked = probabilities[np.arange(len(y)), y]
    top_k = {}
    if n > TOP_K:  # how often the true class is among the TOP_K most probable
        ranked = np.argsort(-probabilities, axis=1)[:, :TOP_K]
        top_k[f"top_{TOP_K}_accuracy"] = float((ranked == y[:, None]).any(axis=1).mean())
    return {
        "accuracy": float((predicted == y).mean()),
        **top_k,
        "loss": float(-np.log(np.clip(picked, 1e-12, 1.0)).mean()),
        "per_class": _per_class(np.diag(matrix).astype(float), matrix.sum(0), matrix.sum(1), names),
        "confusion_matrix": matrix.tolist(),
    }


def multi_label_metrics(probabilities: np.ndarray, y: np.ndarray, names: list[str]) -> dict:
    predicted = probabilities >= 0.5
    truth = y > 0.5
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    ap = [average_precision(probabilities[:, i], truth[:, i]) for i in range(len(names))]
    per_class = _per_class(
        (predicted & truth).sum(0).astype(float), predicted.sum(0), truth.sum(0), names
    )
    for name, value in zip(names, ap, strict=True):
        per_class[name]["average_precision"] = value
    return {
        "accuracy": float((predicted == truth).mean()),
        "exact_match": float((predicted == truth).all(axis=1).mean()),
        "loss": float(-(truth * np.log(p) + (~truth) * np.log(1 - p)).mean()),
        "mAP": float(np.nanmean(ap)),
        "per_class": per_class,
    }


def evaluate(
    model: LoadedModel, input_path: Path, output: Path, *, image_root: Path | None = None
) -> dict:
    """Score `model` on the labelled images at `input_path`; write `output` (and the confusion
    matrix beside it) and return the metrics."""
    names = model.class_names
    multi_label = model.manifest.multi_label
    images = labelled_images(
        input_path, class_names=names, multi_label=multi_label, image_root=image_root
    )

    def blobs() -> Iterator[tuple[str, bytes]]:
        for i, name in enumerate(images.names):
            yield name, images.read(i)

    probabilities = np.stack([p for _, p in predict_images(model, blobs(), len(images))])
    compute = multi_label_metrics if multi_label else single_label_metrics
    metrics = {
        "samples": len(images),
        "class_names": names,
        **compute(probabilities, images.labels, names),
    }
    atomic_write_text(output, json.dumps(metrics, indent=2) + "\n")
    if not multi_label:
        from tasks import plots

        plots.confusion_matrix_png(
            np.asarray(metrics["confusion_matrix"]),
            names,
            output.with_name(output.stem + "_confusion_matrix.png"),
        )
    summary = f"mAP {metrics['mAP']:.4f}" if multi_label else f"accuracy {metrics['accuracy']:.4f}"
    print(
        f"{summary}, loss {metrics['loss']:.4f} on {len(images)} images; wrote {output}", flush=True
    )
    return metrics

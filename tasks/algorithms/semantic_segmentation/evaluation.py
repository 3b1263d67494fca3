"""Score a segmentation model on annotated images: mIoU, pixel accuracy and IoU per class at each
image's own size, a confusion-matrix PNG and overlays (image, truth, prediction)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tasks.algorithms.semantic_segmentation.dataset import Split, label_map_of, load_split
from tasks.algorithms.semantic_segmentation.prediction import segment, training_label_map
from tasks.algorithms.semantic_segmentation.scores import confusion, summarize
from tasks.atomic import atomic_write_text
from tasks.data.augmented_manifest import MANIFEST_SUFFIXES
from tasks.data.label_map import LabelMap
from tasks.data.segmentation_layout import raise_problems
from tasks.errors import InputError
from tasks.inference import LoadedModel
from tasks.progress import Progress
from tasks.staging import read_file

OVERLAYS = 4


def evaluation_split(path: Path, model: LoadedModel) -> Split:
    """The annotated images at `path`: a dataset root holding validation/ and
    validation_annotation/ (and maybe label_map/), a folder of images beside its
    `<folder>_annotation/`, or a segmentation manifest (or a folder holding one). Annotations
    are decoded with the dataset's validation label map, else the model's training one."""
    path = Path(path)
    label_map: LabelMap = training_label_map(model)
    if (path / "validation").is_dir():
        if (path / "label_map").is_dir():
            label_map = label_map_of(path / "label_map", "validation")
        images, annotations = path / "validation", path / "validation_annotation"
    elif path.is_dir() and path.with_name(f"{path.name}_annotation").is_dir():
        images, annotations = path, path.with_name(f"{path.name}_annotation")
    elif (
        path.is_file()
        and path.suffix in MANIFEST_SUFFIXES
        or path.is_dir()
        and any(p.suffix in MANIFEST_SUFFIXES for p in path.iterdir())
    ):
        images, annotations = path, path
    else:
        raise InputError(
            f"{path}: expected a folder with validation/ and validation_annotation/, a folder of "
            f"images beside <folder>_annotation/, or a segmentation manifest"
        )
    split, problems = load_split(
        images,
        annotations,
        split="validation",
        num_classes=len(model.class_names),
        label_map=label_map,
    )
    raise_problems(str(path), problems)
    return split


def evaluate(
    model: LoadedModel, input_path: Path, output: Path, *, image_root: Path | None = None
) -> dict:
    """Write `output` (and the PNGs beside it); return the metrics."""
    names = model.class_names
    split = evaluation_split(Path(input_path), model)
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    shown = []
    progress = Progress(len(split), desc="evaluating", unit="images")
    for i, pair in enumerate(split.pairs):
        image, truth = split.read(i)
        predicted = segment(model, pair.image_name, read_file(pair.image))
        matrix += confusion(truth, predicted, len(names))
        if len(shown) < OVERLAYS:
            shown.append((pair.image_name, image, truth, predicted))
        progress.update()
    progress.close()
    metrics = {"samples": len(split), "class_names": names, **summarize(matrix, names)}
    metrics["confusion_matrix"] = matrix.tolist()
    atomic_write_text(output, json.dumps(metrics, indent=2) + "\n")
    from tasks import plots

    plots.confusion_matrix_png(
        matrix, names, output.with_name(output.stem + "_confusion_matrix.png")
    )
    plots.segmentation_overlays(shown, len(names), output.with_name(output.stem + "_overlays.png"))
    print(
        f"mIoU {metrics['mIoU']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} on "
        f"{len(split)} images; wrote {output}",
        flush=True,
    )
    return metrics

"""Batch transform rows of an image classifier: per-class probabilities for every image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tasks.inference import LoadedModel, predict_images


def predict(
    model: LoadedModel,
    images: Iterable[tuple[str, bytes]],
    *,
    total: int,
    output: Path,
    verbose: bool = False,
    progress: bool = True,
) -> Iterator[dict]:
    """{"source-ref": name, "prediction": [p0, p1, ...]} per image, in input order (softmax;
    per-class sigmoid for a multi-label model). `verbose` adds the reference's verbose response:
    "probabilities" (the same list), "labels" (class names by index) and "predicted_label" (the
    most probable class; a multi-label model: every class at 0.5 or above). Writes no files of
    its own beside `output`. `progress`: a progress line in the log."""
    labels = model.class_names
    for name, probabilities in predict_images(model, images, total=total, progress=progress):
        row: dict = {"source-ref": name, "prediction": [float(p) for p in probabilities]}
        if verbose:
            predicted = (
                [label for label, p in zip(labels, probabilities, strict=True) if p >= 0.5]
                if model.manifest.multi_label
                else labels[int(probabilities.argmax())]
            )
            row |= {
                "probabilities": row["prediction"],
                "labels": labels,
                "predicted_label": predicted,
            }
        yield row

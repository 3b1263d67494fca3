"""Batch transform rows of an image classifier: per-class probabilities for every image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from tasks.inference import LoadedModel, predict_images


def predict(
    model: LoadedModel, images: Iterable[tuple[str, bytes]], *, total: int, output: Path
) -> Iterator[dict]:
    """{"source-ref": name, "prediction": [p0, p1, ...]} per image, in input order (softmax;
    per-class sigmoid for a multi-label model). Writes no files of its own beside `output`."""
    for name, probabilities in predict_images(model, images, total=total):
        yield {"source-ref": name, "prediction": [float(p) for p in probabilities]}

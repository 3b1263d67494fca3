"""A segmentation model's real-time responses: the palette mask PNG batch transform writes, or
the per-pixel class probabilities as a float16 HxWxC NumPy `.npy`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tasks.algorithms.semantic_segmentation.masks import save_mask
from tasks.algorithms.semantic_segmentation.prediction import segment
from tasks.serving.responses import REQUEST, Body, Responses

PNG, NPY = "image/png", "application/x-npy"


def respond(model, images: list[bytes], accept: str) -> list[Body]:
    """image/png: class indices as a palette PNG at the image's size; application/x-npy: the
    class probabilities (float16, height x width x classes)."""
    bodies = []
    for image in images:
        with tempfile.TemporaryDirectory(prefix="response-") as tmp:
            npy = Path(tmp) / "probabilities.npy" if accept == NPY else None
            mask = segment(model, REQUEST, image, npy)
            if npy is not None:
                bodies.append((npy.read_bytes(), NPY))
                continue
            png = Path(tmp) / "mask.png"
            save_mask(mask, png)
            bodies.append((png.read_bytes(), PNG))
    return bodies


RESPONSES = Responses(accept=(PNG, NPY), respond=respond)

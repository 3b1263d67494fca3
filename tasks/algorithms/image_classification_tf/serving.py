"""The SavedModel served by batch transform: encoded image bytes in, probabilities out (decode,
resize and softmax inside; the same serving key as image-classification's, so it loads the same
way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from tasks.algorithms.image_classification_tf.data import pixels
from tasks.classification.serving import OUTPUT_KEY

ACTIVATIONS = {"softmax": tf.nn.softmax, "sigmoid": tf.nn.sigmoid, "none": tf.identity}


class _Serving(tf.Module):
    """The serving function and the weights it reads, nothing else: with the Keras model itself
    tracked, saving would also trace and write every layer's own functions (3x the time)."""

    def __init__(self, model: Any, size: tuple[int, int], method: str, activation: str):
        super().__init__()
        self.model_weights = list(model.weights)
        squash = ACTIVATIONS[activation]

        def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
            batch = tf.map_fn(
                lambda blob: pixels(blob, size, method),
                images,
                fn_output_signature=tf.TensorSpec([*size, 3], tf.float32),
            )
            outputs = tf.cast(model(batch, training=False), tf.float32)
            return {OUTPUT_KEY: squash(outputs)}

        self.serve = tf.function(
            serve, input_signature=[tf.TensorSpec([None], tf.string, name="images")]
        )


def export_saved_model(
    model: Any,
    path: Path,
    *,
    size: tuple[int, int],
    method: str = "bilinear",
    activation: str = "softmax",
) -> None:
    """`serving_default(images: string[batch])` -> {"probabilities": float32[batch, classes]};
    `activation` "none" for a model that already returns probabilities."""
    module = _Serving(model, size, method, activation)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})

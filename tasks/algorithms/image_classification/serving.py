"""The SavedModel served by batch transform: encoded image bytes in, probabilities out."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from tasks.algorithms.image_classification.data import preprocess
from tasks.backbones.folding import fold_batch_norms
from tasks.classification.serving import OUTPUT_KEY


def export_saved_model(
    model: keras.Model,
    path: Path,
    *,
    image_shape: tuple[int, int, int],
    resize: int | None = None,
    activation: str = "softmax",
) -> None:
    """`serving_default(images: string[batch])` -> {"probabilities": float32[batch, classes]},
    softmax for single-label models, per-class sigmoid for multi-label ones."""
    squash = tf.nn.sigmoid if activation == "sigmoid" else tf.nn.softmax
    network = fold_batch_norms(model)

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.map_fn(
            lambda b: preprocess(b, image_shape, resize),
            images,
            fn_output_signature=tf.TensorSpec([image_shape[1], image_shape[2], image_shape[0]]),
        )
        logits = tf.cast(network(pixels, training=False), tf.float32)
        return {OUTPUT_KEY: squash(logits)}

    # The endpoint tracks the variables it uses; track() would store each of them twice.
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None], tf.string, name="images")],
    )
    archive.write_out(str(path), verbose=False)

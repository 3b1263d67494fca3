"""The SavedModel served by batch transform: one encoded image in, logits at the working size
(long side = base_size) and the image's own size out. Logits are brought to the input size by
`masks.upsample` in strips, so an image of any size fits in memory."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.algorithms.semantic_segmentation.network import inference_network
from tasks.algorithms.semantic_segmentation.pipeline import working_size
from tasks.backbones.folding import fold_batch_norms
from tasks.saved_model_ops import load_saved_model

LOGITS_KEY, SIZE_KEY = "logits", "size"


def export_saved_model(model: keras.Model, path: Path, *, base_size: int) -> None:
    """`serving_default(image: string)` -> {"logits": float32[h, w, classes] at the working
    size, "size": int32[2], the input's height and width}."""
    network = fold_batch_norms(inference_network(model))

    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.io.decode_image(image, channels=3, expand_animations=False)
        size = tf.shape(pixels)[:2]
        pixels = tf.image.resize(
            tf.cast(pixels, tf.float32), working_size(size[0], size[1], base_size)
        )
        logits = tf.cast(network(pixels[None], training=False), tf.float32)[0]
        return {LOGITS_KEY: logits, SIZE_KEY: size}

    # The endpoint tracks the variables it uses; track() would store each of them twice.
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([], tf.string, name="image")],
    )
    archive.write_out(str(path), verbose=False)


def load_predictor(saved_model_dir: Path):
    """A callable: list of encoded images -> [(logits at the working size, (height, width))]."""
    loaded = load_saved_model(saved_model_dir)
    signature = loaded.signatures["serving_default"]

    def predict(images: list[bytes]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        out = []
        for blob in images:
            result = signature(image=tf.constant(blob, dtype=tf.string))
            height, width = (int(v) for v in result[SIZE_KEY].numpy())
            out.append((result[LOGITS_KEY].numpy(), (height, width)))
        return out

    predict.loaded = loaded  # keeps the SavedModel's variables alive with the function
    return predict

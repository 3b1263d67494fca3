"""The SavedModel served by batch transform: encoded image bytes in, probabilities out."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from tasks.image_classification.data import preprocess

OUTPUT_KEY = "probabilities"


def export_saved_model(
    model: keras.Model, path: Path, *, image_shape: tuple[int, int, int]
) -> None:
    """`serving_default(images: string[batch])` -> {"probabilities": float32[batch, classes]}."""

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.map_fn(
            lambda b: preprocess(b, image_shape),
            images,
            fn_output_signature=tf.TensorSpec([image_shape[1], image_shape[2], image_shape[0]]),
        )
        return {OUTPUT_KEY: tf.nn.softmax(model(pixels, training=False), axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None], tf.string, name="images")],
    )
    archive.write_out(str(path), verbose=False)


def load_predictor(saved_model_dir: Path):
    """A callable: list of encoded images -> numpy probabilities [batch, classes]."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    signature = loaded.signatures["serving_default"]

    def predict(images: list[bytes]):
        return signature(images=tf.constant(images, dtype=tf.string))[OUTPUT_KEY].numpy()

    predict.loaded = loaded  # keeps the SavedModel's variables alive with the function
    return predict

"""How a classifier's SavedModel is served: encoded images in, probabilities under OUTPUT_KEY out
(both classification algorithms export this signature)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tasks.saved_model_ops import load_saved_model

OUTPUT_KEY = "probabilities"


def load_predictor(saved_model_dir: Path):
    """A callable: list of encoded images -> numpy probabilities [batch, classes]."""
    loaded = load_saved_model(saved_model_dir)
    signature = loaded.signatures["serving_default"]

    def predict(images: list[bytes]):
        return signature(images=tf.constant(images, dtype=tf.string))[OUTPUT_KEY].numpy()

    predict.loaded = loaded  # keeps the SavedModel's variables alive with the function
    return predict

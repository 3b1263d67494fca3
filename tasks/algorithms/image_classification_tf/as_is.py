"""A pre-trained TF Hub *classifier* used as is, without fine-tuning: packaged as this
pipeline's model.tar.gz (its own label file), so evaluate and batch transform serve it."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from tasks.algorithms.image_classification_tf.hub.mirror import fetch_module, stage_user_module
from tasks.algorithms.image_classification_tf.hub.registry import get_model
from tasks.algorithms.image_classification_tf.hub.trust import from_trusted_source
from tasks.algorithms.image_classification_tf.hyperparameters import ALGORITHM
from tasks.algorithms.image_classification_tf.network import declared_input_size, load_module
from tasks.algorithms.image_classification_tf.serving import export_saved_model
from tasks.artifact import SAVED_MODEL, ModelManifest, write_artifact
from tasks.errors import InputError
from tasks.training.outputs import frameworks, now


def read_labels(path: Path) -> list[str]:
    """One label per line (blank lines at the end ignored), as TF Hub's label files are."""
    try:
        labels = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the label file ({e})") from e
    if len(labels) < 2 or any(not label.strip() for label in labels):
        raise InputError(f"{path}: expected one non-empty label per line, at least 2 lines")
    return [label.strip() for label in labels]


def package_classifier(
    model_id: str, labels_path: Path, output: Path, *, model: Path | None = None
) -> int:
    """Write `output` (model.tar.gz) serving the classifier of `model_id` (from `model`, a
    SavedModel folder or .tar.gz, else the hub cache or mirror); return its class count."""
    entry = get_model(model_id)
    labels = read_labels(labels_path)
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        if model is None:
            trusted = fetch_module(model_id, "classification", work / "hub")
        else:
            trusted = stage_user_module(model, work / "hub", str(model), trust=from_trusted_source)
        module = load_module(trusted)
        size = declared_input_size(module, (entry.input_size, entry.input_size))
        inputs = tf_keras.Input((*size, 3))
        logits = hub.KerasLayer(module, trainable=False)(inputs)
        outputs = int(logits.shape[-1])
        if len(logits.shape) != 2 or outputs != len(labels):
            raise InputError(
                f"{labels_path}: {len(labels)} labels, but the model returns shape "
                f"{list(logits.shape)}; the label file needs one line per output"
            )
        export_saved_model(tf_keras.Model(inputs, logits), work / SAVED_MODEL, size=size)
        manifest = ModelManifest(
            algorithm=ALGORITHM,
            architecture={"model_id": model_id, "num_classes": outputs},
            class_names=labels,
            hyperparameters={"model_id": model_id},
            input={"size": list(size), "pixel_range": [0, 1], "interpolation": "bilinear"},
            output={"activation": "softmax", "key": "probabilities", "as_is": True},
            frameworks={**frameworks(), "tensorflow": tf.__version__},
            created=now(),
        )
        write_artifact(output, manifest, {SAVED_MODEL: work / SAVED_MODEL})
    return outputs

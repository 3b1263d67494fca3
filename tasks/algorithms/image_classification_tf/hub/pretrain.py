"""A small feature vector module made on this machine (nothing downloaded): a CNN pre-trained as a
classifier on generated shapes, saved as a TF2 hub module, mirrored under a registry id of ours
and pinned in the deployment's registry file. The embedded deployment's form default, so that
image_classification_tf runs offline from its form (`python -m tasks.hub pretrain`)."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras
from PIL import Image

from tasks.algorithms.image_classification_tf.hub.mirror import mirror_uri, pack
from tasks.algorithms.image_classification_tf.hub.trust import module_digest
from tasks.atomic import atomic_write_text
from tasks.data.lst import list_class_folders
from tasks.data.synthetic import make_shapes_dataset
from tasks.errors import InputError
from tasks.staging import upload

log = logging.getLogger("vision_pipelines")
FEATURES = 32
MODEL_ID = "vision-pipelines-ic-shapes-cnn-32-1"
INPUT_SIZE = 32
# Other classes than the demo's filled shapes: fine-tuning on those is a real transfer.
PRETRAINING_CLASSES = (
    "circle_outline",
    "cross_outline",
    "square_outline",
    "triangle_outline",
    "star",
    "star_outline",
)


def feature_extractor(size: int | None = None) -> tf_keras.Model:
    """Three conv blocks and global pooling: [batch, h, w, 3] in [0, 1] -> [batch, FEATURES]."""
    inputs = tf_keras.Input((size, size, 3))
    x = inputs
    for filters in (16, 32, FEATURES):
        x = tf_keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = tf_keras.layers.MaxPooling2D()(x)
    x = tf_keras.layers.BatchNormalization()(x)
    return tf_keras.Model(inputs, tf_keras.layers.GlobalAveragePooling2D()(x))


def class_folder_arrays(root: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every image of `root/<class>/` as [n, size, size, 3] in [0, 1], labels as im2rec lists
    them (sorted class folders)."""
    listing = list_class_folders(root)
    x = []
    for entry in listing.entries:
        with Image.open(root / entry.path) as img:
            x.append(np.asarray(img.convert("RGB").resize((size, size)), np.float32) / 255)
    return np.stack(x), np.asarray([int(e.labels[0]) for e in listing.entries])


def save_feature_vector(
    path: Path,
    *,
    pretrain_on: Path | None = None,
    size: int = INPUT_SIZE,
    fixed_size: bool = False,
    epochs: int = 30,
    seed: int = 0,
) -> Path:
    """A feature vector module at `path`; pre-trained as a classifier on `pretrain_on`'s class
    folders when given (random weights otherwise)."""
    tf_keras.utils.set_random_seed(seed)
    extractor = feature_extractor(size if fixed_size else None)
    if pretrain_on is not None:
        x, y = class_folder_arrays(pretrain_on, size)
        classifier = tf_keras.Sequential(
            [tf_keras.Input((size, size, 3)), extractor, tf_keras.layers.Dense(int(y.max()) + 1)]
        )
        classifier.compile(
            optimizer=tf_keras.optimizers.Adam(0.01),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = classifier.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
        log.info(
            "pre-trained on %d images of %d classes, %d epochs: accuracy %.4f",
            len(y),
            int(y.max()) + 1,
            epochs,
            history.history["accuracy"][-1],
        )
    tf.saved_model.save(extractor, str(path))
    return path


def registry_entry(model_id: str, digest: str) -> dict:
    """Our module's entry in a deployment registry (hub/registry.py's format), pinned."""
    return {
        "model_id": model_id,
        "name": f"Small CNN pre-trained on generated shapes, {INPUT_SIZE} px (made here)",
        "feature_vector": f"vision-pipelines/{model_id}/feature_vector",
        "classification": "",
        "input_size": INPUT_SIZE,
        "defaults": {},
        "sha256": {"feature_vector": digest},
    }


def add_to_registry(registry_file: Path, entry: dict) -> None:
    """Add or replace `entry` in a deployment registry file (created when missing)."""
    models: list[dict] = []
    if registry_file.exists():
        try:
            models = json.loads(registry_file.read_text(encoding="utf-8"))["models"]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(
                f"{registry_file}: not a model registry ({e}); expected "
                '{"models": [...]}; remove it or fix it'
            ) from e
    models = [m for m in models if m.get("model_id") != entry["model_id"]] + [entry]
    registry_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(registry_file, json.dumps({"models": models}, indent=1) + "\n")


def publish_pretrained(
    mirror: str,
    registry_file: Path,
    *,
    model_id: str = MODEL_ID,
    per_class: int = 100,
    epochs: int = 10,
    seed: int = 0,
) -> str:
    """Pre-train the module on generated shapes, put it in `mirror` as `model_id` and pin it in
    `registry_file`; return its mirror URI."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_shapes_dataset(
            work / "shapes",
            per_class=per_class,
            size=INPUT_SIZE,
            classes=PRETRAINING_CLASSES,
            seed=seed + 1,
        )
        module = save_feature_vector(work / "module", pretrain_on=data, epochs=epochs, seed=seed)
        archive = work / "feature_vector.tar.gz"
        pack(module, archive)
        uri = upload(archive, mirror_uri(model_id, "feature_vector", mirror.rstrip("/")))
        add_to_registry(registry_file, registry_entry(model_id, module_digest(module)))
    return uri

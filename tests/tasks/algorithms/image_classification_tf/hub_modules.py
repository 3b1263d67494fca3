"""Tiny TF Hub modules the tests build themselves (nothing is downloaded): a feature vector
(optionally pre-trained on a class-folder dataset) and a classifier, saved as TF2 SavedModels
the way hub modules are. `python hub_modules.py OUT.tar.gz` writes a feature vector module as
tfhub.dev serves it (for tests that run outside the trainer environment)."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
from pathlib import Path

import tensorflow as tf
import tf_keras

from tasks.algorithms.image_classification_tf.hub.pretrain import (
    FEATURES,
    feature_extractor,
    save_feature_vector,
)

__all__ = ["save_feature_vector"]


class _Payload(tf.Module):
    """A feature vector whose call also reads a file and writes another: the attack of a
    SavedModel that is code."""

    def __init__(self, read: str, write: str):
        super().__init__()
        self.read, self.write = read, write
        self.kernel = tf.Variable(tf.ones([3, FEATURES]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        tf.io.write_file(self.write, tf.io.read_file(self.read))
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel)


class _Smuggler(tf.Module):
    """A feature vector whose call also runs `extra()` (ops the allow-list must refuse)."""

    def __init__(self, extra):
        super().__init__()
        self.extra = extra
        self.kernel = tf.Variable(tf.ones([3, FEATURES]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        self.extra()  # kept in the function's graph, used or not
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.kernel)


def save_smuggler_module(path: Path, extra) -> Path:
    """A hub-shaped module whose call runs `extra` too."""
    tf.saved_model.save(_Smuggler(extra), str(path))
    return path


def save_payload_module(path: Path, *, read: str, write: str) -> Path:
    """A hub-shaped module that copies `read` to `write` when it is called."""
    tf.saved_model.save(_Payload(read, write), str(path))
    return path


def save_classifier(path: Path, num_classes: int, *, size: int = 32) -> Path:
    """A classification module (logits, as TF Hub's classifiers return them)."""
    tf_keras.utils.set_random_seed(1)
    model = tf_keras.Sequential(
        [tf_keras.Input((size, size, 3)), feature_extractor(), tf_keras.layers.Dense(num_classes)]
    )
    tf.saved_model.save(model, str(path))
    return path


def tar_module(folder: Path, tar_path: Path) -> Path:
    """A module as tfhub.dev serves it compressed: its files at the top of a .tar.gz."""
    with tarfile.open(tar_path, "w:gz") as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(folder).as_posix())
    return tar_path


def into_cache(folder: Path, cache: Path, handle: str) -> Path:
    """`folder` where tensorflow_hub's cache keeps `handle` (TFHUB_CACHE_DIR layout)."""
    target = cache / hashlib.sha1(handle.encode("utf-8")).hexdigest()
    shutil.copytree(folder, target, dirs_exist_ok=True)
    return target


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(sys.argv[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        tar_module(save_feature_vector(Path(tmp) / "module"), target)

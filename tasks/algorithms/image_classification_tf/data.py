"""tf.data input of the transfer-learning trainer: parallel decode, resize with the chosen
interpolation, pixels in [0, 1] (TF Hub's image convention), cached in memory when they fit."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tf_keras
from PIL import Image

from tasks.algorithms.image_classification_tf.hyperparameters import TransferHyperparameters
from tasks.data.class_folders import ClassFolders
from tasks.limits import fits_in_cache

AUTOTUNE = tf.data.AUTOTUNE


def pixels(blob: tf.Tensor, size: tuple[int, int], method: str) -> tf.Tensor:
    """Encoded JPEG/PNG bytes -> float32 [height, width, 3] in [0, 1] (training and serving)."""
    image = tf.io.decode_image(blob, channels=3, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, size, method=method)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [*size, 3])


def image_dataset(
    dataset: ClassFolders, root: Path, *, size: tuple[int, int], method: str
) -> tf.data.Dataset:
    """(pixels, one-hot label) per image, in dataset order."""
    paths = [str(root / rel) for rel, _ in dataset.images]
    labels = [label for _, label in dataset.images]
    depth = len(dataset.classes)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
        lambda path, label: (
            pixels(tf.io.read_file(path), size, method),
            tf.one_hot(label, depth),
        ),
        num_parallel_calls=AUTOTUNE,
    )
    return ds.cache() if fits_in_cache(len(paths) * size[0] * size[1] * 3 * 4) else ds


def common_size(dataset: ClassFolders, root: Path) -> tuple[int, int] | None:
    """The (height, width) every image of `dataset` has, from their headers; None when they
    differ."""
    sizes = set()
    for rel, _ in dataset.images:
        with Image.open(root / rel) as img:
            sizes.add((img.height, img.width))
        if len(sizes) > 1:
            return None
    return sizes.pop() if sizes else None


def augmentation(hp: TransferHyperparameters) -> tf_keras.Sequential | None:
    """Random flip, rotation and zoom (Keras' preprocessing layers), or None."""
    if not hp.augmentation:
        return None
    layers = []
    if hp.augmentation_random_flip != "None":
        layers.append(tf_keras.layers.RandomFlip(hp.augmentation_random_flip))
    if hp.augmentation_random_rotation:
        layers.append(tf_keras.layers.RandomRotation(hp.augmentation_random_rotation))
    if hp.augmentation_random_zoom:
        layers.append(tf_keras.layers.RandomZoom(hp.augmentation_random_zoom))
    return tf_keras.Sequential(layers, name="augmentation") if layers else None


def batches(
    ds: tf.data.Dataset,
    batch_size: int,
    *,
    shuffle: int = 0,
    augment: tf_keras.Sequential | None = None,
    seed: int = 100,
) -> tf.data.Dataset:
    """Shuffled (when `shuffle` > 0), batched, augmented on the fly, prefetched."""
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)

"""tf.data input as GluonCV trains: the long side rescaled to base_size x U(0.5, 2.0), padded
with the ignore label to the crop, a random crop, a horizontal flip and a light blur; validation
on whole images at the working size that inference uses (long side = base_size)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tasks.algorithms.semantic_segmentation.dataset import Split
from tasks.algorithms.semantic_segmentation.scores import IGNORE
from tasks.limits import fits_in_cache

AUTOTUNE = tf.data.AUTOTUNE


def working_size(height: tf.Tensor, width: tf.Tensor, base_size: int) -> tf.Tensor:
    """[height, width] scaled so that the long side is `base_size` (aspect kept)."""
    scale = tf.cast(base_size, tf.float32) / tf.cast(tf.maximum(height, width), tf.float32)
    size = tf.round(tf.cast(tf.stack([height, width]), tf.float32) * scale)
    return tf.maximum(tf.cast(size, tf.int32), 1)


def resize_pair(image: tf.Tensor, mask: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Pixels bilinearly (float32), class indices by nearest neighbour."""
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
    return image, mask


def decoded(split: Split) -> tf.Tensor:
    """(uint8 pixels HxWx3, uint8 classes HxW) per pair, in order; kept in memory when the
    split fits VISION_PIPELINES_CACHE_BYTES."""

    def read(i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return split.read(int(i))

    ds = tf.data.Dataset.range(len(split)).map(
        lambda i: tf.numpy_function(read, [i], (tf.uint8, tf.uint8), stateful=False),
        num_parallel_calls=AUTOTUNE,
    )
    ds = ds.map(
        lambda image, mask: (
            tf.ensure_shape(image, [None, None, 3]),
            tf.ensure_shape(mask, [None, None]),
        )
    )
    return ds.cache() if fits_in_cache(sum(w * h * 4 for w, h in split.sizes)) else ds


def _blur(image: tf.Tensor) -> tf.Tensor:
    """Gaussian blur of radius U(0, 1) (5 taps, separable), as PIL's GaussianBlur in GluonCV."""
    sigma = tf.random.uniform([], 0.05, 1.0)
    taps = tf.range(-2.0, 3.0)
    kernel = tf.exp(-(taps**2) / (2.0 * sigma**2))
    kernel /= tf.reduce_sum(kernel)
    x = image[None]
    rows = tf.tile(tf.reshape(kernel, [5, 1, 1, 1]), [1, 1, 3, 1])
    cols = tf.tile(tf.reshape(kernel, [1, 5, 1, 1]), [1, 1, 3, 1])
    x = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, rows, [1, 1, 1, 1], "VALID")
    x = tf.nn.depthwise_conv2d(x, cols, [1, 1, 1, 1], "VALID")
    return x[0]


def augment(
    image: tf.Tensor, mask: tf.Tensor, *, base_size: int, crop_size: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """One random training crop (float32 pixels 0..255, uint8 classes) of a decoded pair."""
    shape = tf.shape(mask)
    long_side = tf.random.uniform([], int(base_size * 0.5), int(base_size * 2.0) + 1, tf.int32)
    image, mask = resize_pair(image, mask, working_size(shape[0], shape[1], long_side))
    size = tf.shape(mask)
    pad_h, pad_w = tf.maximum(crop_size - size[0], 0), tf.maximum(crop_size - size[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
    mask = tf.pad(mask, [[0, pad_h], [0, pad_w]], constant_values=IGNORE)
    size = tf.shape(mask)
    top = tf.random.uniform([], 0, size[0] - crop_size + 1, tf.int32)
    left = tf.random.uniform([], 0, size[1] - crop_size + 1, tf.int32)
    image = image[top : top + crop_size, left : left + crop_size]
    mask = mask[top : top + crop_size, left : left + crop_size]
    flip = tf.random.uniform([]) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    mask = tf.cond(flip, lambda: mask[:, ::-1], lambda: mask)
    image = tf.cond(tf.random.uniform([]) < 0.5, lambda: _blur(image), lambda: image)
    return tf.ensure_shape(image, [crop_size, crop_size, 3]), tf.ensure_shape(
        mask, [crop_size, crop_size]
    )


def training_dataset(
    split: Split, *, base_size: int, crop_size: int, batch_size: int, seed: int = 7
) -> tf.data.Dataset:
    """Shuffled, augmented, batched crops."""
    return (
        decoded(split)
        .shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        .map(
            lambda image, mask: augment(image, mask, base_size=base_size, crop_size=crop_size),
            num_parallel_calls=AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )


def validation_dataset(split: Split, *, base_size: int, batch_size: int) -> tf.data.Dataset:
    """Whole images at the working size, padded to the batch's largest (padding is ignored)."""

    def working(image, mask):
        shape = tf.shape(mask)
        return resize_pair(image, mask, working_size(shape[0], shape[1], base_size))

    return (
        decoded(split)
        .map(working, num_parallel_calls=AUTOTUNE)
        .padded_batch(
            batch_size,
            padding_values=(tf.constant(0.0), tf.constant(IGNORE, tf.uint8)),
        )
        .prefetch(AUTOTUNE)
    )

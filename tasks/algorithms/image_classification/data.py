"""Training input in `tf.data` from a channel's labelled images, and the one preprocessing function.

Image files are read by TensorFlow; RecordIO images by offset over an mmap. Decoding, resizing and
augmentation run in parallel in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tasks.classification.channels import LabelledImages
from tasks.data.recordio_format import RecordIOReader, unpack
from tasks.settings import setting

SHUFFLE_BUFFER_BYTES = setting("VISION_PIPELINES_SHUFFLE_BUFFER_BYTES")
"""Encoded images a streamed channel shuffles within (staged ones shuffle over all of them)."""


def shuffle_buffer(images: LabelledImages) -> int:
    """Records a streamed RecordIO channel shuffles within: all of them when they fit in
    SHUFFLE_BUFFER_BYTES, as many as fit otherwise (their mean size from the offsets)."""
    count = len(images)
    if count < 2:
        return 1
    mean = max(1, int(images.offsets[-1] - images.offsets[0]) // (count - 1))
    return max(1, min(count, SHUFFLE_BUFFER_BYTES // mean))


def _streamed(images: LabelledImages) -> Iterator[tuple[bytes, np.ndarray]]:
    """The records of a streamed channel in file order, read afresh (each epoch re-reads)."""
    with RecordIOReader(images.rec_path) as reader:
        for offset, label in zip(images.offsets, images.labels, strict=True):
            yield unpack(reader.read_at(int(offset)).payload)[1], label


def image_dataset(
    images: LabelledImages, *, shuffle: bool = False, seed: int | None = None
) -> tf.data.Dataset:
    """(encoded image, label) pairs in channel order, or shuffled anew each epoch.

    Staged images are shuffled by index before they are read (the buffer holds numbers, not
    images) and read in parallel; streamed RecordIO (Pipe input mode) is read in file order and
    shuffled within a buffer, as the reference's record iterator does."""
    if images.streamed and images.paths is None:
        label = images.labels
        ds = tf.data.Dataset.from_generator(
            lambda: _streamed(images),
            output_signature=(
                tf.TensorSpec([], tf.string),
                tf.TensorSpec(label.shape[1:], tf.as_dtype(label.dtype)),
            ),
        ).apply(tf.data.experimental.assert_cardinality(len(images)))  # known, as staged data's
        if shuffle:
            ds = ds.shuffle(shuffle_buffer(images), seed=seed, reshuffle_each_iteration=True)
        return ds
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(images)), images.labels))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if images.paths is not None and not any(p.startswith("s3://") for p in images.paths):
        paths = tf.constant(images.paths)
        return ds.map(
            lambda i, label: (tf.io.read_file(tf.gather(paths, i)), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    reader = RecordIOReader(images.rec_path) if images.rec_path is not None else None

    def read(i: np.int64) -> bytes:
        return images.read(int(i), reader)

    def lookup(i, label):
        image = tf.numpy_function(read, [i], tf.string, stateful=False)
        return tf.ensure_shape(image, []), label

    return ds.map(lookup, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def decode(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def resize_to_cover(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Scale (aspect kept) so the image just covers height x width."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.maximum(height / shape[0], width / shape[1])
    size = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    return tf.image.resize(image, size, antialias=True)


def resize_shorter(image: tf.Tensor, size: int) -> tf.Tensor:
    """The `resize` hyperparameter: the shorter side becomes `size`, aspect kept."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    return tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32), antialias=True)


def _decoded(image_bytes: tf.Tensor, channels: int, resize: int | None) -> tf.Tensor:
    image = tf.cast(decode(image_bytes, channels), tf.float32)
    return resize_shorter(image, resize) if resize else image


def preprocess(
    image_bytes: tf.Tensor, image_shape: tuple[int, int, int], resize: int | None = None
) -> tf.Tensor:
    """Decode, (resize), scale to cover, centre-crop: float32 pixels in [0, 255].

    The same function prepares evaluation batches, un-augmented training batches and requests."""
    channels, height, width = image_shape
    image = resize_to_cover(_decoded(image_bytes, channels, resize), height, width)
    return tf.image.resize_with_crop_or_pad(image, height, width)


def _random_crop_flip(image: tf.Tensor, image_shape: tuple[int, int, int]) -> tf.Tensor:
    """A random crop at native scale (scaled up first if smaller) and a random mirror."""
    channels, height, width = image_shape
    shape = tf.shape(image)
    image = tf.cond(
        tf.logical_or(shape[0] < height, shape[1] < width),
        lambda: resize_to_cover(image, height, width),
        lambda: image,
    )
    image = tf.image.random_crop(image, [height, width, channels])
    return tf.image.random_flip_left_right(image)


def _random_color(image: tf.Tensor) -> tf.Tensor:
    """Hue, saturation and lightness offsets within [-36, 36], [-50, 50], [-50, 50] (the
    reference's HLS ranges, hue on OpenCV's 0-180 scale)."""
    if image.shape[-1] == 3:
        image = tf.image.random_hue(image / 255.0, 36 / 180 / 2) * 255.0
        gray = tf.reduce_mean(image, axis=-1, keepdims=True)
        saturation = 1.0 + tf.random.uniform([], -50.0, 50.0) / 128.0
        image = gray + (image - gray) * saturation
    image = image + tf.random.uniform([], -50.0, 50.0)
    return tf.clip_by_value(image, 0.0, 255.0)


def _random_affine(image: tf.Tensor) -> tf.Tensor:
    """Rotation up to 10 degrees, shear up to 0.1 and aspect-ratio change up to 0.25, about
    the centre."""
    angle = tf.random.uniform([], -10.0, 10.0) * np.pi / 180
    shear = tf.random.uniform([], -0.1, 0.1)
    ratio = tf.sqrt(tf.random.uniform([], 0.75, 1.25))
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output -> input mapping: inverse of scale(ratio, 1/ratio) . shear . rotation.
    a00, a01 = cos / ratio, (-sin + shear * cos) / ratio
    a10, a11 = sin * ratio, (cos + shear * sin) * ratio
    h, w = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    transform = tf.stack(
        [a00, a01, cx - a00 * cx - a01 * cy, a10, a11, cy - a10 * cx - a11 * cy, 0.0, 0.0]
    )
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return out[0]


def augment(
    image_bytes: tf.Tensor,
    image_shape: tuple[int, int, int],
    augmentation: str,
    resize: int | None = None,
) -> tf.Tensor:
    """augmentation_type crop, crop_color or crop_color_transform, as the reference defines them."""
    image = _decoded(image_bytes, image_shape[0], resize)
    if augmentation == "crop_color_transform":
        image = _random_affine(image)
    image = _random_crop_flip(image, image_shape)
    if augmentation in ("crop_color", "crop_color_transform"):
        image = _random_color(image)
    return image


def training_dataset(
    images: LabelledImages,
    *,
    image_shape: tuple[int, int, int],
    batch_size: int,
    augmentation: str | None,
    resize: int | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    ds = image_dataset(images, shuffle=True, seed=seed)
    if augmentation:
        ds = ds.map(
            lambda b, y: (augment(b, image_shape, augmentation, resize), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(
            lambda b, y: (preprocess(b, image_shape, resize), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    images: LabelledImages,
    *,
    image_shape: tuple[int, int, int],
    batch_size: int,
    resize: int | None = None,
) -> tf.data.Dataset:
    ds = image_dataset(images).map(
        lambda b, y: (preprocess(b, image_shape, resize), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

"""Training input: RecordIO channels read into `tf.data`, and the one image preprocessing function.

Record headers are scanned once up front (labels checked before any training step); image bytes
are then read by offset over an mmap and decoded in parallel by TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tasks.data.recordio import RecordIOReader, read_index, unpack
from tasks.errors import InputError


class ChannelError(InputError):
    """A channel folder whose content the algorithm cannot use."""


def find_recordio(channel_dir: Path, channel: str) -> tuple[Path, Path | None]:
    """The one `.rec` of a channel and its `.idx` when present beside it."""
    if not channel_dir.is_dir():
        raise ChannelError(f"channel {channel!r}: folder {channel_dir} does not exist")
    recs = sorted(channel_dir.rglob("*.rec"))
    if len(recs) != 1:
        found = ", ".join(p.name for p in recs) or "none"
        raise ChannelError(
            f"channel {channel!r}: expected exactly one .rec file in {channel_dir}, found {found}"
        )
    idx = recs[0].with_suffix(".idx")
    return recs[0], idx if idx.is_file() else None


@dataclass(frozen=True)
class RecordSet:
    """Offsets and integer labels of every image record of one `.rec`."""

    rec_path: Path
    offsets: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets)

    @classmethod
    def open(cls, rec_path: Path, idx_path: Path | None, *, num_classes: int) -> RecordSet:
        """Scan headers; every label must be one integer in [0, num_classes)."""
        offsets, labels = [], []
        with RecordIOReader(rec_path) as reader:
            if idx_path is not None:
                records = (reader.read_at(off) for off in read_index(idx_path).values())
            else:
                records = iter(reader)
            for record in records:
                where = f"{rec_path} at byte offset {record.offset}"
                header, _ = unpack(record.payload, where=where)
                if len(header.label) != 1:
                    raise ChannelError(
                        f"{where}: record {header.id} has {len(header.label)} labels; "
                        "single-label training needs exactly one per record"
                    )
                label = header.label[0]
                if label != int(label) or not 0 <= label < num_classes:
                    raise ChannelError(
                        f"{where}: record {header.id} has label {label:g}; allowed: integers "
                        f"0..{num_classes - 1} (num_classes={num_classes})"
                    )
                offsets.append(record.offset)
                labels.append(int(label))
        if not offsets:
            raise ChannelError(f"{rec_path}: holds no records")
        return cls(rec_path, np.asarray(offsets, np.int64), np.asarray(labels, np.int32))

    def image_bytes(self) -> tf.data.Dataset:
        """(encoded image, label) pairs in file order."""
        reader = RecordIOReader(self.rec_path)

        def read(offset: np.int64) -> bytes:
            return unpack(reader.read_at(int(offset)).payload)[1]

        def lookup(offset, label):
            image = tf.numpy_function(read, [offset], tf.string, stateful=False)
            return tf.ensure_shape(image, []), label

        ds = tf.data.Dataset.from_tensor_slices((self.offsets, self.labels))
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


def preprocess(image_bytes: tf.Tensor, image_shape: tuple[int, int, int]) -> tf.Tensor:
    """Decode, resize to cover, centre-crop: float32 pixels in [0, 255]. Training, eval, serving."""
    channels, height, width = image_shape
    image = resize_to_cover(tf.cast(decode(image_bytes, channels), tf.float32), height, width)
    return tf.image.resize_with_crop_or_pad(image, height, width)


def augment_crop(image_bytes: tf.Tensor, image_shape: tuple[int, int, int]) -> tf.Tensor:
    """augmentation_type=crop: a random crop at native scale (after covering) and a random flip."""
    channels, height, width = image_shape
    image = tf.cast(decode(image_bytes, channels), tf.float32)
    shape = tf.shape(image)
    image = tf.cond(
        tf.logical_or(shape[0] < height, shape[1] < width),
        lambda: resize_to_cover(image, height, width),
        lambda: image,
    )
    image = tf.image.random_crop(image, [height, width, channels])
    return tf.image.random_flip_left_right(image)


def training_dataset(
    records: RecordSet,
    *,
    image_shape: tuple[int, int, int],
    batch_size: int,
    augmentation: str | None,
    seed: int | None = None,
) -> tf.data.Dataset:
    ds = records.image_bytes().shuffle(len(records), seed=seed, reshuffle_each_iteration=True)
    transform = augment_crop if augmentation == "crop" else preprocess
    ds = ds.map(lambda b, y: (transform(b, image_shape), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    records: RecordSet, *, image_shape: tuple[int, int, int], batch_size: int
) -> tf.data.Dataset:
    ds = records.image_bytes().map(
        lambda b, y: (preprocess(b, image_shape), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

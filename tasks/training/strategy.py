"""Where training runs: the distribution strategy and the precision policy."""

from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

log = logging.getLogger("vision_pipelines")


def distribution_strategy(*, multi_worker: bool = False) -> tf.distribute.Strategy:
    """Several workers (`multi_worker` with TF_CONFIG set), all local GPUs, or the default."""
    if multi_worker and os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def set_precision(precision_dtype: str) -> None:
    """float16: mixed precision on GPUs (a CPU trains in float32, and says so)."""
    if precision_dtype == "float16" and has_gpu():
        keras.mixed_precision.set_global_policy("mixed_float16")
    elif precision_dtype == "float16":
        log.info("precision_dtype=float16 applies on GPUs; this CPU trains in float32")

"""The training step's body: the algorithm's trainer on a prepared ml-root, seeded on request."""

from __future__ import annotations

from tasks.algorithms import get_algorithm
from tasks.contract import MLRoot
from tasks.errors import InputError
from tasks.settings import setting_text
from tasks.training import cluster

SEED_ENV = "VISION_PIPELINES_SEED"


def fit(algorithm: str, ml: MLRoot) -> dict:
    """Train with the algorithm's trainer (imported only now: it pulls in TensorFlow); with
    $VISION_PIPELINES_SEED set, every random number of the run (initial weights, shuffling,
    augmentation) comes from that seed and TensorFlow's ops run deterministically, so a rerun on
    the same hardware repeats it exactly."""
    train = get_algorithm(algorithm).entry_point("train")
    workers = cluster.current()
    if workers.count > 1:
        from tasks.training.strategy import distribution_strategy

        distribution_strategy(workers)
    seed = setting_text(SEED_ENV) or ""
    if seed:
        if not seed.isdigit():
            raise InputError(f"setting {SEED_ENV}={seed!r}: allowed: a whole number")
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(int(seed))
        tf.config.experimental.enable_op_determinism()
    return train(ml)

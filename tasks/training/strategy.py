"""Where training runs: the distribution strategy and the precision policy."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import keras
import tensorflow as tf
from tensorflow.python.eager import context

from tasks.training.cluster import Workers, heartbeat_timeout_s

log = logging.getLogger("vision_pipelines")


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's synchronous all-reduce over workers, with the two reductions Keras 3's
    fit asks of it made to work (keras-team/keras#20585, tensorflow/tensorflow#72388;
    docs/spec-notes.md): a nested structure (a data batch, eagerly, to build the model) is
    reduced leaf by leaf, and a per-replica scalar (a metric) along axis 0 is reduced across
    replicas only. Gradients are all-reduced by Keras' optimizer, as under MirroredStrategy."""

    def reduce(self, reduce_op, value, axis):
        def one(leaf):
            local = self.experimental_local_results(leaf)
            scalar = all(getattr(t, "shape", None) is not None and t.shape.rank == 0 for t in local)
            dtype = getattr(local[0], "dtype", None)
            if dtype is not None and dtype not in _COLLECTIVE_DTYPES:
                # A data batch of uint8 pixels or masks: collectives carry no such dtype.
                leaf = self.run(lambda t: tf.cast(t, tf.float64), args=(leaf,))
            reduced = super(MultiWorkerStrategy, self).reduce(
                reduce_op, leaf, None if scalar else axis
            )
            return reduced if dtype in _COLLECTIVE_DTYPES else tf.cast(reduced, dtype)

        return tf.nest.map_structure(one, value)


_COLLECTIVE_DTYPES = (tf.bfloat16, tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def _coordinate() -> None:
    """TensorFlow's coordination service (the chief) declares a worker dead after 10 s without
    a heartbeat and aborts every worker's collectives: a pod throttled by its CPU limit or a
    busy machine stalls that long and loses the whole job. We give it `heartbeat_timeout_s()`,
    which is also how long the others wait before giving up on a worker that died. Set before
    the strategy, which then keeps this configuration (it configures only an unset one)."""
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader="/job:worker/replica:0/task:0",
        heartbeat_timeout_in_ms=heartbeat_timeout_s() * 1000,
    )


@functools.cache
def distribution_strategy(workers: Workers) -> tf.distribute.Strategy:
    """Several workers (TF_CONFIG), all local GPUs, or the default. The multi-worker one must
    be made before TensorFlow runs anything (its collectives are set up at start): one per
    process."""
    if workers.count > 1:
        _coordinate()
        return MultiWorkerStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def from_chief(strategy: tf.distribute.Strategy, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """The chief's (first replica's) `values` on every worker."""
    return _all_reduce(strategy, values, chief_only=True)


def averaged(strategy: tf.distribute.Strategy, values: list[tf.Tensor]) -> list[tf.Tensor]:
    """The mean of `values` over all replicas, on every worker."""
    return _all_reduce(strategy, values, chief_only=False)


def _all_reduce(
    strategy: tf.distribute.Strategy, values: list[tf.Tensor], *, chief_only: bool
) -> list[tf.Tensor]:
    # One all-reduce needs one dtype: float64 holds float32/16 values and step counts exactly.
    received = _reducer(strategy, chief_only)([tf.cast(v, tf.float64) for v in values])
    return [
        tf.cast(strategy.experimental_local_results(r)[0], v.dtype)
        for r, v in zip(received, values, strict=True)
    ]


@functools.cache
def _reducer(strategy: tf.distribute.Strategy, chief_only: bool) -> Callable:
    """One all-reduce: the mean of every replica's values, or (`chief_only`) a sum to which
    only the first replica contributes."""

    def replica(tensors):
        context = tf.distribute.get_replica_context()
        if chief_only:
            first = tf.equal(context.replica_id_in_sync_group, 0)
            tensors = [tf.where(first, t, tf.zeros_like(t)) for t in tensors]
        else:
            # ReduceOp.MEAN here fails in TensorFlow 2.21 ("destinations can not be empty").
            tensors = [t / context.num_replicas_in_sync for t in tensors]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)

    return tf.function(lambda tensors: strategy.run(replica, args=(tensors,)))


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def set_precision(precision_dtype: str) -> None:
    """float16: mixed precision on GPUs (a CPU trains in float32, and says so)."""
    if precision_dtype == "float16" and has_gpu():
        keras.mixed_precision.set_global_policy("mixed_float16")
    elif precision_dtype == "float16":
        log.info("precision_dtype=float16 applies on GPUs; this CPU trains in float32")

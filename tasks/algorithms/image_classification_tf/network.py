"""The network: a pre-trained hub feature vector -> Dropout -> Dense(num_classes, L2), in
tf_keras (hub.KerasLayer is a Keras 2 layer). The head is its own small model, so that a frozen
backbone can be run once per image and the head trained on the features."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

from tasks.algorithms.image_classification_tf.hub.mirror import fetch_module
from tasks.algorithms.image_classification_tf.hub.trust import TrustedModule
from tasks.algorithms.image_classification_tf.hyperparameters import TransferHyperparameters
from tasks.errors import InputError
from tasks.saved_model_ops import check_saved_model

HEAD_WEIGHTS = "head.npz"


@dataclass
class Network:
    model: Any
    """tf_keras model: images in [0, 1], [batch, height, width, 3] -> logits."""
    backbone: Any
    """The hub.KerasLayer around `module`."""
    head: Any
    """tf_keras model: features -> logits (Dropout, Dense)."""
    module: Any
    """The loaded SavedModel whose variables the backbone trains (saved again for reuse)."""
    input_size: tuple[int, int]
    folder: Path
    """The checked private copy `module` was loaded from."""


def load_module(trusted: TrustedModule) -> Any:
    """Load a TF2 SavedModel hub module the deployment trusts, from the step's private copy
    that was checked, with only allowed ops; anything else is refused by name."""
    source = trusted.source
    check_saved_model(trusted.folder, source)
    try:
        module = hub.load(str(trusted.folder))
    except Exception as e:  # noqa: BLE001 - any loading failure means "not a usable module"
        raise InputError(
            f"{source}: cannot be loaded as a TF2 SavedModel hub module ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from e
    if not callable(module):
        raise InputError(f"{source}: the SavedModel is not callable; expected a hub image module")
    return module


def declared_input_size(module: Any, default: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) the module's call signature fixes, else `default`."""
    for function in getattr(module.__call__, "concrete_functions", []):
        args = function.structured_input_signature[0]
        spec = args[0] if args else None
        shape = getattr(spec, "shape", None)
        if shape is not None and shape.rank == 4 and shape[1] and shape[2]:
            return int(shape[1]), int(shape[2])
    return default


def in_replica(layer: Any, x: tf.Tensor, **kwargs: Any) -> tf.Tensor:
    """`layer(x)` in a replica context: a SavedModel loaded under a distribution strategy (a hub
    module on several workers) runs only there; the local result."""
    strategy = tf.distribute.get_strategy()
    result = strategy.run(lambda t: layer(t, **kwargs), args=(x,))
    return strategy.experimental_local_results(result)[0]


def build_network(
    hp: TransferHyperparameters, trusted: TrustedModule, fallback: tuple[int, int] | None = None
) -> Network:
    """The network on the hub module `trusted`; the top layer randomly initialized. Its input
    size: what the module's signature fixes, else what the registry documents for it, else
    `fallback` (the size it was trained at), else the model id's registry size."""
    if hp.num_classes is None:
        raise ValueError("num_classes is known from the data before the network is built")
    source = trusted.source
    module = load_module(trusted)
    documented = (trusted.input_size,) * 2 if trusted.input_size else None
    size = declared_input_size(module, documented or fallback or (hp.model.input_size,) * 2)
    backbone = hub.KerasLayer(module, trainable=not hp.train_only_top_layer, name="pretrained")
    probe = in_replica(backbone, tf.zeros([1, *size, 3]))
    if len(probe.shape) != 2:
        raise InputError(
            f"{source}: outputs shape {list(probe.shape)} for an image; a feature vector "
            "model ([batch, features]) is needed for fine-tuning"
        )
    head = tf_keras.Sequential(
        [
            tf_keras.Input((int(probe.shape[-1]),)),
            tf_keras.layers.Dropout(hp.dropout_rate),
            tf_keras.layers.Dense(
                hp.num_classes,
                kernel_regularizer=tf_keras.regularizers.l2(hp.regularizers_l2),
                name="logits",
            ),
        ],
        name="top",
    )
    inputs = tf_keras.Input((*size, 3), name="images")
    model = tf_keras.Model(inputs, head(backbone(inputs)), name=hp.model_id)
    return Network(model, backbone, head, module, size, trusted.folder)


def build_model(hp: TransferHyperparameters) -> Any:
    """The network of `hp.model_id`, its module from the hub cache or the mirror."""
    with tempfile.TemporaryDirectory() as tmp:
        return build_network(hp, fetch_module(hp.model_id, "feature_vector", Path(tmp))).model


def save_parts(network: Network, backbone_dir: Path, head_path: Path) -> None:
    """The module (a hub module again: saved anew when it trained, else the very files it was
    loaded from, which is several times faster than serializing it again) and the top layer's
    weights."""
    if network.backbone.trainable:
        tf.saved_model.save(network.module, str(backbone_dir))
    else:
        shutil.copytree(network.folder, backbone_dir)
    with open(head_path, "wb") as f:
        np.savez(f, *network.head.get_weights())


def load_head(network: Network, head_path: Path) -> None:
    with np.load(head_path) as saved:
        network.head.set_weights([saved[f"arr_{i}"] for i in range(len(saved.files))])

"""ImageNet weights of the ResNet backbones, and weights copied or restored by layer name:
the starting points every algorithm on a ResNet shares."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import keras

from tasks.artifact import extract_artifact
from tasks.backbones.resnet import build_resnet
from tasks.backbones.resnet_depths import IMAGENET_DEPTHS
from tasks.contract import find_model_archive
from tasks.errors import InputError
from tasks.settings import setting_text

WEIGHTS_ENV = "VISION_PIPELINES_IMAGENET_WEIGHTS"
IMAGENET_CLASSES = 1000


def imagenet_weights_file(num_layers: int) -> str:
    """`$VISION_PIPELINES_IMAGENET_WEIGHTS`: a weights file, or a folder (local or s3://) of
    `resnet<N>_v1_imagenet.weights.h5` files."""
    location = setting_text(WEIGHTS_ENV)
    if not location:
        raise InputError(
            f"use_pretrained_model=1 needs ImageNet weights: set {WEIGHTS_ENV} to a weights file "
            f"or a folder of resnet<N>_v1_imagenet.weights.h5 files"
        )
    if location.endswith(".h5"):
        return location
    return f"{location.rstrip('/')}/resnet{num_layers}_v1_imagenet.weights.h5"


def _local(uri: str, tmp: Path) -> Path:
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise InputError(f"ImageNet weights {uri} not found ({WEIGHTS_ENV})")
    if isinstance(fs, LocalFileSystem):
        return Path(path)
    local = tmp / Path(path).name
    fs.get_file(path, str(local))
    return local


def load_weights_exactly(model: keras.Model, path: Path, *, what: str) -> None:
    """Load every layer's weights from `path`, or raise InputError starting with `what` (Keras
    itself only warns when some layers find nothing to load)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.load_weights(path)
    except (ValueError, OSError, UserWarning) as e:
        raise InputError(f"{what} ({e})") from e


def imagenet_resnet(
    num_layers: int, image_shape: tuple[int, int, int] = (3, 224, 224)
) -> keras.Model:
    """ResNet v1 `num_layers` with its ImageNet weights ($VISION_PIPELINES_IMAGENET_WEIGHTS):
    the source of every pre-trained network (layers are taken from it by name)."""
    if num_layers not in IMAGENET_DEPTHS:
        raise InputError(
            "use_pretrained_model=1 needs an ImageNet depth "
            f"({', '.join(map(str, IMAGENET_DEPTHS))}), got num_layers={num_layers}"
        )
    uri = imagenet_weights_file(num_layers)
    source = build_resnet(num_layers, image_shape=image_shape, num_classes=IMAGENET_CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        path = _local(uri, Path(tmp))
        load_weights_exactly(
            source, path, what=f"{uri}: not ImageNet weights of resnet{num_layers}_v1"
        )
    return source


def copy_layers(source: keras.Model, target: keras.Model, names: list[str]) -> None:
    """The weights of the layers `names` of `source` into the same-named layers of `target`."""
    for name in names:
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())


def restore_model(
    model_dir: Path,
    *,
    algorithm: str,
    architecture: dict,
    build: Callable[[], keras.Model],
    network: str,
    multi_label: bool | None = None,
) -> keras.Model:
    """`build()`'s network with the weights of the `model` channel's model.tar.gz (its manifest
    must declare the same algorithm and `architecture`, and its weights must fill every layer).

    Only weights are read: the archive's own model config (its layers, any code in it) is not
    what trains, so a manifest cannot pass another network off as this one."""
    tar = find_model_archive(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        extracted = extract_artifact(tar, Path(tmp))
        extracted.manifest.check_compatible(
            algorithm=algorithm, architecture=architecture, source=str(tar), multi_label=multi_label
        )
        model = build()
        load_weights_exactly(
            model,
            extracted.keras_path,
            what=f"{tar}: its weights are not those of the {network} it declares",
        )
        return model

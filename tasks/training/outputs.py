"""What a training job leaves: model/model.tar.gz, output/metrics.json and learning curves."""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

from tasks import plots
from tasks.artifact import KERAS_MODEL, SAVED_MODEL, ModelManifest, write_artifact
from tasks.atomic import atomic_write_text
from tasks.contract import LEARNING_CURVES, MLRoot


def frameworks() -> dict[str, str]:
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_outputs(
    ml: MLRoot,
    manifest: ModelManifest,
    metrics: dict,
    save: Callable[[Path], dict[str, Path]],
    *,
    curve_metric: str = "accuracy",
) -> None:
    """model.tar.gz of what `save(work_folder)` writes (it returns archive name -> path), then
    metrics.json and the learning curves (loss and `curve_metric`)."""
    ml.output_dir.mkdir(parents=True, exist_ok=True)
    ml.model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ml.model_dir.parent) as tmp:
        write_artifact(ml.model_archive, manifest, save(Path(tmp)))
    atomic_write_text(ml.metrics_path, json.dumps(metrics, indent=2) + "\n")
    plots.learning_curves(metrics["epochs"], ml.output_dir / LEARNING_CURVES, curve_metric)


def write_keras_outputs(
    ml: MLRoot,
    model: keras.Model,
    manifest: ModelManifest,
    metrics: dict,
    export: Callable[[keras.Model, Path], None],
    *,
    curve_metric: str = "accuracy",
) -> None:
    """Save the Keras model and its serving SavedModel (made by `export(model, folder)`) in
    model.tar.gz, then metrics.json and the learning curves."""

    def save(work: Path) -> dict[str, Path]:
        # Incremental training reads only the weights (restore_model): the same layers in an
        # uncompiled model leave the optimizer's slots (twice the weights for adam) out.
        keras.Model(model.inputs, model.outputs, name=model.name).save(work / KERAS_MODEL)
        export(model, work / SAVED_MODEL)
        return {SAVED_MODEL: work / SAVED_MODEL, KERAS_MODEL: work / KERAS_MODEL}

    write_outputs(ml, manifest, metrics, save, curve_metric=curve_metric)

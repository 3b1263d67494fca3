"""`python -m tasks.train` under the container contract, on generated data."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest

from tasks.classification.serving import load_predictor
from tasks.contract import MLRoot
from tasks.train import main
from tests.conftest import losses_of, train_seeded

pytestmark = pytest.mark.integration


def train(ml):
    return main(["--algorithm", "image-classification", "--ml-root", str(ml.root)])


def test_training_writes_model_metrics_and_curves(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "top_k": "2"})
    assert train(ml) == 0
    assert not ml.failure_path.exists()
    metrics = json.loads(ml.metrics_path.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    for key in (
        "train_loss",
        "train_accuracy",
        "validation_loss",
        "validation_accuracy",
        "validation_top_2_accuracy",
        "images_per_second",
    ):
        assert key in metrics["epochs"][-1], key
    assert (ml.output_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"

    extracted = tmp_path / "model"
    with tarfile.open(ml.model_dir / "model.tar.gz") as tar:
        assert {"manifest.json", "model.keras"} <= set(tar.getnames())
        tar.extractall(extracted, filter="data")
    manifest = json.loads((extracted / "manifest.json").read_text())
    assert manifest["algorithm"] == "image-classification"
    assert manifest["class_names"] == ["circle", "cross", "square", "triangle"]
    assert manifest["architecture"] == {
        "num_layers": 20,
        "image_shape": [3, 16, 16],
        "num_classes": 4,
    }
    predict = load_predictor(extracted / "saved_model")
    image = next(shapes.rglob("*.jpg")).read_bytes()
    probabilities = predict([image, image])
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"momentum": "1.5"}, "hyperparameter 'momentum' got '1.5'; allowed: a number in [0, 1]"),
        ({"num_layers": "19"}, "hyperparameter 'num_layers' got '19'; allowed: one of 18, 34"),
        ({"learning_rat": "0.1"}, "unknown hyperparameter 'learning_rat'"),
        ({"num_classes": "2"}, "allowed: one class index 0..1 (num_classes=2)"),
    ],
)
def test_bad_input_fails_with_exit_code_2_and_one_sentence(
    tmp_path, shapes, make_ml_root, tiny, hyperparameters, message
):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, **hyperparameters})
    assert train(ml) == 2
    failure = ml.failure_path.read_text()
    assert message in failure
    if "num_classes" in hyperparameters:
        assert "train.rec at byte offset" in failure
    assert not (ml.model_dir / "model.tar.gz").exists()


def test_truncated_recordio_names_the_byte_offset(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, tiny)
    rec = ml.channel("validation") / "validation.rec"
    data = rec.read_bytes()
    rec.write_bytes(data[: len(data) - 30])
    (ml.channel("validation") / "validation.idx").unlink()
    assert train(ml) == 2
    failure = ml.failure_path.read_text()
    assert "validation.rec: truncated record at byte offset" in failure


def test_a_seeded_run_repeats_exactly(tmp_path, seeded):
    """VISION_PIPELINES_SEED: a second run in a fresh process trains the same model as the
    shared seeded one (every epoch's losses equal to the last bit): seeded initial weights,
    shuffling and augmentation, and TensorFlow's deterministic ops. (Unseeded, the losses
    differ.)"""
    ml = MLRoot(tmp_path / "ml")
    shutil.copytree(seeded.root / "input", ml.root / "input")
    assert train_seeded(ml) == losses_of(seeded.metrics_path.read_bytes())

"""image-classification-tf through its command lines: fine-tuning from a hub module given as the
model channel (folder, tar.gz), the hub cache and the mirror; verbose batch transform;
incremental training; the pre-trained classifier as is; every bad input with its sentence."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tasks import transform as transform_cli
from tasks.algorithms.image_classification_tf.hub.trust import module_digest
from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.algorithms.image_classification_tf.training import BACKBONE
from tasks.artifact import extract_artifact
from tasks.contract import EXIT_BAD_INPUT
from tasks.data.synthetic import make_shapes_dataset
from tasks.train import main as train_main
from tests.serving import post, served
from tests.tasks.algorithms.image_classification_tf.conftest import make_ml_root
from tests.tasks.algorithms.image_classification_tf.hub_modules import save_classifier

ROOT = Path(__file__).resolve().parents[4]
ALGORITHM = "image-classification-tf"
SMALL = {"model_id": DEFAULT_MODEL_ID, "epochs": "1", "batch_size": "8"}


def train(ml) -> int:
    return train_main(["--algorithm", ALGORITHM, "--ml-root", str(ml.root)])


def failure(ml) -> str:
    return ml.failure_path.read_text().strip()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes32, feature_vector_tar):
    """One fine-tuning run from a hub .tar.gz in the model channel (the done-when command)."""
    root = tmp_path_factory.mktemp("trained")
    hp = {
        **SMALL,
        "epochs": "2",
        "learning_rate": "0.01",
        "optimizer": "adam",
        "train_only_top_layer": "False",
    }
    ml = make_ml_root(root / "ml", shapes32, hp, model=feature_vector_tar)
    run = subprocess.run(
        [sys.executable, "-m", "tasks.train", "--algorithm", ALGORITHM, "--ml-root", str(ml.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "epoch 2/2" in run.stdout
    return ml


def test_fine_tuning_writes_the_model_and_its_reports(trained):
    with tarfile.open(trained.model_archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert {
        "manifest.json",
        "checksums.json",
        "saved_model/saved_model.pb",
        "backbone/saved_model.pb",
        "head.npz",
        "class_label_to_prediction_index.json",
    } <= names
    assert manifest["class_names"] == ["circle", "cross", "square", "triangle"]
    assert manifest["architecture"] == {"model_id": DEFAULT_MODEL_ID, "num_classes": 4}
    metrics = json.loads(trained.metrics_path.read_text())
    assert metrics["frozen_features"] is False
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert (
        "validation_accuracy" in metrics["final"] and metrics["validation_samples"] == 4
    )  # 1 of 6 per class
    assert (trained.output_dir / "learning_curves.png").stat().st_size > 0


def test_verbose_batch_transform_writes_one_line_per_image(trained, shapes32, tmp_path):
    out = tmp_path / "out.jsonl"
    code = transform_cli.main(
        [
            "--model",
            str(trained.model_archive),
            "--input",
            str(shapes32),
            "--output",
            str(out),
            "--accept",
            "application/json;verbose",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24
    for row in rows:
        assert row["labels"] == ["circle", "cross", "square", "triangle"]
        assert math.isclose(sum(row["prediction"]), 1.0, abs_tol=1e-4)
        assert row["probabilities"] == row["prediction"]
        best = max(range(4), key=lambda i: row["prediction"][i])
        assert row["predicted_label"] == row["labels"][best]
    assert rows[0]["source-ref"] == "circle/circle_0000.jpg"


def test_the_endpoint_answers_as_the_verbose_batch_transform(trained, shapes32):
    image = next(shapes32.rglob("*.png"), None) or next(shapes32.rglob("*.jpg"))
    with served(trained.model_archive) as url:
        status, kind, body = post(url, image.read_bytes(), "image/jpeg", "application/json")
        assert (status, kind) == (200, "application/json")
        probabilities = json.loads(body)
        assert len(probabilities) == 4 and math.isclose(sum(probabilities), 1.0, abs_tol=1e-4)
        status, kind, body = post(url, image.read_bytes(), "image/jpeg", "application/json;verbose")
        verbose = json.loads(body)
        assert verbose["probabilities"] == probabilities
        assert verbose["labels"] == ["circle", "cross", "square", "triangle"]
        assert (
            verbose["predicted_label"] == verbose["labels"][probabilities.index(max(probabilities))]
        )
        assert post(url, b"not an image", "image/jpeg")[0] == 400
        assert post(url, image.read_bytes(), "image/jpeg")[0] == 200


def test_a_hub_folder_in_the_model_channel_and_frozen_features(feature_vector, shapes32, tmp_path):
    hp = {**SMALL, "train_only_top_layer": "True", "validation_split_ratio": "0.5"}
    ml = make_ml_root(tmp_path / "ml", shapes32, hp, model=feature_vector)
    assert train(ml) == 0
    metrics = json.loads(ml.metrics_path.read_text())
    assert metrics["frozen_features"] is True and metrics["validation_samples"] == 12
    # The unchanged backbone is the module's own files, and trains on as one.
    model = extract_artifact(ml.model_archive, tmp_path / "model")
    assert module_digest(model.root / BACKBONE) == module_digest(feature_vector)
    again = make_ml_root(tmp_path / "again", shapes32, hp, model=ml.model_archive)
    assert train(again) == 0
    assert json.loads(again.metrics_path.read_text())["frozen_features"] is True


def test_the_model_id_resolves_from_the_hub_cache(hub_cache, shapes32, tmp_path):
    ml = make_ml_root(tmp_path / "ml", shapes32, {**SMALL, "augmentation": "True"})
    assert train(ml) == 0
    assert json.loads(ml.metrics_path.read_text())["pretrained"] == DEFAULT_MODEL_ID


def test_a_model_id_available_nowhere_names_what_is_there(hub_cache, shapes32, tmp_path):
    other = "tensorflow-ic-efficientnet-b0-classification-1"
    ml = make_ml_root(tmp_path / "ml", shapes32, {**SMALL, "model_id": other})
    assert train(ml) == EXIT_BAD_INPUT
    message = failure(ml)
    assert f"of '{other}'" in message and "not available offline" in message
    assert f"available: {DEFAULT_MODEL_ID}" in message


def test_incremental_training_continues_and_refuses_other_classes(trained, tmp_path):
    data = make_shapes_dataset(tmp_path / "same", per_class=4, size=32)
    ml = make_ml_root(tmp_path / "ml", data, SMALL, model=trained.model_archive)
    assert train(ml) == 0
    assert json.loads(ml.metrics_path.read_text())["pretrained"] == str(
        ml.channel("model") / "model.tar.gz"
    )
    other = make_shapes_dataset(
        tmp_path / "other", per_class=3, size=32, classes=("circle", "star", "square", "cross")
    )
    ml = make_ml_root(tmp_path / "ml2", other, SMALL, model=trained.model_archive)
    assert train(ml) == EXIT_BAD_INPUT
    assert "incremental training needs the same classes" in failure(ml)


def test_a_pretrained_classifier_serves_as_is(shapes32, tmp_path):
    classifier = save_classifier(tmp_path / "classifier", 3)
    labels = tmp_path / "labels.txt"
    labels.write_text("alpha\nbeta\ngamma\n")
    model = tmp_path / "model.tar.gz"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.hub",
            "package",
            DEFAULT_MODEL_ID,
            "--labels",
            str(labels),
            "--output",
            str(model),
            "--model",
            str(classifier),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = tmp_path / "out.jsonl"
    assert (
        transform_cli.main(
            [
                "--model",
                str(model),
                "--input",
                str(shapes32),
                "--output",
                str(out),
                "--accept",
                "application/jsonlines;verbose",
            ]
        )
        == 0
    )
    row = json.loads(out.read_text().splitlines()[0])
    assert row["labels"] == ["alpha", "beta", "gamma"] and len(row["prediction"]) == 3
    labels.write_text("alpha\nbeta\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks.hub",
            "package",
            DEFAULT_MODEL_ID,
            "--labels",
            str(labels),
            "--output",
            str(tmp_path / "m2.tar.gz"),
            "--model",
            str(classifier),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == EXIT_BAD_INPUT
    assert "2 labels, but the model returns shape [None, 3]" in run.stderr


def _one_class(root: Path) -> Path:
    return make_shapes_dataset(root, per_class=3, size=16, classes=("circle",))


def _empty_class(root: Path) -> Path:
    data = make_shapes_dataset(root, per_class=3, size=16, classes=("circle", "square"))
    (data / "triangle").mkdir()
    return data


def _undecodable(root: Path) -> Path:
    data = make_shapes_dataset(root, per_class=3, size=16, classes=("circle", "square"))
    (data / "square" / "square_0001.jpg").write_bytes(b"GIF89a broken")
    return data


@pytest.mark.parametrize(
    ("make_data", "hp", "model", "expected"),
    [
        (
            None,
            {"model_id": "resnet-9000"},
            "tar",
            "hyperparameter 'model_id': model id 'resnet-9000' is not in the model registry; "
            "available: tensorflow-ic-",
        ),
        (
            None,
            {"dropout_rate": "1.5"},
            "tar",
            "hyperparameter 'dropout_rate' got '1.5'; allowed: a number in [0, 1]",
        ),
        (None, {"optimizer": "lamb"}, "tar", "hyperparameter 'optimizer' got 'lamb'"),
        (None, {"image_size": "64"}, "tar", "unknown hyperparameter 'image_size'"),
        (None, {}, "not-a-model", "not a TF2 SavedModel (no saved_model.pb inside)"),
        (_one_class, {}, "tar", "1 class folder(s) (circle); at least 2 are needed"),
        (_empty_class, {}, "tar", "triangle holds no images"),
        (_undecodable, {}, "tar", "square_0001.jpg does not decode"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(
    make_data, hp, model, expected, shapes32, feature_vector_tar, tmp_path
):
    data = make_data(tmp_path / "data") if make_data else shapes32
    if model == "tar":
        model_path = feature_vector_tar
    else:
        model_path = tmp_path / "junk"
        model_path.mkdir()
        (model_path / "weights.bin").write_bytes(b"\0" * 16)
    ml = make_ml_root(tmp_path / "ml", data, {**SMALL, **hp}, model=model_path)
    assert train(ml) == EXIT_BAD_INPUT
    assert expected in failure(ml)
    assert not ml.model_archive.exists()

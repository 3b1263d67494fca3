"""ImageNet initial weights, incremental training and resuming after a kill."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tasks.algorithms.image_classification.hyperparameters import ImageClassificationHyperparameters
from tasks.algorithms.image_classification.initial_weights import pretrained_model
from tasks.backbones.resnet import build_resnet
from tasks.backbones.weights import WEIGHTS_ENV
from tasks.errors import InputError
from tasks.train import main as train_main
from tests.tasks.interrupted import kill_after_epochs


def hyperparameters(**values) -> ImageClassificationHyperparameters:
    return ImageClassificationHyperparameters.from_strings(
        {"num_classes": "3", "num_training_samples": "10", **values}
    )


def test_imagenet_weights_load_everywhere_but_the_top_layer(tmp_path, monkeypatch):
    source = build_resnet(18, image_shape=(3, 64, 64), num_classes=1000)
    for weight in source.weights:
        weight.assign(np.random.default_rng(0).normal(size=weight.shape).astype("float32"))
    source.save_weights(tmp_path / "resnet18_v1_imagenet.weights.h5")
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    model = pretrained_model(
        hyperparameters(num_layers="18", image_shape="3,32,32", use_pretrained_model="1")
    )
    np.testing.assert_array_equal(
        model.get_layer("stage3_block1_conv1").kernel.numpy(),
        source.get_layer("stage3_block1_conv1").kernel.numpy(),
    )
    assert model.get_layer("fc").kernel.shape == (512, 3)


def test_pretrained_needs_weights_and_an_imagenet_depth(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(InputError, match=f"set {WEIGHTS_ENV}"):
        pretrained_model(hyperparameters(num_layers="50", use_pretrained_model="1"))
    with pytest.raises(InputError, match="needs an ImageNet depth .* got num_layers=20"):
        pretrained_model(hyperparameters(num_layers="20", use_pretrained_model="1"))
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(InputError, match="resnet50_v1_imagenet.weights.h5 not found"):
        pretrained_model(hyperparameters(num_layers="50", use_pretrained_model="1"))


@pytest.mark.integration
def test_incremental_training_continues_and_refuses_a_different_network(
    tmp_path, shapes, make_ml_root, tiny
):
    first = make_ml_root(tmp_path / "first", shapes, tiny)
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(first.root)]) == 0
    for name, changes, code in (
        ("same", {}, 0),
        ("deeper", {"num_layers": "32"}, 2),
        ("wider", {"image_shape": "3,24,24"}, 2),
    ):
        ml = make_ml_root(tmp_path / name, shapes, {**tiny, **changes})
        ml.channel("model").mkdir(parents=True)
        shutil.copy(first.model_dir / "model.tar.gz", ml.channel("model"))
        assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == (
            code
        ), name
        if code:
            failure = ml.failure_path.read_text()
            assert (
                "incremental training needs the same num_layers, image_shape and num_classes"
                in failure
            )
            assert ("num_layers=20 in the model, 32 now" in failure) or (
                "image_shape=[3, 16, 16] in the model, [3, 24, 24] now" in failure
            )


@pytest.mark.integration
def test_a_killed_job_resumes_from_its_last_checkpoint(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "30"})
    reached = kill_after_epochs(ml, "image-classification")
    ml.hyperparameters_path.write_text(
        json.dumps({**json.loads(ml.hyperparameters_path.read_text()), "epochs": str(reached + 2)})
    )
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    metrics = json.loads(ml.metrics_path.read_text())
    assert metrics["resumed_after_epoch"] >= reached
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, reached + 3))
    assert not (ml.checkpoints_dir / "backup").exists(), "a finished job removes its backup"


def test_weights_of_another_network_are_refused(tmp_path, monkeypatch):
    build_resnet(34, image_shape=(3, 32, 32), num_classes=1000).save_weights(
        tmp_path / "resnet18_v1_imagenet.weights.h5"
    )
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(InputError, match="not ImageNet weights of resnet18_v1"):
        pretrained_model(hyperparameters(num_layers="18", use_pretrained_model="1"))


def test_a_checkpoint_of_another_network_is_not_resumed(tmp_path, shapes, make_ml_root, tiny):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "1"})
    backup = ml.checkpoints_dir / "backup"
    backup.mkdir(parents=True)
    (backup / "training_metadata.json").write_text('{"epoch": 0}')
    (ml.checkpoints_dir / "architecture.json").write_text('{"num_layers": 32}')
    assert train_main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    assert json.loads(ml.metrics_path.read_text())["resumed_after_epoch"] == 0


def test_a_model_channel_cannot_pass_another_network_off_as_the_declared_one(tmp_path):
    """Audit: a toy model.keras whose manifest claimed resnet20 was loaded as it was (its own
    layers, its own config) and trained on. Now the declared network is built and only weights
    are loaded into it, so the toy is refused by name."""
    import keras

    from tasks.algorithms.image_classification.initial_weights import previous_model
    from tasks.artifact import KERAS_MODEL, SAVED_MODEL, ModelManifest, write_artifact

    hp = hyperparameters(num_layers="20", image_shape="3,16,16")
    toy = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    toy.save(tmp_path / KERAS_MODEL)
    manifest = ModelManifest(
        algorithm="image-classification",
        architecture=hp.architecture(),
        class_names=["a", "b", "c"],
    )
    (tmp_path / "model").mkdir()
    (tmp_path / SAVED_MODEL).mkdir()
    (tmp_path / SAVED_MODEL / "saved_model.pb").write_bytes(b"")  # not read by training
    members = {KERAS_MODEL: tmp_path / KERAS_MODEL, SAVED_MODEL: tmp_path / SAVED_MODEL}
    write_artifact(tmp_path / "model" / "model.tar.gz", manifest, members)
    with pytest.raises(InputError, match="not those of the resnet20 it declares"):
        previous_model(tmp_path / "model", hp)
    real = build_resnet(20, image_shape=(3, 16, 16), num_classes=3)
    real.save(tmp_path / KERAS_MODEL)
    write_artifact(tmp_path / "model" / "model.tar.gz", manifest, members)
    loaded = previous_model(tmp_path / "model", hp)
    np.testing.assert_array_equal(
        loaded.get_layer("fc").kernel.numpy(), real.get_layer("fc").kernel.numpy()
    )

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.contract import MLRoot
from tasks.data.synthetic import make_shapes_dataset
from tests.tasks.algorithms.image_classification_tf.hub_modules import tar_module


@pytest.fixture(scope="session", autouse=True)
def trusted_test_module(feature_vector) -> str:
    """The tests' own feature vector module, pinned by the deployment (the subprocesses the tests
    start inherit the setting)."""
    from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, module_digest

    with pytest.MonkeyPatch.context() as patch:
        digest = module_digest(feature_vector)
        patch.setenv(TRUSTED_ENV, digest)
        yield digest


@pytest.fixture(scope="session")
def feature_vector_tar(feature_vector, tmp_path_factory) -> Path:
    return tar_module(feature_vector, tmp_path_factory.mktemp("hub-tar") / "module.tar.gz")


@pytest.fixture(scope="session")
def shapes32(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes32"), per_class=6, size=32)


def make_ml_root(root: Path, training: Path, hyperparameters: dict, model: Path | None = None):
    """An ml-root with the `training` channel (a link, as the local runner stages it) and,
    when given, a `model` channel holding `model` (a file or a folder)."""
    ml = MLRoot(root)
    ml.channel("training").parent.mkdir(parents=True)
    ml.channel("training").symlink_to(training, target_is_directory=True)
    if model is not None:
        if model.is_dir():
            ml.channel("model").symlink_to(model, target_is_directory=True)
        else:
            ml.channel("model").mkdir()
            (ml.channel("model") / model.name).symlink_to(model)
    ml.config_dir.mkdir(parents=True)
    ml.hyperparameters_path.write_text(json.dumps(hyperparameters))
    return ml


def train_on_pinned_module(
    root: Path, data: dict[str, Path], hyperparameters: dict, module: Path
) -> MLRoot:
    """`python -m tasks.train` of transfer learning on `data`'s training and validation class
    folders from `module`, which the deployment pins for this run; seeded, so the run repeats
    exactly (in a process of its own: a seeded run turns TensorFlow's op determinism on for
    good)."""
    from tasks.algorithms.image_classification_tf.hub.trust import TRUSTED_ENV, module_digest
    from tests.conftest import run_cli

    ml = make_ml_root(root, data["train"], hyperparameters, model=module)
    ml.channel("validation").symlink_to(data["validation"], target_is_directory=True)
    done = run_cli(
        "tasks.train", "--algorithm", "image-classification-tf", "--ml-root", str(ml.root),
        env={TRUSTED_ENV: module_digest(module), "VISION_PIPELINES_SEED": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return ml

"""Shared fixtures of the semantic-segmentation tests: generated scenes and one trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.contract import MLRoot
from tasks.data.synthetic import make_scenes_dataset
from tests.conftest import made_once, run_cli

ROOT = Path(__file__).resolve().parents[4]
ALGORITHM = "semantic-segmentation"
SMALL = {
    "backbone": "resnet-50",
    "algorithm": "fcn",
    "use_pretrained_model": "False",
    "num_classes": "3",
    "num_training_samples": "6",
    "base_size": "32",
    "crop_size": "24",
    "epochs": "1",
    "mini_batch_size": "3",
    "validation_mini_batch_size": "2",
    "optimizer": "adam",
}
# The shared trained model's run: seeded, so that another way of reading the same data (Pipe
# mode) can be compared with it number for number.
TRAINED, TRAINED_SEED = {**SMALL, "epochs": "2"}, {"VISION_PIPELINES_SEED": "2"}


def make_ml_root(root: Path, data: Path | None, hyperparameters: dict, **configs) -> MLRoot:
    """An ml-root whose input/data is a copy (or link) of the four-folder `data`."""
    ml = MLRoot(root)
    ml.config_dir.mkdir(parents=True, exist_ok=True)
    ml.hyperparameters_path.write_text(json.dumps(hyperparameters))
    ml.input_data_config_path.write_text(json.dumps(configs))
    if data is not None:
        (root / "input" / "data").parent.mkdir(parents=True, exist_ok=True)
        (root / "input" / "data").symlink_to(data, target_is_directory=True)
    return ml


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> Path:
    """6 training and 3 validation scenes of 40x30, palette annotations with 255 outlines."""
    return make_scenes_dataset(
        tmp_path_factory.mktemp("scenes") / "data", train=6, validation=3, size=(40, 30)
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory, scenes) -> MLRoot:
    """One training run through the command line (the done-when command), shared by the test
    files that need a trained model."""

    def train(folder: Path) -> None:
        ml = make_ml_root(folder / "ml", scenes, TRAINED)
        run = run_cli(
            "tasks.train", "--algorithm", ALGORITHM, "--ml-root", ml.root, env=TRAINED_SEED
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert "epoch 2/2" in run.stdout

    return MLRoot(made_once(tmp_path_factory, "segmentation-trained", train) / "ml")

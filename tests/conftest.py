from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.contract import MLRoot
from tasks.data.lst import list_class_folders, split_entries
from tasks.data.pack import pack_lst
from tasks.data.synthetic import make_shapes_dataset

pytest_plugins = ["tests.s3"]
ROOT = Path(__file__).resolve().parents[1]


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `name` that `make` fills once per test run: the test runner's workers (one
    test file each) share it instead of each making its own, as a session fixture would."""
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist every worker's base folder (popen-gwN) sits in the run's one folder.
    shared = base.parent if base.name.startswith("popen-gw") else base
    folder, done = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker's failed try
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


def _make_ml_root(root: Path, images: Path, hyperparameters: dict[str, str]) -> MLRoot:
    """A container-contract ml-root with train/validation RecordIO channels from `images`."""
    listing = list_class_folders(images)
    split = split_entries(listing.entries, train_ratio=0.75, seed=3)
    ml = MLRoot(root)
    for name, entries in (("train", split.train), ("validation", split.validation)):
        channel = ml.channel(name)
        channel.mkdir(parents=True)
        pack_lst(entries, images, channel / f"{name}.rec", channel / f"{name}.idx")
    (ml.channel("train") / "classes.json").write_text(json.dumps(listing.classes))
    ml.config_dir.mkdir(parents=True)
    values = {
        "num_classes": str(len(listing.classes)),
        "num_training_samples": str(len(split.train)),
        **hyperparameters,
    }
    ml.hyperparameters_path.write_text(json.dumps(values))
    return ml


@pytest.fixture(scope="session", autouse=True)
def deployment_key(tmp_path_factory) -> Path:
    """The test run's deployment key file, given to every step process the tests start as a
    deployment gives it (a step never makes its own); one for all the test runner's workers."""
    from tasks.signing import KEY_ENV, KEY_FILE_ENV, model_key

    folder = made_once(tmp_path_factory, "deployment-key", lambda _: None)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(KEY_ENV, raising=False)
        patch.setenv(KEY_FILE_ENV, str(folder / "model.key"))
        model_key()  # generated on first use, as on the deployment's machine
        yield folder / "model.key"


@pytest.fixture(scope="session")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=8, size=16)


@pytest.fixture
def make_ml_root() -> Callable[[Path, Path, dict[str, str]], MLRoot]:
    return _make_ml_root


TINY = {"num_layers": "20", "image_shape": "3,16,16", "epochs": "2", "mini_batch_size": "8"}
SEED = "3"


@pytest.fixture
def tiny() -> dict[str, str]:
    """Hyperparameters of a network small enough to train in seconds."""
    return dict(TINY)


def run_cli(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m module args` in a process of its own, with `env` added to this one's."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def train_seeded(ml: MLRoot) -> list[tuple[float, float]]:
    """`python -m tasks.train` of image classification, seeded with SEED; each epoch's
    (training, validation) loss."""
    done = run_cli(
        "tasks.train",
        *("--algorithm", "image-classification", "--ml-root", ml.root),
        env={"VISION_PIPELINES_SEED": SEED},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return losses_of(ml.metrics_path.read_bytes())


def losses_of(metrics: bytes) -> list[tuple[float, float]]:
    """Each epoch's (training, validation) loss in a metrics.json."""
    return [(e["train_loss"], e["validation_loss"]) for e in json.loads(metrics)["epochs"]]


@pytest.fixture(scope="session")
def seeded(tmp_path_factory, shapes) -> MLRoot:
    """One seeded training of the tiny network (random crops and mirrors), made once per test
    run: what a repeat, or the same data read another way (Pipe mode), must give number for
    number."""

    def make(folder: Path) -> None:
        hp = {**TINY, "augmentation_type": "crop"}
        train_seeded(_make_ml_root(folder / "ml", shapes, hp))

    return MLRoot(made_once(tmp_path_factory, "image-classification-seeded", make) / "ml")

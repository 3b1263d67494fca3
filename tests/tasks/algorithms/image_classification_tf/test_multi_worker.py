"""Two `python -m tasks.train` workers on loopback fine-tune one transfer-learning model."""

from __future__ import annotations

import json

import pytest

from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tests.multi_worker import assert_succeeded, start_workers
from tests.tasks.algorithms.image_classification_tf.conftest import make_ml_root

pytestmark = pytest.mark.integration


def test_two_workers_fine_tune_one_model_and_only_the_chief_writes(
    tmp_path, shapes32, feature_vector_tar
):
    hp = {
        "model_id": DEFAULT_MODEL_ID,
        "epochs": "8",
        "batch_size": "8",
        "learning_rate": "0.01",
        "optimizer": "adam",
        "train_only_top_layer": "False",
    }
    ml = make_ml_root(tmp_path / "ml", shapes32, hp, model=feature_vector_tar)
    workers = start_workers("image-classification-tf", [ml.root, ml.root], tmp_path / "logs")
    assert_succeeded(workers)

    assert workers[0].fingerprint() == workers[1].fingerprint()
    # 20 training images (5 a class): 10 a worker, 8 a step each (global batch 16).
    assert "worker 0 of 2: training on items 0..9, global batch 16" in workers[0].text()
    assert "worker 1 of 2: training on items 10..19, global batch 16" in workers[1].text()
    metrics = json.loads(ml.metrics_path.read_text())
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert sum(losses[-2:]) / 2 < losses[0], losses
    assert sorted(p.name for p in ml.model_dir.iterdir()) == ["model.tar.gz"]

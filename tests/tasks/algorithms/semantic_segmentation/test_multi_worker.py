"""Two `python -m tasks.train` workers on loopback train one segmentation network."""

from __future__ import annotations

import json

import pytest

from tests.multi_worker import assert_succeeded, start_workers
from tests.tasks.algorithms.semantic_segmentation.conftest import ALGORITHM, SMALL, make_ml_root

pytestmark = pytest.mark.integration


def test_two_workers_train_one_network_and_only_the_chief_writes(tmp_path, scenes):
    ml = make_ml_root(tmp_path / "ml", scenes, {**SMALL, "epochs": "2"})
    workers = start_workers(ALGORITHM, [ml.root, ml.root], tmp_path / "logs")
    assert_succeeded(workers)

    assert workers[0].fingerprint() == workers[1].fingerprint()
    assert "worker 0 of 2: training on items 0..2, global batch 6" in workers[0].text()
    assert "worker 1 of 2: training on items 3..5, global batch 6" in workers[1].text()
    metrics = json.loads(ml.metrics_path.read_text())
    losses = [e["validation_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0], losses
    assert all(set(e["validation_per_class_iou"]) == {"0", "1", "2"} for e in metrics["epochs"])
    assert sorted(p.name for p in ml.model_dir.iterdir()) == ["model.tar.gz"]

"""A segmentation job killed mid-training resumes from its last checkpoint: the epochs before the
kill are kept with their per-class IoU, and only the missing ones are trained."""

from __future__ import annotations

import json

from tasks.train import main as train_main
from tests.tasks.algorithms.semantic_segmentation.conftest import ALGORITHM, SMALL, make_ml_root
from tests.tasks.interrupted import kill_after_epochs


def test_a_killed_job_resumes_with_its_per_class_history(tmp_path, scenes):
    ml = make_ml_root(tmp_path / "ml", scenes, {**SMALL, "epochs": "40"})
    reached = kill_after_epochs(ml, ALGORITHM)
    ml.hyperparameters_path.write_text(json.dumps({**SMALL, "epochs": str(reached + 1)}))
    assert train_main(["--algorithm", ALGORITHM, "--ml-root", str(ml.root)]) == 0
    metrics = json.loads(ml.metrics_path.read_text())
    assert metrics["resumed_after_epoch"] >= reached
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, reached + 2))
    assert all(set(e["validation_per_class_iou"]) == {"0", "1", "2"} for e in metrics["epochs"])
    assert not (ml.checkpoints_dir / "backup").exists(), "a finished job removes its backup"

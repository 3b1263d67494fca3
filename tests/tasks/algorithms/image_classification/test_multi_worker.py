"""Two `python -m tasks.train` workers on loopback train one image-classification model."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tasks.training.cluster import RESOURCE_CONFIG
from tests.multi_worker import start_workers, wait

pytestmark = pytest.mark.integration


def test_two_workers_train_one_model_and_only_the_chief_writes(
    tmp_path, shapes, make_ml_root, tiny
):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "3", "learning_rate": "0.05"})
    workers = start_workers("image-classification", [ml.root, ml.root], tmp_path / "logs")
    assert wait(workers) == [0, 0], [w.text()[-3000:] for w in workers]

    assert workers[0].fingerprint() == workers[1].fingerprint()
    # 24 training images: each worker trains on its own 12, 8 a step (global batch 16).
    assert "worker 0 of 2: training on items 0..11, global batch 16" in workers[0].text()
    assert "worker 1 of 2: training on items 12..23, global batch 16" in workers[1].text()
    metrics = json.loads(ml.metrics_path.read_text())
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0], losses
    assert sorted(p.name for p in ml.model_dir.iterdir()) == ["model.tar.gz"]
    config = json.loads((ml.config_dir / RESOURCE_CONFIG).read_text())
    assert len(config["hosts"]) == 2
    assert config["current_host"] == config["hosts"][0]


def test_a_killed_worker_resumes_every_worker_from_the_chiefs_checkpoint(
    tmp_path, shapes, make_ml_root, tiny
):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "6", "learning_rate": "0.05"})
    roots = [ml.root, tmp_path / "ml-worker"]
    (tmp_path / "ml-worker").mkdir()
    (tmp_path / "ml-worker" / "input").symlink_to(ml.root / "input")
    first = start_workers("image-classification", roots, tmp_path / "first")
    history = ml.checkpoints_dir / "history.csv"
    deadline = time.monotonic() + 300
    while not (history.exists() and len(history.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline, first[0].text()[-3000:]
        assert first[0].process.poll() is None, first[0].text()[-3000:]
        time.sleep(0.2)
    first[1].process.send_signal(signal.SIGKILL)
    codes = wait(first, timeout=300)
    assert codes[1] == -signal.SIGKILL
    assert codes[0] != 0  # the chief notices its peer is gone instead of hanging

    second = start_workers("image-classification", roots, tmp_path / "second")
    assert wait(second) == [0, 0], [w.text()[-3000:] for w in second]
    assert "resuming from the checkpoint after epoch" in second[0].text()
    assert second[0].fingerprint() == second[1].fingerprint()
    metrics = json.loads(ml.metrics_path.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert metrics["resumed_after_epoch"] >= 2
    assert not (tmp_path / "ml-worker" / "model").exists()
    assert not (tmp_path / "ml-worker" / "output").exists()

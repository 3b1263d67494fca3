"""Two `python -m tasks.train` workers on loopback train one image-classification model."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tasks.training.cluster import HEARTBEAT_TIMEOUT_ENV, RESOURCE_CONFIG
from tests.multi_worker import Worker, assert_succeeded, start_workers, wait

pytestmark = pytest.mark.integration


def test_two_workers_train_one_model_and_only_the_chief_writes(
    tmp_path, shapes, make_ml_root, tiny
):
    ml = make_ml_root(tmp_path / "ml", shapes, {**tiny, "epochs": "4", "learning_rate": "0.05"})
    workers = start_workers("image-classification", [ml.root, ml.root], tmp_path / "logs")
    # Worker 1 stalls mid-training for longer than TensorFlow's own 10 s heartbeat timeout (as
    # a pod throttled by its CPU limit would): the chief waits for it, and the job goes on.
    after_epochs(ml, workers, 1)
    workers[1].process.send_signal(signal.SIGSTOP)
    time.sleep(15)
    assert workers[0].process.poll() is None, workers[0].story()
    workers[1].process.send_signal(signal.SIGCONT)
    assert_succeeded(workers)

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
    # The chief notices the dead worker when its heartbeats stop for this long.
    first = start_workers(
        "image-classification", roots, tmp_path / "first", {HEARTBEAT_TIMEOUT_ENV: "30"}
    )
    after_epochs(ml, first, 2)
    first[1].process.send_signal(signal.SIGKILL)
    codes = wait(first, timeout=300)
    assert codes[1] == -signal.SIGKILL
    assert codes[0] != 0  # the chief notices its peer is gone instead of hanging

    second = start_workers("image-classification", roots, tmp_path / "second")
    assert_succeeded(second)
    assert "resuming from the checkpoint after epoch" in second[0].text()
    assert second[0].fingerprint() == second[1].fingerprint()
    metrics = json.loads(ml.metrics_path.read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert metrics["resumed_after_epoch"] >= 2
    assert not (tmp_path / "ml-worker" / "model").exists()
    assert not (tmp_path / "ml-worker" / "output").exists()


def after_epochs(ml, workers: list[Worker], epochs: int) -> None:
    """Returns once the chief has logged `epochs` epochs, all workers still running."""
    history = ml.checkpoints_dir / "history.csv"
    deadline = time.monotonic() + 300
    while not (history.exists() and len(history.read_text().splitlines()) > epochs):
        assert time.monotonic() < deadline, workers[0].story()
        for w in workers:
            assert w.process.poll() is None, w.story()
        time.sleep(0.2)

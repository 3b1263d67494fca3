"""restore_best_weights: training ends on the epoch with the best validation value, across an
interrupted attempt and its resume, and a fresh start forgets an earlier run's best epoch."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from tasks.contract import MLRoot
from tasks.train import main
from tasks.training.checkpoints import BEST_WEIGHTS, BestWeightsCallback, Checkpoints


class Scripted(keras.callbacks.Callback):
    """Reports `values` as the validation score of epochs 1, 2, ... and keeps each epoch's
    weights (it runs before BestWeights, as Keras' own validation does)."""

    def __init__(self, values: list[float]):
        super().__init__()
        self.values, self.weights_at = values, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.values[epoch]
        self.weights_at.append([w.copy() for w in self.model.get_weights()])


def fit(folder, values: list[float]) -> tuple[keras.Model, Scripted, BestWeightsCallback]:
    keras.utils.set_random_seed(len(values))
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.random.rand(32, 4), np.random.rand(32, 2)
    scripted = Scripted(values)
    best = BestWeightsCallback(monitor="val_score", folder=folder)
    model.fit(x, y, epochs=len(values), callbacks=[scripted, best], verbose=0)
    return model, scripted, best


def same(a: list, b: list) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_the_best_epoch_is_kept_not_the_last(tmp_path):
    model, scripted, best = fit(tmp_path, [0.2, 0.9, 0.5])
    assert best.kept == {"epoch": 2, "value": 0.9}
    assert same(model.get_weights(), scripted.weights_at[1])
    assert not same(model.get_weights(), scripted.weights_at[2])


def test_a_resumed_attempt_ends_on_the_best_epoch_of_all_attempts(tmp_path):
    _, first, _ = fit(tmp_path, [0.2, 0.9])
    model, later, best = fit(tmp_path, [0.3, 0.4, 0.5])
    assert best.kept == {"epoch": 2, "value": 0.9}
    assert same(model.get_weights(), first.weights_at[1])
    model, again, best = fit(tmp_path, [0.3, 0.95, 0.1, 0.2])
    assert best.kept == {"epoch": 2, "value": 0.95}
    assert same(model.get_weights(), again.weights_at[1])


def test_without_a_validation_value_the_last_epoch_stays(tmp_path):
    model, scripted, best = fit(tmp_path, [float("nan")] * 2)
    assert best.kept is None
    assert same(model.get_weights(), scripted.weights_at[-1])


def test_a_fresh_start_forgets_an_earlier_runs_best_epoch(tmp_path):
    fit(tmp_path, [0.9])
    assert (tmp_path / BEST_WEIGHTS).exists()
    assert Checkpoints(tmp_path).resume_point({"network": "x"}) == 0  # nothing to resume
    assert not (tmp_path / BEST_WEIGHTS).exists()


@pytest.mark.integration
def test_the_trainer_reports_and_saves_the_kept_epoch(tmp_path, shapes, make_ml_root, tiny):
    """Through `tasks.train`: metrics.json's `final` and `kept_epoch` are the best epoch's."""
    hyperparameters = {**tiny, "epochs": "3", "restore_best_weights": "True"}
    ml: MLRoot = make_ml_root(tmp_path / "ml", shapes, hyperparameters)
    assert main(["--algorithm", "image-classification", "--ml-root", str(ml.root)]) == 0
    metrics = json.loads(ml.metrics_path.read_text())
    scores = [e["validation_accuracy"] for e in metrics["epochs"]]
    assert metrics["kept_epoch"] == 1 + scores.index(max(scores))
    assert metrics["final"]["validation_accuracy"] == max(scores)
    manifest_metrics = metrics["final"]
    assert manifest_metrics == {
        k: v for k, v in metrics["epochs"][metrics["kept_epoch"] - 1].items() if k != "epoch"
    }

"""Tuning DAGs end to end with `airflow dags test` (local runner, files): trials as rounds of the
mapped train step, poor trials stopped early, the best model through the gate and promoted, a
warm start that trains nothing again, and a run cleared mid-way that repeats no finished trial.

The budget is small (ResNet-20 on 16x16 shapes, 6 epochs) and every trial is seeded (the
trainer's seed, the sampler's tuning_seed), so each run is deterministic."""

from __future__ import annotations

import json

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tests.dag_runs import airflow_home, dags_test
from tests.dag_runs import image_classification_conf as conf

pytestmark = pytest.mark.integration
LOGICAL_DATE = "2026-01-01T00:00:00+00:00"
RUN = "run=20260101T000000"
SPACE = {
    "learning_rate": {"type": "continuous", "min": 1e-4, "max": 0.3, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
}
EPOCHS = 6
VALIDATION_IMAGES = 24
TOLERANCE = 1 / VALIDATION_IMAGES
"""Accuracy on 24 validation images moves in steps of 1/24: the tuned best may be one image
behind the best of the random trials (bayesian spends fewer epochs on the trials it stops)."""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_home(tmp_path_factory, VISION_PIPELINES_RETRIES="0", VISION_PIPELINES_SEED="3")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=24, size=16)


def tuning_conf(dataset, output, **overrides) -> dict:
    return conf(
        dataset,
        output,
        epochs=EPOCHS,
        hyperparameters={"momentum": "0.9"},
        search_space=SPACE,
        max_trials=6,
        max_parallel_trials=2,
        tuning_seed=11,
        **overrides,
    )


def tune(env, dataset, output, **overrides) -> dict:
    result = dags_test(
        env, "image_classification_tuning", LOGICAL_DATE, tuning_conf(dataset, output, **overrides)
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return json.loads((output / RUN / "tuning" / "tuning.json").read_text())


@pytest.fixture(scope="module")
def random_baseline(airflow_env, dataset, tmp_path_factory):
    """6 random trials of the whole budget, no early stopping."""
    output = tmp_path_factory.mktemp("random")
    return tune(airflow_env, dataset, output, strategy="random", early_stopping="off")


def test_bayesian_tuning_with_early_stopping_finds_a_model_as_good_and_promotes_it(
    airflow_env, dataset, random_baseline, tmp_path
):
    tuning = tune(airflow_env, dataset, tmp_path, strategy="bayesian", early_stopping="auto")
    trials = tuning["trials"]
    assert len(trials) == 6 and {t["state"] for t in trials} <= {"complete", "pruned"}
    stopped = [t for t in trials if t["stopped_early"]]
    assert stopped and all(t["epochs"] < EPOCHS for t in stopped)
    assert all(t["epochs"] == EPOCHS for t in trials if not t["stopped_early"])
    baseline = max(t["objective"] for t in random_baseline["trials"])
    assert len(random_baseline["trials"]) == 6
    assert tuning["best"]["objective"] >= baseline - TOLERANCE, (tuning["best"], baseline)

    run = tmp_path / RUN
    # The best trial's model went through the training run's tail: evaluated, gated, promoted.
    best = run / "tuning" / "trials" / f"{tuning['best']['number']:03d}" / f"epochs-{EPOCHS}"
    assert (run / "train" / "model.tar.gz").read_bytes() == (best / "model.tar.gz").read_bytes()
    gate = json.loads((run / "gate" / "gate.json").read_text())
    assert gate["promote"] is True
    champion = json.loads((tmp_path.parent / f"{tmp_path.name}-models" / "image_classification"
                           / "champion.json").read_text())  # fmt: skip
    assert champion["champion"]["source_model_uri"] == f"file://{run}/train/model.tar.gz"
    assert (run / "tuning" / "objective.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "batch_transform" / "predictions.jsonl").exists()

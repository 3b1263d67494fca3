"""Tuning DAGs end to end with `airflow dags test` (local runner, files): trials as rounds of the
mapped train step, poor trials stopped early, the best model through the gate and promoted, a
warm start that trains nothing again, and a run cleared mid-way that repeats no finished trial.

The budget is small (ResNet-20 on 16x16 shapes, 6 epochs) and every trial is seeded (the
trainer's seed, the sampler's tuning_seed), so each run is deterministic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tests.dag_runs import AIRFLOW, ROOT, airflow_home, dags_test
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
    settings = {
        "epochs": EPOCHS,
        "hyperparameters": {"momentum": "0.9"},
        "search_space": SPACE,
        "max_trials": 6,
        "max_parallel_trials": 2,
        "tuning_seed": 11,
    }
    return conf(dataset, output, **{**settings, **overrides})


def tune(env, dataset, output, **overrides) -> dict:
    result = dags_test(
        env, "image_classification_tuning", LOGICAL_DATE, tuning_conf(dataset, output, **overrides)
    )
    assert result.returncode == 0, result.stdout[-4000:]
    tuning = json.loads((output / RUN / "tuning" / "tuning.json").read_text())
    return {**tuning, "log": result.stdout}


@pytest.fixture(scope="module")
def random_baseline(airflow_env, dataset, tmp_path_factory):
    """6 random trials of the whole budget, no early stopping; (output folder, tuning.json)."""
    output = tmp_path_factory.mktemp("random")
    return output, tune(airflow_env, dataset, output, strategy="random", early_stopping="off")


def trained(output) -> list[str]:
    """The trials a run trained: its trial folders."""
    return sorted(p.name for p in (output / RUN / "tuning" / "trials").iterdir())


def test_bayesian_tuning_with_early_stopping_finds_a_model_as_good_and_promotes_it(
    airflow_env, dataset, random_baseline, tmp_path
):
    _, random = random_baseline
    tuning = tune(airflow_env, dataset, tmp_path, strategy="bayesian", early_stopping="auto")
    trials = tuning["trials"]
    assert len(trials) == 6 and {t["state"] for t in trials} <= {"complete", "pruned"}
    stopped = [t for t in trials if t["stopped_early"]]
    assert stopped and all(t["epochs"] < EPOCHS for t in stopped)
    assert all(t["epochs"] == EPOCHS for t in trials if not t["stopped_early"])
    baseline = max(t["objective"] for t in random["trials"])
    assert len(random["trials"]) == 6 and trained(tmp_path) == [f"{n:03d}" for n in range(6)]
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


def test_a_warm_start_reuses_the_earlier_trials_without_training_them(
    airflow_env, dataset, random_baseline, tmp_path
):
    earlier, random = random_baseline
    tuning = tune(
        airflow_env,
        dataset,
        tmp_path,
        max_trials=2,
        early_stopping="off",
        warm_start_uri=f"file://{earlier / RUN / 'tuning'}",
    )
    warm = [t for t in tuning["trials"] if t["warm_start"]]
    assert [t["objective"] for t in warm] == [t["objective"] for t in random["trials"]]
    new = [t for t in tuning["trials"] if not t["warm_start"]]
    assert [t["number"] for t in new] == [6, 7] and trained(tmp_path) == ["006", "007"]
    assert tuning["best"]["number"] in (6, 7)  # this run's model, the earlier ones informed it
    assert "warm start: 6 finished trials" in tuning["log"]


def test_a_killed_tuning_run_resumes_without_training_a_finished_trial_again(
    airflow_env, dataset, tmp_path
):
    """SIGKILL of `airflow dags test` (scheduler and task process at once; the trial's step
    process gets SIGTERM as its parent dies) while the second round trains, then the run again
    (`airflow dags test` clears the interval's tasks first, as a user's clear does)."""
    overrides = {"epochs": 2, "max_trials": 4, "strategy": "random", "early_stopping": "off"}
    command = [AIRFLOW, "dags", "test", "image_classification_tuning", LOGICAL_DATE, "-c"]
    command.append(json.dumps(tuning_conf(dataset, tmp_path, **overrides)))
    work = tmp_path.parent / f"{tmp_path.name}-work"
    env = {**airflow_env, "VISION_PIPELINES_WORK_DIR": str(work)}
    with (tmp_path.parent / f"{tmp_path.name}.log").open("w") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 600
        while not list(work.glob("image_classification_tuning/*/trials_1-0/input")):
            assert process.poll() is None and time.monotonic() < deadline, "round 2 never began"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    units = sorted((tmp_path / RUN / "tuning" / "trials").glob("*/epochs-2/summary.json"))
    finished = {
        p: p.stat().st_mtime_ns for p in units if json.loads(p.read_text())["exit_code"] == 0
    }
    numbers = [int(p.parts[-3]) for p in finished]
    # Round 1 had ended; round 2 was killed with a trial unfinished (`airflow dags test` runs a
    # round's mapped tasks one after another, in either order).
    assert {0, 1} <= set(numbers) and len(numbers) < 4, numbers

    conf = tuning_conf(dataset, tmp_path, **overrides)
    again = dags_test(env, "image_classification_tuning", LOGICAL_DATE, conf)
    assert again.returncode == 0, again.stdout[-4000:]
    tuning = json.loads((tmp_path / RUN / "tuning" / "tuning.json").read_text())
    assert [t["state"] for t in tuning["trials"]] == ["complete"] * 4
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # not trained again
    for number in numbers:
        assert f"trial {number} starts" not in again.stdout
    unfinished = set(range(4)) - set(numbers)
    assert all(f"trial {n} starts" in again.stdout for n in unfinished), unfinished

"""The image_classification_tf DAG end to end with `airflow dags test`: SQLite, local runner,
files, and a tiny hub module in an offline mirror (built by the trainer environment)."""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from tasks.algorithms.image_classification_tf.hyperparameters import DEFAULT_MODEL_ID
from tasks.data.synthetic import make_shapes_dataset
from tests.dag_runs import ROOT, airflow_home, assert_refused_alone, tune_one_round
from tests.dag_runs import dags_test as run_dag

pytestmark = pytest.mark.integration
TRAINER_PYTHON = ROOT / ".venv-trainer" / "bin" / "python"
HUB_MODULES = ROOT / "tests" / "tasks" / "algorithms" / "image_classification_tf" / "hub_modules.py"
LOGICAL_DATE = "2026-02-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    mirror = tmp_path_factory.mktemp("mirror")
    subprocess.run(
        [TRAINER_PYTHON, HUB_MODULES, mirror / DEFAULT_MODEL_ID / "feature_vector.tar.gz"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return airflow_home(
        tmp_path_factory,
        VISION_PIPELINES_TFHUB_MIRROR=f"file://{mirror}",
        TFHUB_CACHE_DIR=str(tmp_path_factory.mktemp("no-hub-cache")),
    )


def dags_test(env, conf):
    return run_dag(env, "image_classification_tf", LOGICAL_DATE, conf)


def conf(dataset, output, **overrides):
    return {
        "dataset_uri": f"file://{dataset}",
        "output_uri": f"file://{output}",
        "models_uri": f"file://{output}-models",
        "model_id": DEFAULT_MODEL_ID,
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 0.01,
        "train_only_top_layer": True,
        "validation_split_ratio": 0.25,
        **overrides,
    }


def test_fine_tunes_evaluates_and_transforms_from_the_offline_mirror(airflow_env, tmp_path):
    dataset = make_shapes_dataset(tmp_path / "shapes", per_class=8, size=32)
    result = dags_test(airflow_env, conf(dataset, tmp_path / "out"))
    assert result.returncode == 0, result.stdout[-4000:]
    run = tmp_path / "out" / "run=20260201T000000"

    report = json.loads((run / "data" / "class_folders.json").read_text())
    assert report["images_per_class"] == {c: 8 for c in ("circle", "cross", "square", "triangle")}
    assert report["problems"] == []
    assert len(list((run / "data" / "validation").rglob("*.jpg"))) == 8  # 2 of 8 per class

    metrics = json.loads((run / "train" / "metrics.json").read_text())
    assert metrics["model_id"] == DEFAULT_MODEL_ID and metrics["frozen_features"] is True
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    evaluation = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert evaluation["samples"] == 8
    assert evaluation["class_names"] == ["circle", "cross", "square", "triangle"]
    assert json.loads((run / "gate" / "gate.json").read_text())["promote"] is True

    rows = [
        json.loads(line)
        for line in (run / "batch_transform" / "predictions.jsonl").read_text().splitlines()
    ]
    assert sorted(r["source-ref"] for r in rows) == sorted(
        p.relative_to(dataset).as_posix() for p in dataset.rglob("*.jpg")
    )
    assert all(math.isclose(sum(r["prediction"]), 1.0, abs_tol=1e-4) for r in rows)


def test_a_bad_dataset_fails_before_training_with_its_report_kept(airflow_env, tmp_path):
    dataset = make_shapes_dataset(tmp_path / "shapes", per_class=3, size=16)
    (dataset / "notes.txt").write_text("not an image")
    (dataset / "empty").mkdir()
    (dataset / "circle" / "circle_0000.jpg").write_bytes(b"not a jpeg")
    result = dags_test(airflow_env, conf(dataset, tmp_path / "out"))
    assert_refused_alone(result, "circle_0000.jpg does not decode")
    run = tmp_path / "out" / "run=20260201T000000"
    problems = json.loads((run / "data" / "class_folders.json").read_text())["problems"]
    assert any("stray file" in p and "notes.txt" in p for p in problems)
    assert any("empty holds no images" in p for p in problems)
    assert any("circle_0000.jpg does not decode" in p for p in problems)
    assert not (run / "train").exists()


def test_tuning_trains_three_trials_and_promotes_the_best(airflow_env, tmp_path):
    """Issue 41: image_classification_tf_tuning, one round of 3 random trials of the learning
    rate on the offline mirror's module; the best trial's model is gated and promoted."""
    dataset = make_shapes_dataset(tmp_path / "shapes", per_class=8, size=32)
    tune_one_round(
        airflow_env,
        "image_classification_tf_tuning",
        LOGICAL_DATE,
        conf(dataset, tmp_path / "out"),
        "accuracy",
        2,
    )

"""The image_classification DAG end to end with `airflow dags test`: SQLite, local runner, files."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tasks.data.lst_validation import validate_lst
from tasks.data.recordio_format import RecordIOReader, read_index
from tasks.data.synthetic import make_multilabel_dataset, make_shapes_dataset
from tests.dag_runs import airflow_home, assert_refused_alone, last_model_event
from tests.dag_runs import dags_test as run_dag
from tests.dag_runs import image_classification_conf as conf

pytestmark = pytest.mark.integration
LOGICAL_DATE = "2026-01-01T00:00:00+00:00"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_home(tmp_path_factory)


def dags_test(env, conf, logical_date=LOGICAL_DATE):
    return run_dag(env, "image_classification", logical_date, conf)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=8, size=16)


def test_pipeline_runs_end_to_end_and_reruns_idempotently(airflow_env, dataset, tmp_path):
    result = dags_test(airflow_env, conf(dataset, tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    runs = list(tmp_path.glob("run=*"))
    assert [r.name for r in runs] == ["run=20260101T000000"]
    run = runs[0]

    train_lst = validate_lst(run / "lists" / "train.lst")
    validation_lst = validate_lst(run / "lists" / "validation.lst")
    assert len(train_lst) == 24 and len(validation_lst) == 8
    with RecordIOReader(run / "recordio" / "train" / "train.rec") as reader:
        assert len(list(reader)) == 24
    assert list(read_index(run / "recordio" / "train" / "train.idx")) == [
        e.index for e in train_lst
    ]

    metrics = json.loads((run / "train" / "metrics.json").read_text())
    assert metrics["epochs"][0]["epoch"] == 1 and "validation_accuracy" in metrics["final"]
    evaluation = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert evaluation["samples"] == 8

    lines = (run / "batch_transform" / "predictions.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    refs = [r["source-ref"] for r in rows]
    assert refs == sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.jpg"))
    assert all(len(r["prediction"]) == 4 for r in rows)
    assert all(math.isclose(sum(r["prediction"]), 1.0, abs_tol=1e-4) for r in rows)

    # The first model of the pipeline passes the (default, zero) floor: promoted, announced.
    event = last_model_event(airflow_env)
    assert event["source_model_uri"] == f"file://{run}/train/model.tar.gz"
    assert event["model_uri"] == (
        f"file://{tmp_path}-models/image_classification/models/20260101T000000/model.tar.gz"
    )

    # Rerun the same interval, continuing from the first model (incremental training).
    previous = tmp_path.parent / f"{tmp_path.name}-previous.tar.gz"
    shutil.copy(run / "train" / "model.tar.gz", previous)
    again = dags_test(
        airflow_env,
        conf(
            dataset, tmp_path, initial_model_uri=f"file://{previous}", transform_model="challenger"
        ),
    )
    assert again.returncode == 0, again.stdout[-3000:]
    assert "incremental training from the model channel" in again.stdout
    assert [r.name for r in tmp_path.glob("run=*")] == ["run=20260101T000000"]
    assert len((run / "batch_transform" / "predictions.jsonl").read_text().splitlines()) == 32


def test_bad_hyperparameter_fails_the_run_with_one_clear_message(airflow_env, dataset, tmp_path):
    result = dags_test(airflow_env, conf(dataset, tmp_path, hyperparameters={"momentum": "2"}))
    assert_refused_alone(result, "hyperparameter 'momentum' got '2'; allowed: a number in [0, 1]")
    failure = next(tmp_path.glob("run=*/train/failure")).read_text()
    assert "momentum" in failure
    assert not list(tmp_path.glob("run=*/train/model.tar.gz"))


def test_a_multi_label_manifest_runs_end_to_end(airflow_env, tmp_path):
    manifest = make_multilabel_dataset(tmp_path / "data", count=24, size=16)
    result = dags_test(
        airflow_env,
        conf(manifest, tmp_path / "out", label_format="multi-hot", validation_split=0.25),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    run = next((tmp_path / "out").glob("run=*"))
    assert json.loads((run / "lists" / "manifest_validation.json").read_text())["success"]
    assert json.loads((run / "train" / "metrics.json").read_text())["multi_label"] is True
    assert "mAP" in json.loads((run / "evaluate" / "evaluation.json").read_text())
    rows = [
        json.loads(line)
        for line in (run / "batch_transform" / "predictions.jsonl").read_text().splitlines()
    ]
    assert [r["source-ref"] for r in rows] == [f"images/{i:05d}.jpg" for i in range(24)]
    assert all(len(r["prediction"]) == 4 and min(r["prediction"]) >= 0 for r in rows)

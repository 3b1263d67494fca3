"""The image_classification DAG end to end with `airflow dags test`: SQLite, local runner, files."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.data.lst_validation import validate_lst
from tasks.data.recordio import RecordIOReader, read_index
from tasks.data.synthetic import make_multilabel_dataset, make_shapes_dataset

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(sys.executable).parent / "airflow"
LOGICAL_DATE = "2026-01-01T00:00:00+00:00"
QUERY_ASSET_EVENTS = """
import json
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
with create_session() as session:
    query = (select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
             .where(AssetModel.name == "image_classification_model")
             .order_by(AssetEvent.id.desc()))
    event = session.scalars(query).first()
    print(json.dumps(event.extra))
"""


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "VISION_PIPELINES_WORK_DIR": str(home / "work"),
        # Training is repeatable: the gate test's "run 2 learns" must not hang on chance.
        "VISION_PIPELINES_SEED": "1",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    return env


def dags_test(env, conf, logical_date=LOGICAL_DATE):
    return subprocess.run(
        [AIRFLOW, "dags", "test", "image_classification", logical_date, "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=8, size=16)


def conf(dataset, output, **overrides):
    return {
        "dataset_uri": f"file://{dataset}",
        "output_uri": f"file://{output}",
        "models_uri": f"file://{output}-models",
        "num_layers": 20,
        "image_shape": "3,16,16",
        "epochs": 1,
        "mini_batch_size": 8,
        "validation_split": 0.25,
        **overrides,
    }


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

    events = subprocess.run(
        [sys.executable, "-c", QUERY_ASSET_EVENTS],
        env=airflow_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The first model of the pipeline passes the (default, zero) floor: promoted, announced.
    event = json.loads(events.splitlines()[-1])
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
    assert result.returncode != 0
    assert "hyperparameter 'momentum' got '2'; allowed: a number in [0, 1]" in result.stdout
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


def _last_model_event(env) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", QUERY_ASSET_EVENTS], env=env, capture_output=True, text=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_the_gate_promotes_a_better_challenger_and_keeps_a_better_champion(
    airflow_env, tmp_path_factory
):
    """Run 1 cannot learn (learning rate 1e-7, one epoch): the first model, promoted over no
    champion. Run 2 learns: re-scored on the same data it beats the champion, is promoted, and
    the asset event carries its URI. Run 3 cannot learn again: the gate keeps run 2's model,
    says why in the log and gate.json, and batch transform predicts with the champion."""
    data = make_shapes_dataset(tmp_path_factory.mktemp("gate-shapes"), per_class=16, size=16)
    out = tmp_path_factory.mktemp("gate-runs")
    pointer = out.parent / f"{out.name}-models" / "image_classification" / "champion.json"
    models = f"file://{out}-models/image_classification/models"
    common = {"validation_split": 0.25, "mini_batch_size": 16}
    blind = {**common, "learning_rate": 1e-7, "epochs": 1}
    learns = {**common, "learning_rate": 0.05, "epochs": 10, "mini_batch_size": 8}

    first = dags_test(airflow_env, conf(data, out, **blind), "2026-03-01T00:00:00+00:00")
    assert first.returncode == 0, first.stdout[-3000:]
    assert json.loads(pointer.read_text())["champion"]["data_date"].startswith("2026-03-01")

    # The per-class rule is the next test's subject: a blind champion may have recall 1.0 on
    # the class it always predicts.
    second = dags_test(
        airflow_env, conf(data, out, **learns, max_class_drop=1.0), "2026-03-02T00:00:00+00:00"
    )
    assert second.returncode == 0, second.stdout[-3000:]
    gate = json.loads((out / "run=20260302T000000" / "gate" / "gate.json").read_text())
    assert gate["promote"] is True and gate["challenger"] > gate["champion"], gate
    champion = json.loads(pointer.read_text())["champion"]
    assert champion["model_uri"] == f"{models}/20260302T000000/model.tar.gz"
    assert _last_model_event(airflow_env)["model_uri"] == champion["model_uri"]
    assert (out / "run=20260302T000000" / "evaluate" / "champion_vs_challenger.png").stat().st_size

    third = dags_test(airflow_env, conf(data, out, **blind), "2026-03-03T00:00:00+00:00")
    assert third.returncode == 0, third.stdout[-3000:]  # keeping the champion is no failure
    gate = json.loads((out / "run=20260303T000000" / "gate" / "gate.json").read_text())
    assert gate["promote"] is False and gate["champion"] > gate["challenger"], gate
    assert gate["champion_run_id"] == champion["run_id"]
    assert "gate: KEEP THE CHAMPION" in third.stdout
    assert any("at least +0.0000 is required" in r for r in gate["reasons"])
    for reason in gate["reasons"]:
        assert reason in third.stdout
    assert json.loads(pointer.read_text())["champion"] == champion  # unchanged
    assert _last_model_event(airflow_env)["model_uri"] == champion["model_uri"]
    assert f"model={champion['model_uri']}" in third.stdout  # batch transform's model channel
    assert (out / "run=20260303T000000" / "batch_transform" / "predictions.jsonl").exists()
    # A backfill of an earlier interval trains a model that learns, but on older data: the
    # newer champion stays, and the backfill has its own run folder.
    backfill = dags_test(airflow_env, conf(data, out, **learns), "2026-02-01T00:00:00+00:00")
    assert backfill.returncode == 0, backfill.stdout[-3000:]
    gate = json.loads((out / "run=20260201T000000" / "gate" / "gate.json").read_text())
    assert gate["promote"] is False
    assert any("older than the champion's" in r for r in gate["reasons"]), gate
    assert json.loads(pointer.read_text())["champion"] == champion
    assert sorted(p.name for p in out.glob("run=*")) == [
        "run=20260201T000000",
        "run=20260301T000000",
        "run=20260302T000000",
        "run=20260303T000000",
    ]

"""Batch transform in shards, end to end with `airflow dags test` (local runner): 3 shards
predict what one transform of the whole input does, and a shard retried after a killed attempt
leaves no duplicate lines."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from operators.runners.local import trainer_python
from tasks.data.synthetic import make_shapes_dataset
from tests.dag_runs import AIRFLOW, ROOT, airflow_home
from tests.dag_runs import dags_test as run_dag
from tests.dag_runs import image_classification_conf as conf

pytestmark = pytest.mark.integration
LOGICAL_DATE = "2026-02-01T00:00:00+00:00"


def _rows(path) -> dict[str, list[float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_ref = {r["source-ref"]: r["prediction"] for r in rows}
    assert len(by_ref) == len(rows), "a source-ref twice"
    return by_ref


def _airflow(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, cwd=ROOT)


def test_three_shards_predict_what_one_transform_does(tmp_path_factory, tmp_path):
    env = airflow_home(tmp_path_factory)
    dataset = make_shapes_dataset(tmp_path / "shapes", per_class=8, size=16)
    out = tmp_path / "out"
    # Trained in Pipe input mode: the form's choice reaches the trainer, nothing is staged.
    result = run_dag(
        env,
        "image_classification",
        LOGICAL_DATE,
        conf(dataset, out, transform_shards=3, input_mode="Pipe"),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    run = out / "run=20260201T000000"
    train_root = Path(env["VISION_PIPELINES_WORK_DIR"]) / "image_classification"
    train_root = train_root / "20260201T000000" / "train"
    config = json.loads((train_root / "input" / "config" / "inputdataconfig.json").read_text())
    assert config == {
        name: {"TrainingInputMode": "Pipe", "Uri": f"file://{run}/recordio/{name}"}
        for name in ("train", "validation")
    }
    assert not (train_root / "input" / "data").exists()
    transform = run / "batch_transform"
    assert sorted(p.name for p in (transform / "shards").iterdir()) == [
        "00000",
        "00000.inputs",
        "00001",
        "00001.inputs",
        "00002",
        "00002.inputs",
    ]
    sharded = (transform / "predictions.jsonl").read_text().splitlines()
    images = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*.jpg"))
    assert [json.loads(line)["source-ref"] for line in sharded] == images  # input order

    # One transform of the whole input with the same model, as transform_shards=1 runs it.
    whole = tmp_path / "whole.jsonl"
    done = subprocess.run(
        [
            trainer_python(),
            "-m",
            "tasks.transform",
            "--model",
            str(run / "train" / "model.tar.gz"),
            "--input",
            str(dataset),
            "--output",
            str(whole),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, three = _rows(whole), _rows(transform / "predictions.jsonl")
    assert one.keys() == three.keys()
    for ref, probabilities in one.items():  # batches differ, so only to float rounding
        pairs = zip(probabilities, three[ref], strict=True)
        assert all(math.isclose(a, b, abs_tol=1e-5) for a, b in pairs), ref

    # Shard 1 killed mid-way left a partial file; its retry and the join replace it.
    (transform / "shards" / "00001" / "predictions.jsonl").write_text(
        sharded[0] + "\n" + sharded[0]
    )
    for task, extra in (("batch_transform", ["--map-index", "1"]), ("join_predictions", [])):
        retried = _airflow(env, "tasks", "test", "image_classification", task, LOGICAL_DATE, *extra)
        assert retried.returncode == 0, (retried.stdout + retried.stderr)[-3000:]
    again = (transform / "predictions.jsonl").read_text().splitlines()
    assert len(again) == len(images) and _rows(transform / "predictions.jsonl").keys() == one.keys()

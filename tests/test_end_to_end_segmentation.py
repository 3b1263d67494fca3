"""The semantic_segmentation DAG end to end with `airflow dags test`: SQLite, local runner,
files, a tiny from-scratch FCN on generated scenes with a label map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.data.synthetic import make_scenes_dataset
from tests.dag_runs import airflow_home, tune_one_round
from tests.dag_runs import dags_test as run_dag

pytestmark = pytest.mark.integration
LOGICAL_DATE = "2026-03-01T00:00:00+00:00"
RUN = "run=20260301T000000"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_home(tmp_path_factory)


def dags_test(env, conf):
    return run_dag(env, "semantic_segmentation", LOGICAL_DATE, conf)


def conf(dataset, output, **overrides):
    return {
        "dataset_uri": f"file://{dataset}",
        "output_uri": f"file://{output}",
        "models_uri": f"file://{output}-models",
        "num_classes": 3,
        "algorithm": "fcn",
        "use_pretrained_model": False,
        "base_size": 32,
        "crop_size": 24,
        "epochs": 1,
        "mini_batch_size": 4,
        "optimizer": "adam",
        **overrides,
    }


def scaled(dataset: Path, scale: int) -> None:
    """Encode every annotation as class x scale (255 stays), as a {"scale"} label map reads."""
    for png in dataset.glob("*_annotation/*.png"):
        values = np.asarray(Image.open(png))
        Image.fromarray(np.where(values == 255, 255, values * scale).astype(np.uint8), "L").save(
            png
        )


def test_layout_label_map_train_evaluate_and_masks(airflow_env, tmp_path):
    dataset = make_scenes_dataset(tmp_path / "scenes", train=8, validation=3, size=(40, 30))
    scaled(dataset, 10)
    (dataset / "label_map").mkdir()
    for split in ("train", "validation"):
        (dataset / "label_map" / f"{split}_label_map.json").write_text('{"scale": "10"}')
    result = dags_test(airflow_env, conf(dataset, tmp_path / "out"))
    assert result.returncode == 0, result.stdout[-4000:]
    run = tmp_path / "out" / RUN

    layout = json.loads((run / "data" / "layout.json").read_text())
    assert layout["pairs"] == {"train": 8, "validation": 3} and layout["problems"] == []
    remapped = np.asarray(Image.open(run / "data" / "train_annotation" / "train_0000.png"))
    assert set(np.unique(remapped)) <= {0, 1, 2, 255}

    metrics = json.loads((run / "train" / "metrics.json").read_text())
    assert metrics["algorithm"] == "semantic-segmentation"
    assert {"validation_mIoU", "validation_pixel_accuracy"} <= set(metrics["final"])
    evaluation = json.loads((run / "evaluate" / "evaluation.json").read_text())
    assert evaluation["samples"] == 3 and set(evaluation["per_class"]) == {"0", "1", "2"}
    assert (run / "evaluate" / "evaluation_overlays.png").stat().st_size > 0
    assert json.loads((run / "gate" / "gate.json").read_text())["promote"] is True

    index = run / "batch_transform" / "predictions.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    assert [r["source-ref"] for r in rows] == [f"validation_{i:04d}.jpg" for i in range(3)]
    for row in rows:
        mask = Image.open(index.parent / row["mask"])
        assert mask.size == (40, 30) and mask.mode == "P"
        assert abs(sum(row["class_fractions"].values()) - 1) < 1e-3


def test_a_value_outside_the_classes_fails_before_training(airflow_env, tmp_path):
    dataset = make_scenes_dataset(tmp_path / "scenes", train=4, validation=2, size=(40, 30))
    bad = dataset / "train_annotation" / "train_0001.png"
    values = np.asarray(Image.open(bad)).copy()
    values[0, 0] = 7
    Image.fromarray(values, "L").save(bad)
    result = dags_test(airflow_env, conf(dataset, tmp_path / "out"))
    assert result.returncode != 0
    assert "train_0001.png: pixel values [7] are not covered" in result.stdout + result.stderr
    assert not (tmp_path / "out" / RUN / "train").exists()


def test_tuning_trains_three_trials_on_its_objective_and_promotes_the_best(airflow_env, tmp_path):
    """Issue 41: semantic_segmentation_tuning, one round of 3 random trials on
    validation:pixel_accuracy; the best trial's model is gated and promoted."""
    dataset = make_scenes_dataset(tmp_path / "scenes", train=8, validation=3, size=(40, 30))
    settings = conf(dataset, tmp_path / "out", objective="validation:pixel_accuracy")
    run, tuning = tune_one_round(
        airflow_env, "semantic_segmentation_tuning", LOGICAL_DATE, settings, "pixel_accuracy", 1
    )
    assert tuning["objective"] == {"name": "validation:pixel_accuracy", "maximize": True}
    assert (run / "batch_transform" / "predictions.jsonl").exists()

"""Running a DAG end to end with `airflow dags test` in an Airflow home of its own (SQLite,
local runner, files), as the end-to-end tests do."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import made_once

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = Path(sys.executable).parent / "airflow"
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


def airflow_home(tmp_path_factory, **settings: str) -> dict[str, str]:
    """The environment of a new Airflow home that runs our DAGs, plus `settings`: its SQLite
    database a copy of the one this test run migrated once."""
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
        "VISION_PIPELINES_WORK_DIR": str(home / "work"),
        **settings,
    }
    shutil.copy(migrated_database(tmp_path_factory), home / "airflow.db")
    return env


def migrated_database(tmp_path_factory) -> Path:
    """An Airflow SQLite database that this test run migrated once, for new homes to copy."""

    def migrate(folder: Path) -> None:
        env = {**os.environ, "AIRFLOW_HOME": str(folder), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)

    return made_once(tmp_path_factory, "airflow-migrated", migrate) / "airflow.db"


def dags_test(env: dict, dag_id: str, logical_date: str, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, logical_date, "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def image_classification_conf(dataset, output, **overrides) -> dict:
    """A run of image_classification small enough for a test: ResNet-20 on 16x16 images."""
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


ONE_ROUND_OF_THREE = {
    "search_space": {
        "learning_rate": {"type": "continuous", "min": 1e-4, "max": 0.1, "scale": "log"}
    },
    "strategy": "random",
    "max_trials": 3,
    "max_parallel_trials": 3,
    "tuning_seed": 5,
}
"""A tuning run's form values: one round of 3 random trials of the learning rate."""


def tune_one_round(
    env: dict, dag_id: str, logical_date: str, conf: dict, metric: str, epochs: int
) -> tuple[Path, dict]:
    """Run the tuning DAG `dag_id` with `conf` and ONE_ROUND_OF_THREE: every trial completes
    with its own learning rate, its objective is its training's last epoch's `metric`, the best
    one is the best of them and is promoted; (the run's folder, its tuning.json)."""
    result = dags_test(env, dag_id, logical_date, {**conf, **ONE_ROUND_OF_THREE})
    assert result.returncode == 0, result.stdout[-4000:]
    run = next(Path(conf["output_uri"].removeprefix("file://")).glob("run=*"))
    tuning = json.loads((run / "tuning" / "tuning.json").read_text())
    trials = tuning["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 3
    assert len({t["hyperparameters"]["learning_rate"] for t in trials}) == 3
    for t in trials:
        unit = run / "tuning" / "trials" / f"{t['number']:03d}" / f"epochs-{epochs}"
        metrics = json.loads((unit / "metrics.json").read_text())
        assert t["objective"] == metrics["epochs"][-1][f"validation_{metric}"]
    assert tuning["best"]["objective"] == max(t["objective"] for t in trials)
    assert json.loads((run / "gate" / "gate.json").read_text())["promote"] is True
    return run, tuning


def last_model_event(env: dict) -> dict:
    """The extra of the newest image_classification_model asset event."""
    out = subprocess.run(
        [sys.executable, "-c", QUERY_ASSET_EVENTS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def assert_refused_alone(result: subprocess.CompletedProcess, sentence: str) -> None:
    """The run failed on a refusal: its sentence stands at ERROR in the task log, with no
    traceback anywhere and no retry."""
    assert result.returncode != 0
    # A log record is its timestamped line and the lines after it (a refusal may list problems).
    records = re.split(r"\n(?=\d{4}-\d\d-\d\dT)", result.stdout)
    errors = [record for record in records if "[error" in record.partition("\n")[0]]
    assert any(sentence in record for record in errors), "\n".join(errors) or result.stdout[-3000:]
    for noise in ("Traceback", "Task failed with exception", "error_detail", "up_for_retry"):
        assert noise not in result.stdout, noise

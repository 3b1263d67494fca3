"""Done-when of the plug-in house: a fourth algorithm from a package that lives only under
tests/ (tests/plugin_algorithm: its spec, a tiny network on the shared training skeleton, its DAG
built with the DAG builder) runs end to end with the local runner, and its run report opens;
no file outside that package is edited for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tests.dag_runs import ROOT, airflow_home, dags_test

pytestmark = pytest.mark.integration
PLUGIN = {
    "VISION_PIPELINES_ALGORITHM_PACKAGES": "tests.plugin_algorithm",
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "plugin_algorithm" / "dags"),
}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    return airflow_home(tmp_path_factory, **PLUGIN)


def test_a_fourth_algorithm_runs_end_to_end_from_its_own_package(airflow_env, tmp_path):
    dataset = make_shapes_dataset(tmp_path / "shapes", per_class=8, size=16)
    out = tmp_path / "runs" / "tiny_classifier"
    conf = {
        "dataset_uri": f"file://{dataset}",
        "output_uri": f"file://{out}",
        "models_uri": f"file://{tmp_path}/models",
        "epochs": 2,
    }
    done = dags_test(airflow_env, "tiny_classifier", "2026-03-01T00:00:00+00:00", conf)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = out / "run=20260301T000000"
    metrics = json.loads((run / "train" / "metrics.json").read_text())
    assert metrics["algorithm"] == "tiny-classifier"
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert (run / "train" / "model.tar.gz").is_file()
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    assert summary["primary_metric"] == "accuracy" and 0 <= summary["value"] <= 1
    gate = json.loads((run / "gate" / "gate.json").read_text())
    assert gate["promote"] is True  # the first model of the pipeline becomes the champion
    champion = json.loads((tmp_path / "models" / "tiny_classifier" / "champion.json").read_text())
    assert champion["champion"]["model_uri"].endswith("model.tar.gz")
    rows = (run / "batch_transform" / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == 4 * 8 and len(json.loads(rows[0])["prediction"]) == 4

    # Its report: listed and rendered by the unchanged report code, headline from its summary.
    page = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from tasks.run_report import find_run, "
            "render_run, runs_roots; run = find_run(runs_roots(Path(sys.argv[1])), "
            "'tiny_classifier', 'run=20260301T000000'); print(render_run(run))",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **PLUGIN, "PYTHONPATH": str(ROOT)},
    )
    assert page.returncode == 0, page.stderr
    assert f"accuracy {summary['value']:.4f}" in page.stdout


def test_its_rollback_and_tuning_dags_come_from_the_builder(airflow_env):
    code = (
        "import json, os; from airflow.dag_processing.dagbag import DagBag; "
        "bag = DagBag(os.environ['AIRFLOW__CORE__DAGS_FOLDER']); "
        "print(json.dumps({'ids': sorted(bag.dag_ids), 'errors': bag.import_errors}))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True, cwd=ROOT
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    found = json.loads(listed.stdout.splitlines()[-1])
    assert found == {
        "ids": ["tiny_classifier", "tiny_classifier_rollback", "tiny_classifier_tuning"],
        "errors": {},
    }

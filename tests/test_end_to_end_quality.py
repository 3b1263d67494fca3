"""Data quality with Great Expectations end to end (image_classification, local runner): a
user's own critical expectation stops the run before training with one sentence; as a warning
the run goes on and the report shows it; data whose label distribution moved from the
champion's fails the drift expectation, and with [No promotion on data drift] the challenger
is not promoted."""

from __future__ import annotations

import html
import json
import shutil

import pytest

from tasks.data.synthetic import make_shapes_dataset
from tasks.run_report import find_run, render_run
from tests.dag_runs import airflow_home, dags_test
from tests.dag_runs import image_classification_conf as conf

pytestmark = pytest.mark.integration
ROOT_SUITE = "expectations/image_classification.json"
# The user's own check: an image-size range (the generated images are 16 px high).
TALL_ENOUGH = {
    "type": "expect_column_values_to_be_between",
    "kwargs": {"column": "height", "min_value": 24},
}


@pytest.fixture(scope="module")
def suites(tmp_path_factory):
    return tmp_path_factory.mktemp("suites")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, suites):
    return airflow_home(
        tmp_path_factory,
        VISION_PIPELINES_SEED="1",
        VISION_PIPELINES_EXPECTATIONS=str(suites),
    )


def ship_suite(suites, severity: str) -> None:
    """The shipped suite plus the user's expectation with `severity`."""
    from tests.dag_runs import ROOT

    suite = json.loads((ROOT / ROOT_SUITE).read_text())
    suite["expectations"].append({**TALL_ENOUGH, "severity": severity})
    (suites / "image_classification.json").write_text(json.dumps(suite))


def test_critical_stops_before_training_warning_goes_on_and_drift_keeps_the_champion(
    airflow_env, suites, tmp_path_factory
):
    data = make_shapes_dataset(tmp_path_factory.mktemp("shapes"), per_class=16, size=16)
    out = tmp_path_factory.mktemp("runs")

    ship_suite(suites, "critical")
    stopped = dags_test(airflow_env, "image_classification", "2026-04-01", conf(data, out))
    assert stopped.returncode != 0
    sentence = (
        "expectation expect_column_values_to_be_between on column height (critical) failed: "
        "observed 64 of 64 values outside, e.g. [16, 16, 16, 16, 16]; expected min_value 24"
    )
    assert sentence in stopped.stdout, stopped.stdout[-3000:]
    run = out / "run=20260401T000000"
    assert not (run / "train").exists()  # no training was started
    summary = json.loads((run / "quality" / "summary.json").read_text())
    assert summary["status"] == "failed" and sentence in summary["reason"]
    docs = (run / "quality" / "data_docs" / "index.html").read_text()
    # Data Docs names the Airflow run (issue 43: "Run Name: __none__")
    run_id = json.loads((run / "run.json").read_text())["run_id"]
    assert html.escape(run_id) in docs and "__none__" not in docs, run_id
    assert json.loads((run / "quality" / "validation.json").read_text())["success"] is False

    ship_suite(suites, "warning")
    first = dags_test(airflow_env, "image_classification", "2026-04-02", conf(data, out))
    assert first.returncode == 0, first.stdout[-3000:]
    page = render_run(find_run([out.parent], out.name, "run=20260402T000000"))
    assert "Data quality: expectations failed" in page
    assert sentence.replace("(critical)", "(warning)") in page
    assert "no champion profile to compare with" in page  # the first run has nothing to drift from
    pointer = out.parent / f"{out.name}-models" / "image_classification" / "champion.json"
    assert json.loads(pointer.read_text())["champion"]["profile_uri"].endswith("profile.csv.gz")

    # The next data: the circles all but gone.
    moved = tmp_path_factory.mktemp("moved") / "shapes"
    shutil.copytree(data, moved)
    for path in sorted((moved / "circle").iterdir())[2:]:
        path.unlink()
    drifted = dags_test(
        airflow_env,
        "image_classification",
        "2026-04-03",
        conf(moved, out, no_promotion_on_drift=True, min_improvement=-1.0, max_class_drop=1.0),
    )
    assert drifted.returncode == 0, drifted.stdout[-3000:]
    run = out / "run=20260403T000000"
    quality = json.loads((run / "quality" / "quality.json").read_text())
    (drift,) = quality["drift"]
    assert drift.startswith(
        "expectation expect_column_kl_divergence_to_be_less_than on column label (warning)"
    )
    label = quality["distributions"]["label"]
    assert label["champion"]["0"] == 0.25 and label["run"]["0"] < 0.05
    gate = json.loads((run / "gate" / "gate.json").read_text())
    assert gate["promote"] is False
    assert f"data drift (no promotion on data drift): {drift}" in gate["reasons"]
    page = render_run(find_run([out.parent], out.name, "run=20260403T000000"))
    assert "champion&#x27;s data" in page or "champion's data" in page

"""The Airflow image: its Airflow starts and parses our DAGs with no import errors."""

from __future__ import annotations

from tests.containers.conftest import AIRFLOW

PARSE = (
    "import json; from airflow.models.dagbag import DagBag;"
    "bag = DagBag('/opt/airflow/dags');"
    "print(json.dumps({'errors': bag.import_errors, 'dags': sorted(bag.dag_ids)}))"
)


def test_airflow_version_runs(podman):
    done = podman.run(AIRFLOW, "airflow", "version", hardened=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "3.3.2"


def test_the_dags_parse_with_no_import_errors(podman, tmp_path):
    import json

    done = podman.run(AIRFLOW, "python", "-c", PARSE, hardened=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert {
        "image_classification",
        "image_classification_tf",
        "semantic_segmentation",
    } <= set(parsed["dags"])

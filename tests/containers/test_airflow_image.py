"""The Airflow image: its Airflow starts and parses our DAGs with no import errors."""

from __future__ import annotations

import json
from typing import Any

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


def _json_answer(podman, *command: str, timeout: int) -> Any:
    """Run `command` in the Airflow image; its last line of output, read as JSON."""
    done = podman.run(AIRFLOW, *command, hardened=False, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dags_parse_with_no_import_errors(podman):
    parsed = _json_answer(podman, "python", "-c", PARSE, timeout=300)
    assert parsed["errors"] == {}
    assert {
        "image_classification",
        "image_classification_tf",
        "semantic_segmentation",
    } <= set(parsed["dags"])


RENDER = (
    "import json; from operators.deployers.base import Deployment;"
    "from operators.deployers.kubernetes import inference_service_of;"
    "from operators.kubernetes_pods import KubernetesSettings;"
    "from tasks.algorithms import get_algorithm;"
    "d = Deployment('image_classification', 's3://m/image_classification/models/r/model.tar.gz',"
    " 'r', 3, 's3://m/serving/image_classification',"
    " get_algorithm('image-classification').environment);"
    "print(json.dumps(inference_service_of(d, KubernetesSettings(namespace='ml'))))"
)


def test_the_deploy_step_checks_an_inference_service_with_the_schema_it_carries(podman):
    resource = _json_answer(podman, "python", "-c", RENDER, timeout=120)
    model = resource["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://m/serving/image_classification"
    assert model["securityContext"]["readOnlyRootFilesystem"] is True


QUALITY = (
    'set -e; cd /tmp; python -c "from pathlib import Path; from tasks.data.profile import *;'
    "write_profile(Path('p.csv.gz'), [ProfileRow('train', i % 2, f'{i}.jpg',"
    " ImageFacts(8, 8, 'RGB', 9)) for i in range(4)])\";"
    " $VISION_PIPELINES_GE_PYTHON -m tasks.quality --profile p.csv.gz"
    " --suite /opt/vision-pipelines/expectations/image_classification.json --output q >&2;"
    " python -m json.tool --compact q/quality.json"
)


def test_the_data_quality_step_runs_great_expectations_in_its_own_environment(podman):
    summary = _json_answer(podman, "sh", "-c", QUALITY, timeout=180)
    assert summary["success"] is True and summary["rows"] == 4
    assert any("no champion profile" in line for line in summary["skipped"])

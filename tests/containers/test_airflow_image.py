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


RENDER = (
    "import json; from operators.runners.base import Deployment;"
    "from operators.runners.kubernetes import KubernetesSettings, inference_service_of;"
    "from tasks.algorithms import get_algorithm;"
    "d = Deployment('image_classification', 's3://m/image_classification/models/r/model.tar.gz',"
    " 'r', 3, 's3://m/serving/image_classification',"
    " get_algorithm('image-classification').environment);"
    "print(json.dumps(inference_service_of(d, KubernetesSettings(namespace='ml'))))"
)


def test_the_deploy_step_checks_an_inference_service_with_the_schema_it_carries(podman):
    import json

    done = podman.run(AIRFLOW, "python", "-c", RENDER, hardened=False, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    resource = json.loads(done.stdout.strip().splitlines()[-1])
    model = resource["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://m/serving/image_classification"
    assert model["securityContext"]["readOnlyRootFilesystem"] is True


QUALITY = (
    'set -e; cd /tmp; python -c "from pathlib import Path; from tasks.data.profile import *;'
    "write_profile(Path('p.csv.gz'), [ProfileRow('train', i % 2, f'{i}.jpg',"
    " ImageFacts(8, 8, 'RGB', 9)) for i in range(4)])\";"
    " $VISION_PIPELINES_GE_PYTHON -m tasks.quality --profile p.csv.gz"
    " --suite /opt/vision-pipelines/expectations/image_classification.json --output q >&2;"
    " cat q/quality.json"
)


def test_the_data_quality_step_runs_great_expectations_in_its_own_environment(podman):
    import json

    done = podman.run(AIRFLOW, "sh", "-c", QUALITY, hardened=False, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["success"] is True and summary["rows"] == 4
    assert any("no champion profile" in line for line in summary["skipped"])

"""deploy/: the Helm values name only settings our code reads, and the RBAC objects are valid
Kubernetes objects granting what the runners do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from tests.operators.test_kubernetes_job import KUBERNETES_VERSION

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def test_the_rbac_objects_are_valid_kubernetes_objects():
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes/rbac.yaml").read_text()))
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    role = next(d for d in documents if d["kind"] == "Role")
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # KubernetesPodOperator: create, watch, read logs, patch labels, delete; the Job runner:
    # the Job, its headless Service, and its pods found by label.
    assert {"create", "get", "watch", "delete", "patch"} <= granted[("", "pods")]
    assert granted[("", "pods/log")] == {"get"}
    assert {"create", "get", "delete"} <= granted[("", "services")]
    assert {"create", "get", "delete"} <= granted[("batch", "jobs")]
    # The deploy step: get, then create or replace (update) the champion's InferenceService.
    assert granted[("serving.kserve.io", "inferenceservices")] == {"create", "get", "update"}
    # Nothing beyond the steps' namespace, and no secrets.
    assert all(d["metadata"]["namespace"] == role["metadata"]["namespace"] for d in documents)
    assert not any(resource == "secrets" for _, resource in granted)


def test_the_helm_values_name_settings_our_code_reads_and_our_images():
    values = yaml.safe_load((DEPLOY / "helm/values.yaml").read_text())
    names = {e["name"] for e in values["env"]} | {s["envName"] for s in values["secret"]}
    code = subprocess.run(
        ["git", "grep", "-h", "-o", r"VISION_PIPELINES_[A-Z0-9_]*", "--", "operators", "tasks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names - set(code) == set(), "settings no code reads"
    assert values["executor"] in ("KubernetesExecutor", "CeleryExecutor")
    assert values["images"]["airflow"]["repository"].endswith("/vision-pipelines-airflow")
    trainer = next(
        e["value"] for e in values["env"] if e["name"] == "VISION_PIPELINES_TRAINER_IMAGES"
    )
    assert re.search(r"/vision-pipelines-trainer:", trainer)
    assert values["uid"] == 50000  # the Airflow image's user

"""runner=kubernetes with instance_count > 1: the train step as an Indexed Job of hardened pods
and a headless Service, valid Kubernetes objects; their clean-up; the refusal elsewhere."""

from __future__ import annotations

import json
from types import SimpleNamespace

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient

from operators.container import ContainerStepOperator, container_task
from operators.kubernetes_pods import KubernetesSettings
from operators.refusals import RunRefused
from operators.runners._kubernetes_job import WORKERS_LABEL, WorkersJobOperator
from operators.runners.base import StepRequest
from operators.runners.kubernetes import KubernetesRunner
from tasks.algorithms import TRAINER
from tasks.errors import InputError
from tasks.training.cluster import HEARTBEAT_TIMEOUT_ENV, from_indexed_job, heartbeat_timeout_s
from tasks.tuning.rounds import round_arguments
from tasks.tuning.study import Unit
from tests.operators.test_container import STEP


class Prepared(str):
    """What a data-preparation task returned, whatever the template reads of it."""

    def __getattr__(self, name: str) -> Prepared:
        return Prepared(f"{self}/{name}")

    def __getitem__(self, key) -> Prepared:
        return Prepared(f"{self}/{key}")


TI = SimpleNamespace(
    dag_id="image_classification",
    task_id="train",
    map_index=-1,
    try_number=1,
    xcom_push=lambda **_: None,
    xcom_pull=lambda *_, **__: Prepared("s3://b/out/prepared"),
)
CONTEXT = {"run_id": "manual__2026-12-02", "ti": TI, "dag": SimpleNamespace()}
KUBERNETES_VERSION = "1.33"


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("VISION_PIPELINES_TRAINER_IMAGES", "registry.example/trainer:1.2")


def valid(obj) -> dict:
    """The object as the API server receives it, checked against Kubernetes' schema (strict:
    unknown fields are errors too)."""
    document = ApiClient().sanitize_for_serialization(obj)
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    return document


def job_operator(count: int = 2, gpus: int = 2) -> WorkersJobOperator:
    op = KubernetesRunner(KubernetesSettings(namespace="ml")).build(
        StepRequest(
            task_id="train",
            step=STEP,
            environment=TRAINER,
            image="registry.example/trainer:1.2",
            gpus=gpus,
            instance_count=count,
        )
    )
    assert isinstance(op, WorkersJobOperator)
    op.__dict__["hook"] = SimpleNamespace(is_in_cluster=False)
    return op


def test_the_indexed_job_and_its_service_are_valid_hardened_and_find_each_other():
    op = job_operator(count=3)
    job = valid(op.build_job_request_obj(CONTEXT))
    service = valid(op.service(CONTEXT))

    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == 3
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 24 * 3600
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["args"] == STEP.arguments("/opt/ml")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False

    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert pod["subdomain"] == service["metadata"]["name"]
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == {WORKERS_LABEL: labels[WORKERS_LABEL]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["VISION_PIPELINES_INSTANCE_COUNT"] == "3"
    assert env[HEARTBEAT_TIMEOUT_ENV] == "60"

    # What tasks.train makes of it in the pod Kubernetes names <job>-1 (JOB_COMPLETION_INDEX=1).
    name = job["metadata"]["name"]
    workers = from_indexed_job({**env, "JOB_COMPLETION_INDEX": "1"}, f"{name}-1")
    assert workers.index == 1
    assert workers.hosts == tuple(
        f"{name}-{i}.{service['metadata']['name']}:2222" for i in range(3)
    )


def test_the_single_step_pod_is_valid_too():
    op = KubernetesRunner(KubernetesSettings(namespace="ml")).build(
        StepRequest(task_id="train", step=STEP, environment=TRAINER, gpus=1)
    )
    assert valid(op.build_pod_request_obj(dry_run=True))["kind"] == "Pod"


def test_a_local_runner_refuses_several_machines_with_a_sentence():
    with pytest.raises(RunRefused, match=r"\[Machines\] instance_count 2 needs") as e:
        container_task(task_id="train", step=STEP, runner="local", instance_count=2)
    assert "[Runner] local trains on one: set [Machines] to 1 or [Runner] to kubernetes" in str(
        e.value
    )


def test_only_training_runs_on_several_machines():
    op = ContainerStepOperator(
        task_id="evaluate",
        step="evaluate",
        channels=dict(STEP.channels),
        output_uri=STEP.output_uri,
        runner="kubernetes",
        instance_count="4",
    )
    assert type(op.build({**CONTEXT, "logical_date": None})).__name__ == "KubernetesPodOperator"


def rendered(task, dag, params: dict) -> dict:
    """Render `task`'s templated fields as a run of `dag` with `params` would; the context."""
    env = dag.get_template_env()
    context = {**CONTEXT, "params": params, "dag": dag, "logical_date": None}
    context["dag_run"] = SimpleNamespace(logical_date=None)
    for field in task.template_fields:
        value = getattr(task, field)
        if isinstance(value, str):
            setattr(task, field, env.from_string(value).render(**context))
        elif isinstance(value, dict):
            setattr(
                task,
                field,
                {k: env.from_string(str(v)).render(**context) for k, v in value.items()},
            )
    return context


def image_classification_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    from tests.dags.test_dag_integrity import ROOT

    return DagBag(dag_folder=str(ROOT / "dags" / "image_classification.py")).dags


def cluster_params(dag, **overrides) -> dict:
    return {
        **{k: dag.params[k] for k in dag.params},
        "output_uri": "s3://b/out",
        "dataset_uri": "s3://b/data",
        "runner": "kubernetes",
        **overrides,
    }


def test_the_pipeline_with_two_machines_on_kubernetes_renders_the_job_and_service():
    dag = image_classification_dags()["image_classification"]
    task = dag.get_task("train")
    params = cluster_params(dag, instance_count=2)
    context = rendered(task, dag, params)
    op = task.build(context)
    assert isinstance(op, WorkersJobOperator)
    op.__dict__["hook"] = SimpleNamespace(is_in_cluster=False)
    job = valid(op.build_job_request_obj(context))
    assert job["spec"]["parallelism"] == 2
    assert valid(op.service(context))["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("machines", [1, 2])
def test_tuning_trials_render_as_pods_and_as_indexed_jobs(machines):
    """Issue 41: a trial of the tuning DAG is the train step on the run's runner: a pod, or an
    Indexed Job with instance_count 2, resuming from the trial's checkpoints in storage."""
    dag = image_classification_dags()["image_classification_tuning"]
    unit = Unit(3, {"learning_rate": "0.01", "optimizer": "adam"}, epochs=3, done=1)
    [arguments] = round_arguments(
        [unit],
        "s3://b/out/run=1/tuning",
        channels={"train": "s3://b/out/run=1/recordio/train"},
        hyperparameters={"num_classes": "4", "epochs": "9", "learning_rate": "0.1"},
    )
    task = dag.get_task("trials_0").unmap(arguments)
    context = rendered(task, dag, cluster_params(dag, instance_count=machines))
    op = task.build(context)
    if machines == 1:
        pod = valid(op.build_pod_request_obj(dry_run=True))
        args = pod["spec"]["containers"][0]["args"]
    else:
        assert isinstance(op, WorkersJobOperator)
        op.__dict__["hook"] = SimpleNamespace(is_in_cluster=False)
        job = valid(op.build_job_request_obj(context))
        assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["parallelism"] == 2
        args = job["spec"]["template"]["spec"]["containers"][0]["args"]

    def value(flag: str) -> str:
        return args[args.index(flag) + 1]

    assert value("--checkpoint-uri") == "s3://b/out/run=1/tuning/trials/003/checkpoints"
    assert value("--output-uri") == "s3://b/out/run=1/tuning/trials/003/epochs-3"
    assert json.loads(value("--hyperparameters")) == {
        "num_classes": "4",
        "epochs": "3",
        "learning_rate": "0.01",
        "optimizer": "adam",
    }
    assert value("--channel") == "train=s3://b/out/run=1/recordio/train"


def test_the_workers_heartbeat_timeout_is_the_deployments_checked_before_any_pod(monkeypatch):
    monkeypatch.setenv(HEARTBEAT_TIMEOUT_ENV, "90")
    container = valid(job_operator().build_job_request_obj(CONTEXT))["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container["containers"][0]["env"]}
    assert env[HEARTBEAT_TIMEOUT_ENV] == "90"

    monkeypatch.setenv(HEARTBEAT_TIMEOUT_ENV, "soon")
    with pytest.raises(RunRefused):
        job_operator()


def test_a_heartbeat_timeout_defaults_to_60_seconds(monkeypatch):
    monkeypatch.delenv(HEARTBEAT_TIMEOUT_ENV, raising=False)
    assert heartbeat_timeout_s() == 60
    monkeypatch.setenv(HEARTBEAT_TIMEOUT_ENV, " 90 ")
    assert heartbeat_timeout_s() == 90
    monkeypatch.setenv("AIRFLOW__VISION_PIPELINES__HEARTBEAT_TIMEOUT_SECONDS", "120")
    assert heartbeat_timeout_s() == 120  # the Airflow side's configuration first


@pytest.mark.parametrize("bad", ["0", "-5", "1.5", "soon"])
def test_a_heartbeat_timeout_is_whole_seconds(bad, monkeypatch):
    monkeypatch.setenv(HEARTBEAT_TIMEOUT_ENV, bad)
    with pytest.raises(InputError) as refused:
        heartbeat_timeout_s()
    assert (
        str(refused.value)
        == f"setting {HEARTBEAT_TIMEOUT_ENV}={bad!r}: allowed: a whole number >= 1"
    )

"""The kubernetes runner through the real client stack: the provider's operators and hook, the
kubernetes client and the triggerer's async client, against the stand-in API server
(tests/operators/kube_api.py) reached through the `kubernetes_default` connection: create,
defer, resume on a new operator instance, retry, deadline, kill while running, clear while
deferred (the trigger rebuilt from what the trigger table stores); one machine (a pod) and
several (an Indexed Job); every pod's log lines in the task log; nothing left in the cluster."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from kubernetes.client.exceptions import ApiException

from operators.container import ContainerStepOperator
from tasks.contract import SUMMARY
from tests.operators.kube_api import kube_api

OUTPUT = "memory://bucket/run/train"


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    with kube_api(tmp_path) as (api, config):
        connection = {"conn_type": "kubernetes", "extra": {"kube_config_path": str(config)}}
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("VISION_PIPELINES_TRAINER_IMAGES", "registry.example/trainer:1.2")
        monkeypatch.setenv("VISION_PIPELINES_K8S_NAMESPACE", "ml")
        yield api


def context(try_number: int = 1) -> dict:
    ti = SimpleNamespace(
        dag_id="image_classification", task_id="train", run_id="manual__2026-12-06",
        map_index=-1, try_number=try_number, xcom_push=lambda **_: None,
    )  # fmt: skip
    return {"run_id": ti.run_id, "ti": ti, "dag": SimpleNamespace(), "logical_date": None,
            "outlet_events": {}}  # fmt: skip


def train_step(instance_count: int) -> ContainerStepOperator:
    return ContainerStepOperator(
        task_id="train",
        step="train",
        channels={"train": "s3://bucket/run/recordio/train"},
        output_uri=OUTPUT,
        hyperparameters={"num_classes": "4", "epochs": "3"},
        runner="kubernetes",
        instance_count=str(instance_count),
        deferrable=True,
    )


def fire(trigger) -> dict:
    """The trigger's first event, as the triggerer's async client gets it."""

    async def first():
        async for event in trigger.run():
            return event.payload

    return asyncio.run(first())


def publish_results() -> None:
    """What the step's pods upload when they succeed."""
    out = ObjectStoragePath(OUTPUT)
    (out / SUMMARY).write_text(json.dumps({"exit_code": 0, "primary_metric": "accuracy",
                                           "value": 0.9}))  # fmt: skip
    (out / "metrics.json").write_text(json.dumps({"final": {"validation_accuracy": 0.9}}))


def nothing_left(cluster) -> bool:
    return not (cluster.names("jobs") or cluster.names("services") or cluster.names("pods"))


def test_a_resumed_multi_machine_step_deletes_its_job_and_service(cluster, capsys):
    with pytest.raises(TaskDeferred) as deferred:
        train_step(2).execute(context())
    [job] = cluster.names("jobs")
    [service] = cluster.names("services")
    assert len(cluster.pods_of("ml", job)) == 2
    cluster.finish_job("ml", job, succeeded=True)
    event = fire(deferred.value.trigger)
    assert event["status"] == "success"
    publish_results()
    resumed = train_step(2)  # a new instance: what a triggerer hands back to a worker
    resumed.execute_complete(context(), event, **deferred.value.kwargs)
    assert nothing_left(cluster)
    assert ("DELETE", f"/apis/batch/v1/namespaces/ml/jobs/{job}") in cluster.requests
    assert ("DELETE", f"/api/v1/namespaces/ml/services/{service}") in cluster.requests
    logged = capsys.readouterr().out
    assert all(f"log line of {pod}" in logged for pod in (f"{job}-0-x0000", f"{job}-1-x0001"))


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_step_that_waits_for_its_job_cleans_up_after_success_and_failure(cluster, succeeded):
    cluster.jobs_end = (succeeded, "BackoffLimitExceeded")
    operator = train_step(2).build(context())
    operator.deferrable = False
    if succeeded:
        operator.execute(context())
    else:
        with pytest.raises(AirflowException, match="BackoffLimitExceeded"):
            operator.execute(context())
    assert nothing_left(cluster)


def test_a_retry_after_a_failed_try_makes_its_own_job(cluster):
    cluster.jobs_end = (False, "BackoffLimitExceeded")
    first = train_step(2).build(context(try_number=1))
    first.deferrable = False
    with pytest.raises(AirflowException):
        first.execute(context(try_number=1))
    created = [path for method, path in cluster.requests if method == "POST"]
    cluster.jobs_end = (True, "")
    second = train_step(2).build(context(try_number=2))
    second.deferrable = False
    second.execute(context(try_number=2))
    jobs = [p for m, p in cluster.requests if m == "POST" and p.endswith("/jobs")]
    deleted = [p for m, p in cluster.requests if m == "DELETE" and "/jobs/" in p]
    assert len(created) == 2 and len(jobs) == 2
    assert len(set(deleted)) == 2, deleted  # two names, each deleted
    assert nothing_left(cluster)


def test_a_worker_that_never_schedules_fails_the_step_at_the_deadline(cluster):
    """The Job's activeDeadlineSeconds ends it (DeadlineExceeded) with pods still Pending."""
    with pytest.raises(TaskDeferred) as deferred:
        train_step(2).execute(context())
    [job] = cluster.names("jobs")
    assert cluster.get("jobs", "ml", job)["spec"]["activeDeadlineSeconds"] > 0
    cluster.finish_job("ml", job, succeeded=False, reason="DeadlineExceeded")
    event = fire(deferred.value.trigger)
    with pytest.raises(AirflowException, match="DeadlineExceeded"):
        train_step(2).execute_complete(context(), event, **deferred.value.kwargs)
    assert nothing_left(cluster)


def test_a_step_killed_while_its_job_runs_deletes_it(cluster):
    """Clearing a running task calls on_kill on the instance that runs it."""
    operator = train_step(2).build(context())
    operator.deferrable = False
    operator.job_poll_interval = 0.2
    failed: list[ApiException] = []

    def run() -> None:
        try:
            operator.execute(context())
        except ApiException as e:  # the Job vanishes under the waiting task (404)
            failed.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30

    def waiting() -> bool:  # the task polls its Job's status
        return any(m == "GET" and "/jobs/" in p for m, p in cluster.requests)

    while not waiting() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert waiting()
    operator.on_kill()
    thread.join(30)
    assert not thread.is_alive() and failed
    assert nothing_left(cluster)


def triggerer_copy(trigger):
    """The trigger as the triggerer runs it: rebuilt from what it serialized, in another
    process (here: another instance) than the task that deferred."""
    from airflow._shared.module_loading import import_string
    from airflow.models.trigger import Trigger

    classpath, kwargs = trigger.serialize()
    stored = Trigger.encrypt_kwargs(kwargs)  # as the trigger table keeps them
    return import_string(classpath)(**Trigger._decrypt_kwargs(stored))


def test_a_step_cleared_while_deferred_deletes_its_job_and_service(cluster):
    """A user clearing (or marking) a deferred task: no worker runs the operator any more, the
    triggerer calls the trigger's on_kill; a triggerer restart (cleanup alone) deletes nothing."""
    with pytest.raises(TaskDeferred) as deferred:
        train_step(2).execute(context())
    trigger = triggerer_copy(deferred.value.trigger)
    asyncio.run(trigger.cleanup())  # the triggerer restarting: the Job runs on
    assert cluster.names("jobs") and cluster.names("services") and cluster.names("pods")
    asyncio.run(trigger.on_kill())
    assert nothing_left(cluster)
    asyncio.run(triggerer_copy(deferred.value.trigger).on_kill())  # twice: already gone, quiet


def test_a_resumed_single_machine_step_deletes_its_pod_and_logs_it(cluster, capsys):
    """One machine: the provider's pod operator defers to its pod trigger; the pod's phases
    as the triggerer's async client polls them; the step resumes on a new instance."""
    with pytest.raises(TaskDeferred) as deferred:
        train_step(1).execute(context())
    [pod] = cluster.names("pods")
    assert not cluster.names("jobs")
    cluster.set_pod_phase("ml", pod, "Running")
    cluster.set_pod_phase("ml", pod, "Succeeded")
    event = fire(triggerer_copy(deferred.value.trigger))
    assert event["status"] == "success", event
    publish_results()
    train_step(1).execute_complete(context(), event, **deferred.value.kwargs)
    assert nothing_left(cluster)
    assert f"log line of {pod}" in capsys.readouterr().out


def test_a_single_machine_step_cleared_while_deferred_deletes_its_pod(cluster):
    with pytest.raises(TaskDeferred) as deferred:
        train_step(1).execute(context())
    assert cluster.names("pods")
    asyncio.run(triggerer_copy(deferred.value.trigger).on_kill())
    assert nothing_left(cluster)

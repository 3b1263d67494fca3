"""Training on several machines with runner=kubernetes: the train step as an Indexed Job
(completion_mode=Indexed, parallelism = completions = instance_count), its pods the same
hardened pod as a single step's, plus a headless Service that gives each worker a DNS name
(`<job>-<index>.<service>`). tasks.train builds TF_CONFIG from the pod's JOB_COMPLETION_INDEX,
hostname and subdomain (tasks/training/cluster.py). The Job and the Service are deleted when
the step ends, fails or is killed, also when it resumes after a deferral on another operator
instance (the Job's name comes from the trigger's event) and when a user clears, fails or
succeeds the task while it is deferred (the trigger's on_kill, which the triggerer calls for
those and not when it restarts); a finished Job left behind anyway goes after JOB_TTL_SECONDS
(ttlSecondsAfterFinished)."""

from __future__ import annotations

import hashlib
from typing import Any

from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.cncf.kubernetes.triggers.job import KubernetesJobTrigger
from airflow.sdk.exceptions import TaskDeferred
from kubernetes.client import models as k8s

from operators.kubernetes_pods import KubernetesSettings
from operators.refusals import refuse
from operators.runners.base import StepRequest
from tasks.errors import InputError
from tasks.settings import setting
from tasks.training.cluster import (
    DEFAULT_PORT,
    HEARTBEAT_TIMEOUT_ENV,
    INSTANCE_COUNT_ENV,
    SUBDOMAIN_ENV,
    heartbeat_timeout_s,
)

JOB_DEADLINE_ENV = "VISION_PIPELINES_K8S_JOB_DEADLINE_SECONDS"
"""A Job whose workers are not all done by then fails (a worker never scheduled, e.g. no GPU
free, would otherwise keep the others waiting)."""
WORKERS_LABEL = "vision-pipelines/workers"
JOB_TTL_SECONDS = 3600
"""The cluster deletes a finished Job (and its pods) this long after it ended, whatever became
of the task that made it."""


def headless_service(name: str, namespace: str) -> k8s.V1Service:
    """DNS names for the workers' pods, resolvable before they are ready (they must find each
    other to become ready)."""
    return k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=k8s.V1ObjectMeta(
            name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "vision-pipelines"}
        ),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None",
            publish_not_ready_addresses=True,
            selector={WORKERS_LABEL: name},
            ports=[k8s.V1ServicePort(name="workers", port=DEFAULT_PORT, target_port=DEFAULT_PORT)],
        ),
    )


class WorkersJobTrigger(KubernetesJobTrigger):
    """The provider's Job trigger, and what the step created (its Job, the workers' Service)
    deleted when a user acts on the deferred task."""

    def __init__(self, *, service_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__qualname__}", {
            **kwargs,
            "service_name": self.service_name,
        }

    async def on_kill(self) -> None:
        from kubernetes_asyncio import client

        async with self.hook.get_conn() as api:
            deletions = (
                client.BatchV1Api(api).delete_namespaced_job(
                    self.job_name, self.job_namespace, propagation_policy="Foreground"
                ),
                client.CoreV1Api(api).delete_namespaced_service(
                    self.service_name, self.job_namespace
                ),
            )
            for deletion in deletions:
                try:
                    await deletion
                except client.ApiException as e:
                    if e.status != 404:  # best effort: the task is being killed anyway
                        self.log.warning("could not delete %s: %s", self.job_name, e)


class WorkersJobOperator(KubernetesJobOperator):
    """KubernetesJobOperator with the workers' Service around the Job."""

    def __init__(self, *, instance_count: int, heartbeat_timeout_s: int, **kwargs: Any) -> None:
        super().__init__(
            completion_mode="Indexed",
            completions=instance_count,
            parallelism=instance_count,
            # A failed worker fails the step; Airflow's retry restarts every worker, which
            # resume from the chief's last checkpoint.
            backoff_limit=0,
            wait_until_job_complete=True,
            ttl_seconds_after_finished=JOB_TTL_SECONDS,
            **kwargs,
        )
        self.instance_count = instance_count
        self.heartbeat_timeout_s = heartbeat_timeout_s

    def service(self, context: Any) -> k8s.V1Service:
        return headless_service(self.service_name(context), self.namespace)

    def service_name(self, context: Any) -> str:
        digest = hashlib.sha256(f"{self.task_id}/{context['run_id']}".encode()).hexdigest()[:10]
        return f"vision-workers-{digest}"

    def build_job_request_obj(self, context: Any = None) -> k8s.V1Job:
        job = super().build_job_request_obj(context)
        name = self.service_name(context)
        pod = job.spec.template
        pod.metadata.labels = {**(pod.metadata.labels or {}), WORKERS_LABEL: name}
        pod.spec.subdomain = name
        container = pod.spec.containers[0]
        container.env = [
            *(container.env or []),
            k8s.V1EnvVar(name=INSTANCE_COUNT_ENV, value=str(self.instance_count)),
            k8s.V1EnvVar(name=SUBDOMAIN_ENV, value=name),
            k8s.V1EnvVar(name=HEARTBEAT_TIMEOUT_ENV, value=str(self.heartbeat_timeout_s)),
        ]
        container.ports = [k8s.V1ContainerPort(name="workers", container_port=DEFAULT_PORT)]
        return job

    def execute(self, context: Any) -> Any:
        self._delete_service(context)  # a leftover of an attempt that was killed
        self.hook.core_v1_client.create_namespaced_service(self.namespace, self.service(context))
        self._context = context
        try:
            result = super().execute(context)
        except TaskDeferred:
            raise  # execute_complete cleans up
        except BaseException:
            self._clean_up(context, self.job)
            raise
        self._clean_up(context, self.job)
        return result

    def execute_deferrable(self) -> None:
        trigger = WorkersJobTrigger(
            service_name=self.service_name(self._context),
            job_name=self.job.metadata.name,
            job_namespace=self.job.metadata.namespace,
            pod_names=[pod.metadata.name for pod in self.pods],
            pod_namespace=self.pods[0].metadata.namespace,
            base_container_name=self.base_container_name,
            kubernetes_conn_id=self.kubernetes_conn_id,
            cluster_context=self.cluster_context,
            config_file=self.config_file,
            in_cluster=self.in_cluster,
            poll_interval=self.job_poll_interval,
            get_logs=self.get_logs,
            do_xcom_push=self.do_xcom_push,
        )
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict, **kwargs: Any) -> Any:
        """Resume (on any instance): the Job is the one the trigger's event names."""
        try:
            return super().execute_complete(context, event, **kwargs)
        finally:
            job = event.get("job") or {}
            metadata = job.get("metadata") or {}
            self._clean_up(
                context,
                k8s.V1Job(
                    metadata=k8s.V1ObjectMeta(
                        name=event.get("name") or metadata.get("name"),
                        namespace=event.get("namespace") or metadata.get("namespace"),
                    )
                ),
            )

    def on_kill(self) -> None:
        super().on_kill()
        context = getattr(self, "_context", None)
        if context is not None:
            self._delete_service(context)

    def _clean_up(self, context: Any, job: k8s.V1Job | None) -> None:
        from kubernetes.client.exceptions import ApiException

        if job is not None and job.metadata is not None and job.metadata.name:
            try:
                self.hook.batch_v1_client.delete_namespaced_job(
                    job.metadata.name,
                    job.metadata.namespace or self.namespace,
                    propagation_policy="Foreground",
                )
            except ApiException as e:
                if e.status != 404:  # gone already (its TTL, or an operator by hand)
                    raise
        self._delete_service(context)

    def _delete_service(self, context: Any) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.hook.core_v1_client.delete_namespaced_service(
                self.service_name(context), self.namespace
            )
        except ApiException as e:
            if e.status != 404:
                raise


def workers_job(
    request: StepRequest, settings: KubernetesSettings, pod: dict[str, Any]
) -> WorkersJobOperator:
    """The Indexed Job of `request.instance_count` workers, each pod as `pod` describes."""
    deadline = setting(JOB_DEADLINE_ENV)
    try:  # the deployment's setting, checked before any pod starts
        heartbeat = heartbeat_timeout_s()
    except InputError as e:
        raise refuse(str(e)) from e
    return WorkersJobOperator(
        instance_count=request.instance_count,
        heartbeat_timeout_s=heartbeat,
        active_deadline_seconds=deadline,
        **pod,
    )

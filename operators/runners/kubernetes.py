"""runner=kubernetes: the step as a pod of the trainer image (KubernetesPodOperator), deferred
while it runs; channels are staged from object storage inside the pod. Training on several
machines: an Indexed Job (the private helper module _kubernetes_job, imported only then)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from operators.images import allowed_images, check_image
from operators.kubernetes_pods import (
    POD_ML_ROOT,
    POD_VOLUMES,
    KubernetesSettings,
    container_security_context,
    pod_security_context,
    with_gpus,
)
from operators.refusals import refuse
from operators.runners.base import STEP_ENVIRONMENT, StepRequest, StepRunner
from tasks.settings import step_environment
from tasks.signing import KEY_ENV as MODEL_KEY_ENV


def pod_arguments(request: StepRequest, settings: KubernetesSettings) -> dict[str, Any]:
    """The hardened pod of one step (KubernetesPodOperator's arguments; a Job's pod template
    takes the same)."""
    step, gpus, image = request.step, request.gpus, request.image
    local = [
        u
        for u in (*step.channels.values(), step.output_uri)
        if "://" not in u or u.startswith("file://")
    ]
    if local:
        raise refuse(
            f"runner=kubernetes: the pod cannot see local paths ({', '.join(local)}); use "
            "object storage URIs (s3://...) for the dataset and output, or runner=local"
        )
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    resources = with_gpus(settings.resources, gpus)
    return dict(
        task_id=request.task_id,
        name=f"vision-{step.step}",
        kubernetes_conn_id=settings.conn_id,
        namespace=settings.namespace,
        image=check_image(image or allowed_images(request.environment)[0], request.environment),
        image_pull_policy=settings.image_pull_policy,
        # PID 1 in the pod: tasks.job handles SIGTERM itself (the image's tini entrypoint
        # serves `docker run`).
        cmds=["python", "-m", "tasks.job"],
        arguments=step.arguments(POD_ML_ROOT),
        container_resources=k8s.V1ResourceRequirements(
            requests=resources.get("requests"),
            limits=resources.get("limits"),
        ),
        security_context=pod_security_context(),
        container_security_context=container_security_context(),
        volumes=[
            k8s.V1Volume(name=name, empty_dir=k8s.V1EmptyDirVolumeSource()) for name in POD_VOLUMES
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name=name, mount_path=path) for name, path in POD_VOLUMES.items()
        ],
        automount_service_account_token=settings.automount_token,
        node_selector=dict(settings.node_selector),
        tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations],
        service_account_name=settings.service_account,
        labels={
            "app.kubernetes.io/part-of": "vision-pipelines",
            "vision-pipelines/step": step.step,
        },
        env_vars={
            **step_environment(),
            **STEP_ENVIRONMENT,
            "HOME": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib",
        },
        secrets=[Secret("env", MODEL_KEY_ENV, settings.model_key_secret, "key")],
        get_logs=True,
        deferrable=request.deferrable,
    )


class KubernetesRunner(StepRunner):
    name = "kubernetes"
    description = "one pod per step, from the trainer image (training on several: an Indexed Job)"
    several_machines = True

    def __init__(self, settings: KubernetesSettings | None = None):
        self.settings = settings

    def build(self, request: StepRequest) -> BaseOperator:
        settings = self.settings or KubernetesSettings.from_env()
        arguments = pod_arguments(request, settings)
        if request.instance_count > 1:
            from operators.runners._kubernetes_job import workers_job

            return workers_job(request, settings, arguments)
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator(**arguments, on_finish_action="delete_pod")


RUNNER = KubernetesRunner()

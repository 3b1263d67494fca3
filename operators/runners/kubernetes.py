"""runner=kubernetes: the step as a pod of the trainer image (KubernetesPodOperator), deferred
while it runs; channels are staged from object storage inside the pod."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.images import allowed_images, check_image
from operators.runners.base import STEP_ENVIRONMENT, StepRequest, StepRunner
from tasks.signing import KEY_ENV as MODEL_KEY_ENV

POD_ML_ROOT = "/opt/ml"


def _json_env(name: str, default: Any) -> Any:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"environment variable {name} must be JSON, got {text!r}") from e


DEFAULT_RESOURCES = {
    "requests": {"cpu": "2", "memory": "8Gi"},
    "limits": {"cpu": "8", "memory": "32Gi"},
}
"""CPU and memory of a step pod unless the deployment says otherwise (GPUs come on top)."""
POD_USER = 1000
"""The trainer image's non-root user (docker/trainer/Dockerfile)."""
# Writable places on a read-only root filesystem: the ml-root and scratch space.
POD_VOLUMES = {"ml-root": POD_ML_ROOT, "tmp": "/tmp"}


@dataclass(frozen=True)
class KubernetesSettings:
    """Where and how training pods run; from `VISION_PIPELINES_K8S_*` environment variables."""

    namespace: str = "default"
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_policy: str = "IfNotPresent"
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: DEFAULT_RESOURCES)
    """{"requests": {"cpu", "memory"}, "limits": {...}} of every step pod."""
    automount_token: bool = False
    """Mount the service account's API token (the steps do not call the Kubernetes API)."""
    model_key_secret: str = "vision-pipelines-model-key"
    """The Secret whose `key` entry signs and checks model archives in the pods (every pod must
    share one key: a pod's own generated key would die with it)."""

    def __post_init__(self) -> None:
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"image_pull_policy must be Always, IfNotPresent or Never, got "
                f"{self.image_pull_policy!r}"
            )
        if not isinstance(self.node_selector, Mapping):
            raise ValueError(f"node_selector must be a JSON object, got {self.node_selector!r}")
        kinds = set(self.resources) if isinstance(self.resources, Mapping) else {None}
        if not kinds <= {"requests", "limits"} or not all(
            isinstance(v, Mapping) for v in self.resources.values()
        ):
            raise ValueError(
                'resources must be a JSON object like {"requests": {"cpu": "2", "memory": '
                f'"8Gi"}}, "limits": {{...}}}}, got {self.resources!r}'
            )

    @classmethod
    def from_env(cls) -> KubernetesSettings:
        return cls(
            namespace=os.environ.get("VISION_PIPELINES_K8S_NAMESPACE", "default"),
            service_account=os.environ.get("VISION_PIPELINES_K8S_SERVICE_ACCOUNT") or None,
            node_selector=_json_env("VISION_PIPELINES_K8S_NODE_SELECTOR", {}),
            tolerations=tuple(_json_env("VISION_PIPELINES_K8S_TOLERATIONS", [])),
            image_pull_policy=os.environ.get(
                "VISION_PIPELINES_K8S_IMAGE_PULL_POLICY", "IfNotPresent"
            ),
            resources=_json_env("VISION_PIPELINES_K8S_RESOURCES", DEFAULT_RESOURCES),
            automount_token=os.environ.get("VISION_PIPELINES_K8S_AUTOMOUNT_TOKEN", "") == "true",
            model_key_secret=os.environ.get(
                "VISION_PIPELINES_K8S_MODEL_KEY_SECRET", "vision-pipelines-model-key"
            ),
        )


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
        raise AirflowFailException(
            f"runner=kubernetes: the pod cannot see local paths ({', '.join(local)}); use "
            "object storage URIs (s3://...) for the dataset and output, or runner=local"
        )
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    gpu = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    resources = {kind: dict(settings.resources.get(kind, {})) for kind in ("requests", "limits")}
    return dict(
        task_id=request.task_id,
        name=f"vision-{step.step}",
        namespace=settings.namespace,
        image=check_image(image or allowed_images(request.environment)[0], request.environment),
        image_pull_policy=settings.image_pull_policy,
        # PID 1 in the pod: tasks.job handles SIGTERM itself (the image's tini entrypoint
        # serves `docker run`).
        cmds=["python", "-m", "tasks.job"],
        arguments=step.arguments(POD_ML_ROOT),
        container_resources=k8s.V1ResourceRequirements(
            requests={**resources["requests"], **gpu} or None,
            limits={**resources["limits"], **gpu} or None,
        ),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=POD_USER,
            run_as_group=POD_USER,
            fs_group=POD_USER,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            privileged=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
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
        env_vars={**STEP_ENVIRONMENT, "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"},
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
            from operators.runners.kubernetes_job import workers_job

            return workers_job(request, settings, arguments)
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator(**arguments, on_finish_action="delete_pod")

    def resume(self, operator: BaseOperator, context: Any, event: dict[str, Any]) -> None:
        from operators.runners.kubernetes_job import WorkersJobOperator

        if isinstance(operator, WorkersJobOperator):
            operator.execute_complete(context, event)
        else:
            operator.trigger_reentry(context, event)


RUNNER = KubernetesRunner()

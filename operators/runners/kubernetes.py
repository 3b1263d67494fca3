"""runner=kubernetes: the step as a pod of the trainer image (KubernetesPodOperator), deferred
while it runs; channels are staged from object storage inside the pod."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseOperator

from operators.images import allowed_images, check_image
from operators.refusals import refuse
from operators.runners.base import STEP_ENVIRONMENT, Deployment, StepRequest, StepRunner
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
DEFAULT_SERVING_RESOURCES = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
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
    serving_resources: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: DEFAULT_SERVING_RESOURCES
    )
    """CPU and memory of the served champion's pods (KServe's predictor)."""
    serving_gpus: int = 0
    """GPUs per predictor pod."""

    def __post_init__(self) -> None:
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"image_pull_policy must be Always, IfNotPresent or Never, got "
                f"{self.image_pull_policy!r}"
            )
        if not isinstance(self.node_selector, Mapping):
            raise ValueError(f"node_selector must be a JSON object, got {self.node_selector!r}")
        for name in ("resources", "serving_resources"):
            value = getattr(self, name)
            kinds = set(value) if isinstance(value, Mapping) else {None}
            if not kinds <= {"requests", "limits"} or not all(
                isinstance(v, Mapping) for v in value.values()
            ):
                raise ValueError(
                    f'{name} must be a JSON object like {{"requests": {{"cpu": "2", "memory": '
                    f'"8Gi"}}, "limits": {{...}}}}, got {value!r}'
                )
        if not isinstance(self.serving_gpus, int) or self.serving_gpus < 0:
            raise ValueError(f"serving_gpus must be a whole number >= 0, got {self.serving_gpus!r}")

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
            serving_resources=_json_env(
                "VISION_PIPELINES_K8S_SERVING_RESOURCES", DEFAULT_SERVING_RESOURCES
            ),
            serving_gpus=_json_env("VISION_PIPELINES_K8S_SERVING_GPUS", 0),
        )


def with_gpus(resources: Mapping[str, Mapping[str, str]], gpus: int) -> dict[str, dict[str, str]]:
    """`resources` ({"requests", "limits"}) with `gpus` NVIDIA GPUs in both; kinds left empty
    are left out."""
    gpu = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    merged = {kind: {**resources.get(kind, {}), **gpu} for kind in ("requests", "limits")}
    return {kind: values for kind, values in merged.items() if values}


def pod_security_context() -> Any:
    """Every pod of ours (steps and the served champion): non-root, the runtime's seccomp."""
    from kubernetes.client import models as k8s

    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=POD_USER,
        run_as_group=POD_USER,
        fs_group=POD_USER,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> Any:
    """Every container of ours: read-only root, no capabilities, no privilege escalation."""
    from kubernetes.client import models as k8s

    return k8s.V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
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
        env_vars={**STEP_ENVIRONMENT, "HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"},
        secrets=[Secret("env", MODEL_KEY_ENV, settings.model_key_secret, "key")],
        get_logs=True,
        deferrable=request.deferrable,
    )


def inference_service_of(deployment: Deployment, settings: KubernetesSettings) -> dict[str, Any]:
    """The champion's InferenceService with our pod hardening and the deployment's settings."""
    from kubernetes.client import ApiClient

    from tasks.serving.kserve import inference_service, service_name

    plain = ApiClient().sanitize_for_serialization
    gpu = settings.serving_gpus > 0
    return inference_service(
        name=service_name(deployment.pipeline),
        namespace=settings.namespace,
        storage_uri=deployment.model_base_path,
        resources=with_gpus(settings.serving_resources, settings.serving_gpus),
        pod_security=plain(pod_security_context()),
        container_security=plain(container_security_context()),
        service_account=settings.service_account,
        # The steps' node pool is the GPU pool: a CPU predictor is scheduled anywhere.
        node_selector=settings.node_selector if gpu else None,
        tolerations=settings.tolerations if gpu else (),
        labels={"vision-pipelines/pipeline": deployment.pipeline},
        annotations={
            "vision-pipelines/model-uri": deployment.model_uri,
            "vision-pipelines/run-id": deployment.run_id,
            # A new version changes the spec: KServe rolls out a new revision that loads it.
            "vision-pipelines/model-version": str(deployment.version),
        },
    )


def apply_inference_service(resource: Mapping[str, Any], log: Any) -> None:
    """Create the InferenceService, or replace the one of that name (same resourceVersion)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    from tasks.serving.kserve import GROUP, PLURAL, VERSION

    api = KubernetesHook().custom_object_client
    name, namespace = resource["metadata"]["name"], resource["metadata"]["namespace"]
    where = dict(group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL)
    try:
        current = api.get_namespaced_custom_object(name=name, **where)
    except ApiException as e:
        if e.status != 404:
            raise
        api.create_namespaced_custom_object(body=dict(resource), **where)
        log.info("created InferenceService %s/%s", namespace, name)
        return
    body = {**resource, "metadata": {**resource["metadata"]}}
    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    api.replace_namespaced_custom_object(name=name, body=body, **where)
    log.info("replaced InferenceService %s/%s", namespace, name)


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

    def deploy(self, deployment: Deployment, log: Any) -> dict[str, Any]:
        """A KServe InferenceService (TensorFlow Serving over the champion's versions),
        checked against KServe's schema, created or replaced."""
        settings = self.settings or KubernetesSettings.from_env()
        resource = inference_service_of(deployment, settings)
        apply_inference_service(resource, log)
        return {"inference_service": resource}


RUNNER = KubernetesRunner()

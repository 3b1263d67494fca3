"""Every Kubernetes pod of ours, the steps' and the served champion's: the deployment's settings
(`VISION_PIPELINES_K8S_*`) and the hardening they all share."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tasks.settings import setting_text

POD_ML_ROOT = "/opt/ml"
"""The container contract's ml-root in a step pod."""


def _json_env(name: str, default: Any) -> Any:
    value = setting_text(name)
    if value is None:
        return default
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise ValueError(f"setting {name} must be JSON, got {value!r}") from e


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
    """Where and how training pods run: the deployment's `K8S_*` settings (tasks/settings.py)."""

    conn_id: str = "kubernetes_default"
    """The Airflow connection to the cluster (the providers' `kubernetes_conn_id`)."""
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
            conn_id=setting_text("VISION_PIPELINES_KUBERNETES_CONN_ID") or "kubernetes_default",
            namespace=setting_text("VISION_PIPELINES_K8S_NAMESPACE") or "default",
            service_account=setting_text("VISION_PIPELINES_K8S_SERVICE_ACCOUNT"),
            node_selector=_json_env("VISION_PIPELINES_K8S_NODE_SELECTOR", {}),
            tolerations=tuple(_json_env("VISION_PIPELINES_K8S_TOLERATIONS", [])),
            image_pull_policy=setting_text("VISION_PIPELINES_K8S_IMAGE_PULL_POLICY")
            or "IfNotPresent",
            resources=_json_env("VISION_PIPELINES_K8S_RESOURCES", DEFAULT_RESOURCES),
            automount_token=setting_text("VISION_PIPELINES_K8S_AUTOMOUNT_TOKEN") == "true",
            model_key_secret=setting_text("VISION_PIPELINES_K8S_MODEL_KEY_SECRET")
            or "vision-pipelines-model-key",
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

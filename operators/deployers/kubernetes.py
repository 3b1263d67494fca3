"""Serving on Kubernetes: the champion as a KServe InferenceService (TensorFlow Serving over its
versions) with our pod hardening and the deployment's settings, checked against KServe's schema,
created or replaced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.deployers.base import Deployer, Deployment
from operators.kubernetes_pods import (
    KubernetesSettings,
    container_security_context,
    pod_security_context,
    with_gpus,
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


def apply_inference_service(resource: Mapping[str, Any], conn_id: str, log: Any) -> None:
    """Create the InferenceService, or replace the one of that name (same resourceVersion)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    from tasks.serving.kserve import GROUP, PLURAL, VERSION

    api = KubernetesHook(conn_id=conn_id).custom_object_client
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


class KServeDeployer(Deployer):
    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings | None = None):
        self.settings = settings

    def deploy(self, deployment: Deployment, log: Any) -> dict[str, Any]:
        settings = self.settings or KubernetesSettings.from_env()
        resource = inference_service_of(deployment, settings)
        apply_inference_service(resource, settings.conn_id, log)
        return {"inference_service": resource}


DEPLOYER = KServeDeployer()

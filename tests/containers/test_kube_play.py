"""The train step's pod as the kubernetes runner renders it, played by podman's `kube play`
(podman 4.3 plays the kinds and fields we render: a Pod, emptyDir volumes, the hardening,
env from a Secret, resources): the YAML goes in as it is, with only what a cluster adds to it,
the storage identity its admission would inject (here: an S3 emulator's endpoint and keys);
its channels come from S3 and its outputs go there."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from types import SimpleNamespace

import yaml

from tests.containers.conftest import TRAINER
from tests.containers.test_trainer_image import recordio_data
from tests.s3 import moto_server

BUCKET = "kube-play"
HOST = "host.containers.internal"
"""How a podman pod reaches the machine it runs on (the emulator listens there)."""


def _rendered_train_pod(monkeypatch, hyperparameters: dict) -> dict:
    """The runner's pod for a train step, as `kubectl get pod -o yaml` would show it."""
    from kubernetes.client import ApiClient

    from operators.container import ContainerStepOperator

    monkeypatch.setenv("VISION_PIPELINES_TRAINER_IMAGES", TRAINER)
    # This machine as the GPU pool: 2 cores, no GPU (the deployment's setting, not an edit).
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "6Gi"}}
    monkeypatch.setenv("VISION_PIPELINES_K8S_RESOURCES", json.dumps(resources))
    step = ContainerStepOperator(
        task_id="train",
        step="train",
        channels={c: f"s3://{BUCKET}/run/recordio/{c}" for c in ("train", "validation")},
        output_uri=f"s3://{BUCKET}/run/train",
        hyperparameters=hyperparameters,
        runner="kubernetes",
        gpus="0",
    )
    context = {"run_id": "manual__2026-12-06", "logical_date": None}
    pod = step.build(context).build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


def test_the_rendered_train_pod_plays_in_podman_and_writes_its_outputs(
    podman, tmp_path, monkeypatch
):
    import s3fs

    podman.require(TRAINER)
    data, hyperparameters = recordio_data(tmp_path, per_class=6)
    # Path-style requests to HOST: moto would read "host" as a bucket name (virtual hosts).
    server, port = moto_server("0.0.0.0", MOTO_S3_CUSTOM_ENDPOINTS=f"http://{HOST}:{{port}}")
    identity = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    s3 = s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": f"http://127.0.0.1:{port}"}
    )
    s3.mkdir(BUCKET)
    for channel in ("train", "validation"):
        s3.put(str(data / channel), f"{BUCKET}/run/recordio/", recursive=True)

    pod = _rendered_train_pod(monkeypatch, hyperparameters)
    pod["metadata"]["name"] = name = f"vision-train-{uuid.uuid4().hex[:8]}"
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    [key_ref] = [e for e in container["env"] if e["name"] == "VISION_PIPELINES_MODEL_KEY"]
    secret = key_ref["valueFrom"]["secretKeyRef"]
    injected = {**identity, "AWS_ENDPOINT_URL": f"http://{HOST}:{port}"}
    container["env"] += [{"name": k, "value": v} for k, v in injected.items()]
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump(pod))

    # The deployment's Secret, as podman keeps one for kube play (entries base64, as in a
    # Kubernetes Secret's data).
    secret_name = f"{secret['name']}-{uuid.uuid4().hex[:6]}"
    secret["name"] = secret_name
    manifest.write_text(yaml.safe_dump(pod))
    entry = base64.b64encode(uuid.uuid4().hex.encode() * 2).decode()
    subprocess.run(
        [podman.tool, "secret", "create", secret_name, "-"],
        input=json.dumps({secret["key"]: entry}),
        text=True,
        check=True,
        capture_output=True,
    )
    played = SimpleNamespace(returncode=None)
    try:
        played = subprocess.run(
            [podman.tool, "kube", "play", str(manifest)], capture_output=True, text=True
        )
        assert played.returncode == 0, played.stderr
        waited = subprocess.run(
            [podman.tool, "wait", f"{name}-base"], capture_output=True, text=True, timeout=600
        )
        logs = subprocess.run([podman.tool, "logs", f"{name}-base"], capture_output=True, text=True)
        assert waited.stdout.strip() == "0", (logs.stdout[-2000:], logs.stderr[-3000:])
        summary = json.loads(s3.cat(f"{BUCKET}/run/train/summary.json"))
        assert summary["status"] == "succeeded", summary
        assert s3.exists(f"{BUCKET}/run/train/model.tar.gz")
        assert "uploaded: " in logs.stdout + logs.stderr
    finally:
        if played.returncode is not None:
            subprocess.run([podman.tool, "kube", "down", str(manifest)], capture_output=True)
        subprocess.run([podman.tool, "secret", "rm", secret_name], capture_output=True)
        server.kill()

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException

from operators.container import ContainerStepOperator, container_task
from operators.kubernetes_pods import KubernetesSettings
from operators.refusals import RunRefused
from operators.runners.base import ContainerStep, StepRequest
from operators.runners.kubernetes import KubernetesRunner
from operators.runners.local import LocalStepOperator
from tasks.algorithms import TRAINER

STEP = ContainerStep(
    step="train",
    algorithm="image-classification",
    channels={"train": "s3://bucket/run/recordio/train", "validation": "s3://bucket/run/val"},
    output_uri="s3://bucket/run/train",
    hyperparameters={"num_classes": "4", "epochs": "3"},
)


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))


@pytest.fixture(autouse=True)
def allowed_images(monkeypatch):
    monkeypatch.setenv(
        "VISION_PIPELINES_TRAINER_IMAGES",
        "registry.example/trainer:1.2,vision-pipelines-trainer:latest,trainer:dev",
    )


def test_kubernetes_pod_renders_without_a_cluster():
    settings = KubernetesSettings(
        namespace="ml",
        service_account="trainer",
        node_selector={"gpu": "h100"},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    )
    op = KubernetesRunner(settings).build(
        StepRequest(
            task_id="train",
            step=STEP,
            environment=TRAINER,
            image="registry.example/trainer:1.2",
            gpus=2,
        )
    )
    assert isinstance(op, KubernetesPodOperator)
    pod = op.build_pod_request_obj(dry_run=True)
    container = pod.spec.containers[0]
    assert container.image == "registry.example/trainer:1.2"
    assert container.command == ["python", "-m", "tasks.job"]
    assert container.args == STEP.arguments("/opt/ml")
    assert container.args[:5] == [
        "train",
        "--algorithm",
        "image-classification",
        "--ml-root",
        "/opt/ml",
    ]
    assert container.resources.limits == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert container.resources.requests == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"}
    assert pod.metadata.namespace == "ml"
    assert pod.spec.service_account_name == "trainer"
    assert pod.spec.node_selector == {"gpu": "h100"}
    assert pod.spec.tolerations[0].key == "nvidia.com/gpu"


def test_local_runner_runs_the_same_command():
    op = container_task(task_id="train", step=STEP, runner="local", local_ml_root="/tmp/ml")
    assert isinstance(op, LocalStepOperator)
    assert op.arguments == STEP.arguments("/tmp/ml")
    hyperparameters = json.loads(op.arguments[op.arguments.index("--hyperparameters") + 1])
    assert hyperparameters == {"epochs": "3", "num_classes": "4"}


def test_unknown_runner_is_refused():
    with pytest.raises(ValueError, match="unknown runner 'docker'; allowed are local, kubernetes"):
        container_task(task_id="t", step=STEP, runner="docker")


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_K8S_NAMESPACE", "train")
    monkeypatch.setenv("VISION_PIPELINES_K8S_NODE_SELECTOR", '{"pool": "gpu"}')
    monkeypatch.setenv("VISION_PIPELINES_K8S_TOLERATIONS", "not json")
    with pytest.raises(ValueError, match="VISION_PIPELINES_K8S_TOLERATIONS must be JSON"):
        KubernetesSettings.from_env()
    monkeypatch.delenv("VISION_PIPELINES_K8S_TOLERATIONS")
    settings = KubernetesSettings.from_env()
    assert settings.namespace == "train" and settings.node_selector == {"pool": "gpu"}


def test_step_operator_builds_per_run_runner_and_keeps_derived_hyperparameters():
    op = ContainerStepOperator(
        task_id="train",
        step="train",
        channels=dict(STEP.channels),
        output_uri=STEP.output_uri,
        hyperparameters={"num_classes": 4, "epochs": 3},
        extra_hyperparameters='{"num_classes": "99", "momentum": "0.9"}',
        runner="kubernetes",
        image="trainer:dev",
        gpus="1",
    )
    context = {"run_id": "manual__x", "logical_date": datetime(2026, 1, 2, tzinfo=timezone.utc)}
    pod = op.build(context).build_pod_request_obj(dry_run=True)
    args = pod.spec.containers[0].args
    sent = json.loads(args[args.index("--hyperparameters") + 1])
    assert sent == {"num_classes": "4", "epochs": "3", "momentum": "0.9"}
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    op.runner = "local"
    local = op.build(context)
    ml_root = local.arguments[local.arguments.index("--ml-root") + 1]
    assert ml_root.endswith("/20260102T000000/train")


def test_dry_run_prints_the_pod(capsys):
    container_task(task_id="train", step=STEP, runner="kubernetes", image="trainer:dev").dry_run()
    printed = capsys.readouterr().out
    assert "image: trainer:dev" in printed and "nvidia.com/gpu: '1'" in printed


def test_kubernetes_refuses_local_paths_the_pod_cannot_see():
    local = ContainerStep(
        step="train",
        algorithm="image-classification",
        channels={"train": "file:///data/train"},
        output_uri="s3://b/out",
    )
    with pytest.raises(RunRefused, match="the pod cannot see local paths"):
        container_task(task_id="t", step=local, runner="kubernetes")


def test_killing_the_task_stops_the_local_step(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho started\nexec sleep 120\n")
    fake_python.chmod(0o755)
    op = LocalStepOperator(task_id="t", arguments=["train"], python=str(fake_python))
    errors: list[Exception] = []

    def run() -> None:
        try:
            op.run()
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while getattr(op, "_process", None) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the process to exist, not for a fixed time
    op.on_kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert op._process.poll() is not None
    assert errors and "exited with code" in str(errors[0])


def test_a_missing_trainer_environment_is_named(tmp_path):
    op = LocalStepOperator(task_id="t", arguments=["train"], python=str(tmp_path / "no-python"))
    with pytest.raises(RunRefused, match="no-python does not exist; run `make setup`"):
        op.run()


def _step(channels: dict[str, str], step: str = "train", **kwargs) -> ContainerStepOperator:
    return ContainerStepOperator(
        task_id=step, step=step, output_uri="s3://b/out", channels=channels, **kwargs
    )


def _arguments(op: ContainerStepOperator) -> list[str]:
    """The `python -m tasks.job` arguments the local runner would run."""
    return op.build({"run_id": "r", "logical_date": None}).arguments


def test_empty_channels_are_left_out():
    arguments = _arguments(_step({"train": "s3://b/t", "model": ""}, runner="local"))
    assert "--channel" in arguments and "model=" not in " ".join(arguments)


def _config_sent(op: ContainerStepOperator) -> dict | None:
    args = _arguments(op)
    if "--input-data-config" not in args:
        return None
    return json.loads(args[args.index("--input-data-config") + 1])


def test_pipe_input_mode_streams_the_training_channels_the_algorithm_can_stream():
    channels = {"train": "s3://b/t", "validation": "s3://b/v", "model": "s3://b/m.tar.gz"}
    train = _step(channels, input_mode="Pipe")
    # The initial model is staged as ever: only the data channels stream.
    assert _config_sent(train) == {
        "train": {"TrainingInputMode": "Pipe"},
        "validation": {"TrainingInputMode": "Pipe"},
    }
    train.input_mode = "File"
    assert _config_sent(train) is None
    evaluate = _step(
        {"model": "s3://b/m.tar.gz", "validation": "s3://b/v"}, "evaluate", input_mode="Pipe"
    )
    assert _config_sent(evaluate) is None


@pytest.mark.parametrize(
    ("algorithm", "mode", "message"),
    [
        (
            "image-classification",
            "Stream",
            "[Input mode] input_mode 'Stream'; allowed: File or Pipe",
        ),
        (
            "image-classification-tf",
            "Pipe",
            "[Input mode] input_mode Pipe: image-classification-tf reads its channels in File "
            "mode only",
        ),
    ],
)
def test_an_input_mode_the_algorithm_cannot_use_is_refused(algorithm, mode, message):
    op = _step({"train": "s3://b/t"}, algorithm=algorithm, input_mode=mode)
    with pytest.raises(RunRefused) as refused:
        _arguments(op)
    assert str(refused.value) == message


def _deferrable_step(out: str, **kwargs):
    return ContainerStepOperator(
        task_id="evaluate",
        step="evaluate",
        channels={"model": "s3://b/run/train/model.tar.gz", "validation": "s3://b/run/val"},
        output_uri=out,
        runner="kubernetes",
        image="trainer:dev",
        **kwargs,
    )


class _TaskInstance:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def test_kubernetes_steps_defer_and_resume_through_the_step_operator(tmp_path, monkeypatch):
    """The provider's deferrable path end to end, with the cluster calls replaced: execute
    defers on the pod trigger, and the resumed task (Airflow calls our own `execute_complete`,
    whatever the pod operator names its resume method) collects the step's outputs."""
    from airflow.sdk.exceptions import TaskDeferred
    from kubernetes.client import models as k8s

    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", '{"conn_type": "kubernetes"}')
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="vision-evaluate-abc", namespace="default"))
    monkeypatch.setattr(KubernetesPodOperator, "build_pod_request_obj", lambda self, ctx=None: pod)
    monkeypatch.setattr(KubernetesPodOperator, "get_or_create_pod", lambda self, **kw: pod)
    out = ObjectStoragePath(f"memory://steps/{tmp_path.name}/out")
    out.mkdir(parents=True, exist_ok=True)
    op = _deferrable_step(str(out))
    (out / "failure").write_text("reason of an earlier attempt\n")
    (out / "evaluation.json").write_text("{}")  # an earlier attempt's result
    ti = _TaskInstance()
    context = {"run_id": "manual__x", "logical_date": None, "ti": ti, "outlet_events": {}}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.method_name == "execute_complete"
    assert type(deferred.value.trigger).__name__ == "KubernetesPodTrigger"
    assert ti.pushed["pod_name"] == "vision-evaluate-abc"
    assert not (out / "failure").exists(), "a stale failure must not outlive a new attempt"
    assert not (out / "evaluation.json").exists(), "nor its results, if the pod never runs"

    seen = []
    monkeypatch.setattr(
        KubernetesPodOperator, "trigger_reentry", lambda self, ctx, event: seen.append(event)
    )
    (out / "evaluation.json").write_text(json.dumps({"accuracy": 0.75, "samples": 4}))
    (out / "summary.json").write_text(
        json.dumps({"exit_code": 0, "primary_metric": "accuracy", "value": 0.75})
    )
    event = {"status": "success", "name": "vision-evaluate-abc", "namespace": "default"}
    # As Airflow resumes: the deferral's kwargs and the event, on a freshly built operator.
    fresh = _deferrable_step(str(out))
    result = fresh.resume_execution(
        deferred.value.method_name, {**deferred.value.kwargs, "event": event}, context
    )
    assert seen == [event]
    assert result["metrics"] == {"accuracy": 0.75, "samples": 4}
    assert result["primary_metric"] == {"accuracy": 0.75}


@pytest.mark.parametrize(
    ("summary", "error"),
    [
        (
            {"exit_code": 2, "reason": "internal error: text that looks internal"},
            RunRefused,
        ),
        ({"exit_code": 1, "reason": "bad label: text that looks like bad input"}, AirflowException),
        (None, AirflowException),
    ],
)
def test_failure_class_comes_from_the_step_summary(tmp_path, monkeypatch, summary, error):
    from airflow.sdk.exceptions import AirflowException as Base

    out = ObjectStoragePath(f"memory://steps/{tmp_path.name}/out")
    out.mkdir(parents=True, exist_ok=True)

    def step_fails(self, ctx, event):
        if summary is not None:
            (out / "summary.json").write_text(json.dumps(summary))
        raise Base("pod failed")

    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", step_fails)
    op = _deferrable_step(str(out))
    context = {"run_id": "r", "logical_date": None, "ti": _TaskInstance(), "outlet_events": {}}
    with pytest.raises(error) as raised:
        op.execute_complete(
            context,
            {"status": "failed", "name": "p", "namespace": "default"},
            resume_method="trigger_reentry",
        )
    assert type(raised.value) is error
    if summary is None:
        assert "without reporting a result" in str(raised.value)
    else:
        assert summary["reason"] in str(
            raised.value
        )  # the class is the exit code's, not the text's


def test_no_trainer_outlives_a_sigkilled_task(tmp_path):
    """The task process is SIGKILLed (as the scheduler does to a stuck task): the local step it
    started must not keep running."""
    import os
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "trainer.pid"
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    fake_python.chmod(0o755)
    task = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from operators.runners.local import LocalStepOperator as Op;"
            f"Op(task_id='t', arguments=['train'], python={str(fake_python)!r}).run()",
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline and task.poll() is None, "the step never started"
        time.sleep(0.05)  # polling for the child's pid file, not waiting a fixed time
    trainer = int(pid_file.read_text())
    task.send_signal(signal.SIGKILL)
    task.wait(timeout=30)
    while time.monotonic() < deadline:
        try:
            os.kill(trainer, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{trainer}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, not yet reaped
                break
        time.sleep(0.05)
    else:
        os.kill(trainer, signal.SIGKILL)
        raise AssertionError("the trainer outlived its task")


def test_the_failure_sentence_is_logged_as_an_error(tmp_path, monkeypatch):
    from unittest import mock

    fake_python = tmp_path / "python"
    noise = "I0000 00:00:1795459893.915610    6085 port.cc:153] oneDNN custom operations are on."
    fake_python.write_text(
        f"#!/bin/sh\necho '{noise}' >&2\necho 'epoch 1/2'\necho 'FAILED: bad label' >&2\nexit 2\n"
    )
    fake_python.chmod(0o755)
    log = mock.Mock()
    monkeypatch.setattr(LocalStepOperator, "log", property(lambda self: log))
    op = LocalStepOperator(task_id="t", arguments=["train"], python=str(fake_python))
    with pytest.raises(AirflowException, match="exited with code"):
        op.run()
    lines = log.log.call_args_list
    assert mock.call(logging.ERROR, "%s", "FAILED: bad label") in lines
    assert mock.call(logging.INFO, "%s", "epoch 1/2") in lines
    # TensorFlow's native start-up chatter is kept out of the INFO log.
    assert mock.call(logging.DEBUG, "%s", noise) in lines


def test_pods_are_what_a_cluster_admin_accepts(monkeypatch):
    """Audit: pods ran as root with default capabilities, privilege escalation, the API token
    mounted and no CPU/memory requests (BestEffort, none at all with gpu_count=0)."""
    monkeypatch.setenv(
        "VISION_PIPELINES_K8S_RESOURCES",
        '{"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}',
    )
    op = container_task(task_id="train", step=STEP, runner="kubernetes", gpus=0)
    pod = op.build_pod_request_obj(dry_run=True)
    container = pod.spec.containers[0]
    assert container.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert container.resources.limits == {"memory": "4Gi"}
    security = pod.spec.security_context
    assert security.run_as_non_root and security.run_as_user == 1000
    assert security.seccomp_profile.type == "RuntimeDefault"
    context = container.security_context
    assert context.allow_privilege_escalation is False and context.privileged is False
    assert context.read_only_root_filesystem is True
    assert context.capabilities.drop == ["ALL"]
    assert pod.spec.automount_service_account_token is False
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    assert {"/opt/ml", "/tmp"} <= set(mounts)
    empty_dirs = {v.name for v in pod.spec.volumes if v.empty_dir is not None}
    assert {mounts["/opt/ml"], mounts["/tmp"]} <= empty_dirs
    env = {e.name: e.value for e in container.env}
    assert env["HOME"] == "/tmp" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    # Every pod signs and checks model archives with the deployment's key, from a Secret.
    key = {e.name: e.value_from for e in container.env}["VISION_PIPELINES_MODEL_KEY"]
    assert key.secret_key_ref.name == "vision-pipelines-model-key"
    assert key.secret_key_ref.key == "key"


def test_bad_resource_settings_are_named(monkeypatch):
    monkeypatch.setenv("VISION_PIPELINES_K8S_RESOURCES", '{"request": {"cpu": "1"}}')
    with pytest.raises(ValueError, match="resources must be a JSON object like"):
        KubernetesSettings.from_env()


def test_only_the_deployments_images_run(monkeypatch):
    """Attack: `trainer_image` was a free Param; anyone who could trigger a DAG ran any image
    under the pods' service account and storage rights."""
    with pytest.raises(RunRefused, match="'evil.example/miner:1' is not allowed"):
        container_task(task_id="t", step=STEP, runner="kubernetes", image="evil.example/miner:1")
    monkeypatch.delenv("VISION_PIPELINES_TRAINER_IMAGES")
    monkeypatch.setenv("VISION_PIPELINES_TRAINER_IMAGE", "registry.example/trainer:2")
    op = container_task(task_id="t", step=STEP, runner="kubernetes")
    assert op.image == "registry.example/trainer:2"
    with pytest.raises(RunRefused, match="allows registry.example/trainer:2"):
        container_task(task_id="t", step=STEP, runner="kubernetes", image="vision:latest")


def test_the_form_offers_only_the_allowed_images():
    from operators.pipeline import runner_params
    from tasks.algorithms import get_algorithm

    image = runner_params(get_algorithm("image-classification"))["trainer_image"]
    assert image.schema["enum"] == [
        "registry.example/trainer:1.2",
        "vision-pipelines-trainer:latest",
        "trainer:dev",
    ]
    assert image.value == "registry.example/trainer:1.2"


def test_the_trainer_image_runs_as_a_user_under_tini():
    """Audit: no non-root USER and no init in the trainer image; dev tools in production."""
    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "docker" / "trainer" / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in dockerfile
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    assert not any("requirements-dev" in line for line in instructions)
    for runtime in (root / "docker" / "trainer" / "requirements.txt", root / "requirements.txt"):
        packages = {
            line.split("#")[0].split("=")[0].split("[")[0].strip()
            for line in runtime.read_text().splitlines()
        }
        assert not packages & {"pytest", "ruff", "moto", "selenium"}, runtime

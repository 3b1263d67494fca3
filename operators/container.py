"""GPU steps (train, evaluate, batch transform): one factory makes the pod or the local runner.

Both run the same `python -m tasks.job ...` command line with the same ml-root layout; only the
ml-root's place differs (`/opt/ml` in the pod, a run-scoped folder on local disk).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators.paths import run_key
from operators.run_record import RunStepOperator, record_run
from operators.storage import remove_prefix
from tasks.algorithms import TRAINER, Environment, get_algorithm
from tasks.contract import (
    EXIT_BAD_INPUT,
    FAILED_PREFIX,
    MODEL_ARCHIVE,
    STEP_RESULTS,
    SUMMARY,
    Step,
)
from tasks.signing import KEY_ENV as MODEL_KEY_ENV

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POD_ML_ROOT = "/opt/ml"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STEP_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
"""Every step's environment, local or pod: unbuffered output, TensorFlow's C++ INFO/WARNING
logs off."""
# TensorFlow's C++ startup chatter (info/warning lines in absl's format, printed before any
# log level applies, and the CUDA probe failing on a machine without a GPU): kept at DEBUG, so
# that a task log starts with the step's own lines.
NATIVE_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\]"
    r"|E\d{4} [\d:.]+\s+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit)"
)


class Runner(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


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


def allowed_images(environment: Environment = TRAINER) -> list[str]:
    """The images a run may choose (`VISION_PIPELINES_TRAINER_IMAGES`, comma-separated; else
    `VISION_PIPELINES_TRAINER_IMAGE` or the algorithm's): the first is the default."""
    listed = os.environ.get("VISION_PIPELINES_TRAINER_IMAGES", "")
    images = [i.strip() for i in listed.split(",") if i.strip()]
    return images or [os.environ.get("VISION_PIPELINES_TRAINER_IMAGE") or environment.image]


def check_image(image: str, environment: Environment = TRAINER) -> str:
    """`image` if the deployment allows it; who may trigger a DAG must not pick any image to
    run under the pods' service account and storage rights."""
    allowed = allowed_images(environment)
    if image not in allowed:
        raise AirflowFailException(
            f"trainer image {image!r} is not allowed; this deployment allows "
            f"{', '.join(allowed)} (VISION_PIPELINES_TRAINER_IMAGES)"
        )
    return image


@dataclass(frozen=True)
class ContainerStep:
    """One container-contract step: what runs, on which channels, and where its outputs go."""

    step: str
    algorithm: str
    channels: Mapping[str, str]
    output_uri: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)

    def arguments(self, ml_root: str) -> list[str]:
        """Arguments of `python -m tasks.job`."""
        args = [self.step, "--algorithm", self.algorithm, "--ml-root", ml_root]
        for name, uri in self.channels.items():
            args += ["--channel", f"{name}={uri}"]
        if self.hyperparameters:
            args += ["--hyperparameters", json.dumps(dict(self.hyperparameters), sort_keys=True)]
        return [*args, "--output-uri", self.output_uri]


def trainer_python(environment: Environment = TRAINER) -> str:
    """The interpreter of an algorithm's environment (`VISION_PIPELINES_TRAINER_PYTHON` wins)."""
    default = PROJECT_ROOT / environment.venv / "bin" / "python"
    return os.environ.get("VISION_PIPELINES_TRAINER_PYTHON", str(default))


def container_task(
    *,
    task_id: str,
    step: ContainerStep,
    runner: Runner | str = Runner.LOCAL,
    image: str | None = None,
    gpus: int = 1,
    local_ml_root: str | None = None,
    kubernetes: KubernetesSettings | None = None,
    deferrable: bool = False,
    **kwargs: Any,
) -> BaseOperator:
    """The one place a container step becomes an operator: a pod, or the local runner, in the
    environment the step's algorithm needs (tasks/algorithms.py)."""
    spec = get_algorithm(step.algorithm)
    if Runner(runner) is Runner.LOCAL:
        if local_ml_root is None:
            raise ValueError("the local runner needs local_ml_root")
        return LocalStepOperator(
            task_id=task_id,
            arguments=step.arguments(local_ml_root),
            python=trainer_python(spec.environment),
            **kwargs,
        )
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
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    settings = kubernetes or KubernetesSettings.from_env()
    gpu = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    resources = {kind: dict(settings.resources.get(kind, {})) for kind in ("requests", "limits")}
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"vision-{step.step}",
        namespace=settings.namespace,
        image=check_image(image or allowed_images(spec.environment)[0], spec.environment),
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
        on_finish_action="delete_pod",
        deferrable=deferrable,
        **kwargs,
    )


def _die_with_parent() -> Callable[[], None]:
    """For the child before exec: SIGTERM when the task process dies, even by SIGKILL (its own
    session keeps it from the task's signals otherwise, and a retry would run a second trainer on
    the same ml-root). prctl is looked up here, in the parent: the child only calls it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalStepOperator(BaseOperator):
    """Runs `python -m tasks.job ARGS` in the trainer environment, streaming its output to the log.

    :param arguments: arguments of `tasks.job` (as ContainerStep.arguments makes them).
    :param python: the interpreter of the algorithm's environment; default `trainer_python()`.
    """

    def __init__(self, *, arguments: Sequence[str], python: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.arguments = list(arguments)
        self.python = python or trainer_python()
        self._process: subprocess.Popen | None = None

    def execute(self, context: Any) -> int:
        return self.run()

    def run(self) -> int:
        """Run the command to completion; raise when it fails."""
        if not Path(self.python).exists():
            raise AirflowFailException(
                f"the trainer environment's Python {self.python} does not exist; run `make setup` "
                "or set VISION_PIPELINES_TRAINER_PYTHON"
            )
        command = [self.python, "-m", "tasks.job", *self.arguments]
        env = {**STEP_ENVIRONMENT, **os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.log.info("running: %s", subprocess.list2cmdline(command))
        self._process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
        for line in self._process.stdout or ():
            # The step's one-sentence failure stands out in the log viewer; the rest is progress.
            if line.startswith(FAILED_PREFIX):
                level = logging.ERROR
            else:
                level = logging.DEBUG if NATIVE_NOISE.match(line) else logging.INFO
            self.log.log(level, "%s", line.rstrip())
        code = self._process.wait()
        if code != 0:
            raise AirflowException(f"{command[2]} {self.arguments[0]} exited with code {code}")
        return code

    def on_kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


class ContainerStepOperator(RunStepOperator):
    """A container step whose runner, image and GPU count are chosen per run (DAG Params).

    With runner=kubernetes the pod runs deferred (no worker slot is held while it trains): the
    task resumes in `trigger_reentry`, which rebuilds the pod operator and hands it the event.
    A failed step is failed without retry when it reports bad input (exit code 2 in its
    `summary.json`) and retried otherwise (internal error, or a step that never reported).

    :param step: train, evaluate or transform.
    :param algorithm: the algorithm id (tasks/algorithms.py).
    :param channels: channel name -> URI (templated).
    :param output_uri: where model/ and output/ are uploaded (templated).
    :param hyperparameters: values derived by the pipeline or chosen in the form (templated).
    :param extra_hyperparameters: any other hyperparameters; never override the above (templated).
    :param runner: `local` or `kubernetes` (templated).
    :param image: trainer image for the kubernetes runner; empty: the algorithm's (templated).
    :param gpus: GPUs per pod (templated).
    :param deferrable: run pods deferred (runner=kubernetes).
    """

    template_fields: Sequence[str] = (
        "channels",
        "output_uri",
        "hyperparameters",
        "extra_hyperparameters",
        "runner",
        "image",
        "gpus",
    )

    def __init__(
        self,
        *,
        step: str,
        algorithm: str = "image-classification",
        channels: Mapping[str, str],
        output_uri: str,
        hyperparameters: Mapping[str, Any] | None = None,
        extra_hyperparameters: Mapping[str, Any] | str | None = None,
        runner: str = Runner.LOCAL.value,
        image: str = "",
        gpus: int | str = 1,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if step not in STEP_RESULTS:
            raise ValueError(f"step must be one of {', '.join(STEP_RESULTS)}, got {step!r}")
        # An unknown algorithm fails the DAG file with the known ones (a ValueError).
        self.step, self.algorithm = Step(step), get_algorithm(algorithm).id
        self.channels, self.output_uri = channels, output_uri
        self.hyperparameters = hyperparameters or {}
        self.extra_hyperparameters = extra_hyperparameters or {}
        self.runner, self.image, self.gpus = runner, image, gpus
        self.deferrable = deferrable

    def build(self, context: Any) -> BaseOperator:
        """The operator that runs this step, for the rendered runner."""
        extra = self.extra_hyperparameters
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        if not isinstance(extra, Mapping):
            raise AirflowFailException(f"hyperparameters must be a JSON object, got {extra!r}")
        values = {**extra, **self.hyperparameters}
        step = ContainerStep(
            step=self.step.value,
            algorithm=self.algorithm,
            # A channel whose URI renders empty is not used in this run (e.g. no initial model).
            channels={k: str(v) for k, v in self.channels.items() if str(v).strip()},
            output_uri=self._output,
            hyperparameters={k: str(v) for k, v in values.items() if v not in (None, "")},
        )
        work = Path(os.environ.get("VISION_PIPELINES_WORK_DIR", PROJECT_ROOT / "data" / "work"))
        key = run_key(context.get("logical_date"), context["run_id"])
        return container_task(
            task_id=self.task_id,
            step=step,
            runner=self.runner,
            image=str(self.image).strip() or None,
            gpus=int(self.gpus),
            local_ml_root=str(work / self.dag_id / key / self.task_id),
            deferrable=self.deferrable,
        )

    @property
    def _output(self) -> str:
        return str(self.output_uri).rstrip("/")

    def on_kill(self) -> None:
        """Stop the step's process or pod with the task."""
        running = getattr(self, "_running", None)
        if running is not None:
            running.on_kill()

    def execute(self, context: Any) -> dict[str, Any]:
        self.check_uris(
            {**{f"channel {k!r}": v for k, v in self.channels.items()}, "output_uri": self._output}
        )
        record_run(context, self._output)
        # What an earlier attempt published (model, metrics, failure, summary) must not be
        # taken for this attempt's result, even when this one dies before the step runs.
        remove_prefix(self._output)
        operator = self._running = self.build(context)
        # The local runner is called directly: it needs nothing from the task runner. A pod
        # operator in deferrable mode raises TaskDeferred here; the task resumes below.
        if isinstance(operator, LocalStepOperator):
            return self._finish(context, operator.run)
        return self._finish(context, lambda: operator.execute(context))

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the pod's trigger fired: logs, clean-up and the step's outputs."""
        operator = self._running = self.build(context)
        return self._finish(context, lambda: operator.trigger_reentry(context, event))

    def _finish(self, context: Any, run: Callable[[], Any]) -> dict[str, Any]:
        try:
            run()
        except Exception as e:
            raise self._failure(e) from e
        return self._result(context)

    def _failure(self, error: Exception) -> Exception:
        """The error to fail the task with: the step's own reason, no retry for bad input."""
        summary_path = ObjectStoragePath(f"{self._output}/{SUMMARY}")
        if not summary_path.exists():
            return AirflowException(
                f"{self.step} ended without reporting a result ({error}); it may have been "
                "stopped before it ran (image pull, eviction, out of memory)"
            )
        summary = json.loads(summary_path.read_text())
        reason = summary.get("reason") or str(error)
        if summary.get("exit_code") == EXIT_BAD_INPUT:
            return AirflowFailException(f"{self.step} failed: {reason}")
        return AirflowException(f"{self.step} failed: {reason}")

    def _result(self, context: Any) -> dict[str, Any]:
        output = self._output
        result: dict[str, Any] = {"output_uri": output}
        if self.step is Step.TRAIN:
            result["model"] = f"{output}/{MODEL_ARCHIVE}"
        if self.step is Step.TRANSFORM:
            result["predictions"] = f"{output}/{STEP_RESULTS[self.step]}"
        summary_path = ObjectStoragePath(f"{output}/{SUMMARY}")
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            if summary.get("value") is not None:
                result["primary_metric"] = {summary["primary_metric"]: summary["value"]}
        if self.step is not Step.TRANSFORM:
            metrics = json.loads(
                ObjectStoragePath(f"{output}/{STEP_RESULTS[self.step]}").read_text()
            )
            # Training's last epoch, or an evaluation's top-level numbers (any algorithm's).
            result["metrics"] = metrics.get("final") or {
                k: v for k, v in metrics.items() if isinstance(v, int | float)
            }
            self.log.info("%s metrics: %s", self.step, result["metrics"])
        # Downstream DAGs scheduled on this task's assets learn where the new outputs are.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = result
        return result

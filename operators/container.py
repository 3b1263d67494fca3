"""GPU steps (train, evaluate, batch transform): one factory makes the pod or the local runner.

Both run the same `python -m tasks.job ...` command line with the same ml-root layout; only the
ml-root's place differs (`/opt/ml` in the pod, a run-scoped folder on local disk).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators.links import RunOutputsLink
from operators.paths import run_key

PROJECT_ROOT = Path(__file__).resolve().parents[1]
POD_ML_ROOT = "/opt/ml"
STEP_RESULTS = {"train": "metrics.json", "evaluate": "evaluation.json", "transform": None}


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


@dataclass(frozen=True)
class KubernetesSettings:
    """Where and how training pods run; from `VISION_PIPELINES_K8S_*` environment variables."""

    namespace: str = "default"
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ValueError(
                f"image_pull_policy must be Always, IfNotPresent or Never, got "
                f"{self.image_pull_policy!r}"
            )
        if not isinstance(self.node_selector, Mapping):
            raise ValueError(f"node_selector must be a JSON object, got {self.node_selector!r}")

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
        )


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


def container_task(
    *,
    task_id: str,
    step: ContainerStep,
    runner: Runner | str = Runner.LOCAL,
    image: str = "vision-pipelines-trainer:latest",
    gpus: int = 1,
    local_ml_root: str | None = None,
    kubernetes: KubernetesSettings | None = None,
    **kwargs: Any,
) -> BaseOperator:
    """The one place a container step becomes an operator: a pod, or the local runner."""
    if Runner(runner) is Runner.LOCAL:
        if local_ml_root is None:
            raise ValueError("the local runner needs local_ml_root")
        return LocalStepOperator(task_id=task_id, arguments=step.arguments(local_ml_root), **kwargs)
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
    from kubernetes.client import models as k8s

    settings = kubernetes or KubernetesSettings.from_env()
    gpu = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"vision-{step.step}",
        namespace=settings.namespace,
        image=image,
        image_pull_policy=settings.image_pull_policy,
        cmds=["python", "-m", "tasks.job"],
        arguments=step.arguments(POD_ML_ROOT),
        container_resources=k8s.V1ResourceRequirements(requests=gpu, limits=gpu),
        node_selector=dict(settings.node_selector),
        tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations],
        service_account_name=settings.service_account,
        labels={
            "app.kubernetes.io/part-of": "vision-pipelines",
            "vision-pipelines/step": step.step,
        },
        get_logs=True,
        on_finish_action="delete_pod",
        **kwargs,
    )


class LocalStepOperator(BaseOperator):
    """Runs `python -m tasks.job ARGS` in the trainer environment, streaming its output to the log.

    :param arguments: arguments of `tasks.job` (as ContainerStep.arguments makes them).
    :param python: the trainer environment's interpreter; default `VISION_PIPELINES_TRAINER_PYTHON`
        or `.venv-trainer/bin/python` in the project.
    """

    def __init__(self, *, arguments: Sequence[str], python: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.arguments = list(arguments)
        self.python = python or os.environ.get(
            "VISION_PIPELINES_TRAINER_PYTHON",
            str(PROJECT_ROOT / ".venv-trainer" / "bin" / "python"),
        )
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
        env = {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }
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
        )
        for line in self._process.stdout or ():
            self.log.info("%s", line.rstrip())
        code = self._process.wait()
        if code != 0:
            raise AirflowException(f"{command[2]} {self.arguments[0]} exited with code {code}")
        return code

    def on_kill(self) -> None:
        if self._process and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)


class ContainerStepOperator(BaseOperator):
    """A container step whose runner, image and GPU count are chosen per run (DAG Params).

    :param step: train, evaluate or transform.
    :param algorithm: the algorithm id.
    :param channels: channel name -> URI (templated).
    :param output_uri: where model/ and output/ are uploaded (templated).
    :param hyperparameters: values derived by the pipeline or chosen in the form (templated).
    :param extra_hyperparameters: any other hyperparameters; never override the above (templated).
    :param runner: `local` or `kubernetes` (templated).
    :param image: trainer image for the kubernetes runner (templated).
    :param gpus: GPUs per pod (templated).
    """

    operator_extra_links = (RunOutputsLink(),)
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
        image: str = "vision-pipelines-trainer:latest",
        gpus: int | str = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if step not in STEP_RESULTS:
            raise ValueError(f"step must be one of {', '.join(STEP_RESULTS)}, got {step!r}")
        self.step, self.algorithm = step, algorithm
        self.channels, self.output_uri = channels, output_uri
        self.hyperparameters = hyperparameters or {}
        self.extra_hyperparameters = extra_hyperparameters or {}
        self.runner, self.image, self.gpus = runner, image, gpus

    def build(self, context: Any) -> BaseOperator:
        """The operator that runs this step, for the rendered runner."""
        extra = self.extra_hyperparameters
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        if not isinstance(extra, Mapping):
            raise AirflowFailException(f"hyperparameters must be a JSON object, got {extra!r}")
        values = {**extra, **self.hyperparameters}
        step = ContainerStep(
            step=self.step,
            algorithm=self.algorithm,
            # A channel whose URI renders empty is not used in this run (e.g. no initial model).
            channels={k: str(v) for k, v in self.channels.items() if str(v).strip()},
            output_uri=str(self.output_uri).rstrip("/"),
            hyperparameters={k: str(v) for k, v in values.items() if v not in (None, "")},
        )
        work = Path(os.environ.get("VISION_PIPELINES_WORK_DIR", PROJECT_ROOT / "data" / "work"))
        key = run_key(context.get("logical_date"), context["run_id"])
        return container_task(
            task_id=self.task_id,
            step=step,
            runner=self.runner,
            image=self.image,
            gpus=int(self.gpus),
            local_ml_root=str(work / self.dag_id / key / self.task_id),
        )

    def on_kill(self) -> None:
        """Stop the step's process or pod with the task."""
        running = getattr(self, "_running", None)
        if running is not None:
            running.on_kill()

    def execute(self, context: Any) -> dict[str, Any]:
        output = str(self.output_uri).rstrip("/")
        RunOutputsLink.persist(context, output)
        operator = self._running = self.build(context)
        try:
            # The local runner is called directly: it needs nothing from the task runner.
            operator.run() if isinstance(operator, LocalStepOperator) else operator.execute(context)
        except Exception as e:
            failure = ObjectStoragePath(f"{output}/failure")
            if not failure.exists():
                raise
            reason = failure.read_text().strip()
            error = (
                AirflowException if reason.startswith("internal error") else AirflowFailException
            )
            raise error(f"{self.step} failed: {reason}") from e
        result: dict[str, Any] = {"output_uri": output}
        if self.step == "train":
            result["model"] = f"{output}/model.tar.gz"
        if self.step == "transform":
            result["predictions"] = f"{output}/predictions.jsonl"
        if STEP_RESULTS[self.step]:
            metrics = json.loads(
                ObjectStoragePath(f"{output}/{STEP_RESULTS[self.step]}").read_text()
            )
            result["metrics"] = metrics.get("final") or {
                k: metrics[k] for k in ("accuracy", "mAP", "loss", "samples") if k in metrics
            }
            self.log.info("%s metrics: %s", self.step, result["metrics"])
        # Downstream DAGs scheduled on this task's assets learn where the new outputs are.
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = result
        return result
